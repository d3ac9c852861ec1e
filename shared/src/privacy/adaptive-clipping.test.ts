// Tests for adaptive clipping (Andrew et al. 2021): issue 17 must-show 4 (the clip norm finds the median of norms
// spread over 0.02–2) and the sign of the update.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '../errors';
import type { NamedTensors } from '../tensor';
import { nextClipNorm, unclippedFraction } from './adaptive-clipping';
import { clipToL2Norm } from './clipping';

const SETTINGS = { targetUnclippedQuantile: 0.5, learningRate: 0.2 };

/** a one-tensor delta whose L2 norm is `norm` */
const deltaOfNorm = (norm: number): NamedTensors => ({ w: { shape: [2], data: new Float32Array([norm * 0.6, norm * 0.8]) } });

test('when 100 sites\' norms spread evenly over 0.02–2, C0 = 0.1, γ = 0.5, η = 0.2, no noise, then C = 1.00 ± 0.05 after 100 rounds', () => {
  const sites = 100;
  const norms = Array.from({ length: sites }, (_, i) => 0.02 + (i * (2 - 0.02)) / (sites - 1)); // median 1.01
  let clipNorm = 0.1;
  for (let round = 0; round < 100; round++) {
    // each site clips its own delta; the coordinator sees only whether it was clipped
    const clipped = norms.map((n) => clipToL2Norm(deltaOfNorm(n), clipNorm).clipped);
    clipNorm = nextClipNorm(clipNorm, unclippedFraction(clipped, sites), SETTINGS);
  }
  assert.ok(Math.abs(clipNorm - 1) <= 0.05, `C = ${clipNorm}`);
});

test('when more updates than γ fit under C, then C shrinks; when fewer fit, then C grows; at γ it stays', () => {
  assert.ok(nextClipNorm(1, 0.9, SETTINGS) < 1);
  assert.ok(nextClipNorm(1, 0.1, SETTINGS) > 1);
  assert.equal(nextClipNorm(1, 0.5, SETTINGS), 1);
  // the geometric step by hand: exp(−0.2·(1 − 0.5))
  assert.ok(Math.abs(nextClipNorm(2, 1, SETTINGS) - 2 * Math.exp(-0.1)) < 1e-15);
});

test('when the unclipped fraction is counted, then the clipped updates are left out and m is the denominator', () => {
  assert.equal(unclippedFraction([true, false, false, true], 8), 0.25);
  // with count noise, the answer moves off the exact fraction (a scripted normal of +1 count: u1 = e^(−1/2), u2 = 0)
  const scripted = (n: number) => new Float64Array(n).map((_, i) => (i % 2 === 0 ? Math.exp(-0.5) : 0));
  assert.equal(unclippedFraction([false, false], 4, 1, scripted), 0.75);
});

test('when γ is outside (0, 1) or η is not above 0, then CONFIG_INVALID', () => {
  const invalid = (err: unknown) => isFedloraError(err, 'CONFIG_INVALID');
  assert.throws(() => nextClipNorm(1, 0.5, { targetUnclippedQuantile: 1, learningRate: 0.2 }), invalid);
  assert.throws(() => nextClipNorm(1, 0.5, { targetUnclippedQuantile: 0.5, learningRate: 0 }), invalid);
  assert.throws(() => nextClipNorm(0, 0.5, SETTINGS), invalid);
});
