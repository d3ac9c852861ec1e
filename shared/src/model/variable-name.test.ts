// Two models in one process (a coordinator with several projects, issue 21): their LoRA and head variables must not
// fight over tfjs's engine-global names; the first keeps the names it always had.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { LoraLinear } from '../lora/layer';
import { freeVariableName } from './variable-name';

test('when a second LoRA layer of the same name is made while the first lives, then both exist under distinct names, the first unchanged; once disposed, the name is free again', () => {
  const a = new LoraLinear('encoder.layer.0.attention.self.query', 4, 4, 2, 1, 0, 1);
  const b = new LoraLinear('encoder.layer.0.attention.self.query', 4, 4, 2, 1, 0, 1);
  try {
    assert.equal(a.A.name, 'encoder.layer.0.attention.self.query.lora_A');
    assert.notEqual(b.A.name, a.A.name);
    assert.match(b.A.name, /^copy\d+\/encoder\.layer\.0\.attention\.self\.query\.lora_A$/);
    // same values from the same seed: only the name differs
    assert.deepEqual(Array.from(b.A.dataSync()), Array.from(a.A.dataSync()));
  } finally {
    tf.dispose([a.A, a.B]);
  }
  assert.equal(freeVariableName('encoder.layer.0.attention.self.query.lora_A'), 'encoder.layer.0.attention.self.query.lora_A');
  tf.dispose([b.A, b.B]);
});
