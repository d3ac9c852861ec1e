// Tests for flat L2 clipping of a site's delta (the site-side half of DP-FedAvg), with hand-computed norms.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '../errors';
import type { NamedTensors } from '../tensor';
import { clipToL2Norm, l2Norm } from './clipping';

const delta = (a: number[], b: number[]): NamedTensors => ({
  'layer.lora_A': { shape: [a.length], data: new Float32Array(a) },
  'layer.lora_B': { shape: [b.length], data: new Float32Array(b) },
});

test('when a delta spans several tensors, then its norm is taken over all of them together', () => {
  assert.equal(l2Norm(delta([3], [4])), 5);
  assert.equal(l2Norm(delta([1, 2], [2])), 3);
});

test('when the delta is over the clip norm, then every tensor is scaled by S/‖Δ‖ and it is marked clipped', () => {
  const input = delta([3], [4]);
  const out = clipToL2Norm(input, 1);
  assert.equal(out.clipped, true);
  assert.equal(out.norm, 5);
  assert.ok(Math.abs(out.delta['layer.lora_A'].data[0] - 0.6) < 1e-7);
  assert.ok(Math.abs(out.delta['layer.lora_B'].data[0] - 0.8) < 1e-7);
  assert.ok(Math.abs(l2Norm(out.delta) - 1) < 1e-6);
  assert.equal(input['layer.lora_A'].data[0], 3, 'the input is not changed');
});

test('when the delta is within the clip norm (or exactly on it), then it comes back as is, not clipped', () => {
  const input = delta([0.3], [0.4]);
  assert.deepEqual(clipToL2Norm(input, 1), { delta: input, norm: l2Norm(input), clipped: false });
  assert.equal(clipToL2Norm(delta([3], [4]), 5).clipped, false);
});

test('when the delta is not finite or the clip norm is not above 0, then it is refused', () => {
  assert.throws(() => clipToL2Norm(delta([NaN], [1]), 1), (err: unknown) => isFedloraError(err, 'NON_FINITE'));
  assert.throws(() => clipToL2Norm(delta([1], [1]), 0), (err: unknown) => isFedloraError(err, 'CONFIG_INVALID'));
});
