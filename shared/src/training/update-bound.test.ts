// The AdamW movement bound (update-bound.ts) against hand-computed values, and against AdamW's worst case: a
// gradient of constant sign moves a weight by exactly lr per step, which the bound must cover.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adamStepBound, adamWeightCeiling, CEILING_MARGIN } from './update-bound';

test('when t = 1, then one step moves a weight by at most lr (m̂ / √v̂ = g / |g|); at t = 12, about 1.06 lr', () => {
  assert.ok(Math.abs(adamStepBound(1) - 1) < 1e-12);
  assert.ok(Math.abs(adamStepBound(12) - 1.06) < 0.01, String(adamStepBound(12)));
});

test('when lr is 2e-3 and a round is 12 steps, then the ceiling is 1.1 · 2e-3 · Σ bounds ≈ 0.027, above 12 · lr', () => {
  let sum = 0;
  for (let t = 1; t <= 12; t++) sum += adamStepBound(t);
  assert.ok(Math.abs(adamWeightCeiling(2e-3, 12) - CEILING_MARGIN * 2e-3 * sum) < 1e-15);
  assert.ok(Math.abs(adamWeightCeiling(2e-3, 12) - 0.027) < 0.001);
  assert.ok(adamWeightCeiling(2e-3, 12) >= 12 * 2e-3, 'a constant-sign gradient (lr per step) stays within it');
});
