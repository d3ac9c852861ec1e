// Host tensors: a layout mismatch is a FedloraError with a code a caller can switch on, never a plain Error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from './errors';
import { subtractNamed, type NamedTensors } from './tensor';

const t = (shape: number[], ...xs: number[]): NamedTensors => ({ w: { shape, data: new Float32Array(xs) } });

test('when two adapters have the same layout, then subtractNamed is their element-wise difference', () => {
  assert.deepEqual([...subtractNamed(t([2], 3, 5), t([2], 1, 1)).w.data], [2, 4]);
});

test('when a tensor is missing or has another shape, then subtractNamed fails with SHAPE_MISMATCH naming it', () => {
  const mismatch = (err: unknown) => isFedloraError(err, 'SHAPE_MISMATCH') && /tensor w/.test(err.message);
  assert.throws(() => subtractNamed(t([2], 1, 2), t([1, 2], 1, 2)), mismatch);
  assert.throws(() => subtractNamed(t([2], 1, 2), {}), mismatch);
});
