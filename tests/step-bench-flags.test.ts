// scripts/step-bench.ts --tf-flags (and gpu-bench.sh --webgpu-flags, which passes it on): the flags named are set on
// tfjs, and a malformed or unknown one is refused with its name, before any step runs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { setTfFlags } from '../scripts/step-bench.ts';

test('when step-bench gets --tf-flags, then each NAME=VALUE is set on tfjs as a number or boolean, and a malformed or unregistered one is refused by name', () => {
  const before = [tf.env().get('WEBGL_PACK'), tf.env().get('CHECK_COMPUTATION_FOR_ERRORS')];
  try {
    assert.deepEqual(setTfFlags(' WEBGL_PACK=false, CHECK_COMPUTATION_FOR_ERRORS=true '), { WEBGL_PACK: false, CHECK_COMPUTATION_FOR_ERRORS: true });
    assert.equal(tf.env().get('WEBGL_PACK'), false);
    assert.deepEqual(setTfFlags(''), {});
    assert.throws(() => setTfFlags('WEBGL_PACK'), /"WEBGL_PACK" is not NAME=number/);
    assert.throws(() => setTfFlags('WEBGL_PACK=abc'), /"WEBGL_PACK=abc" is not NAME=number/);
    assert.throws(() => setTfFlags('NO_SUCH_FLAG=1'), /NO_SUCH_FLAG/);
  } finally {
    tf.env().set('WEBGL_PACK', before[0]);
    tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', before[1]);
  }
});
