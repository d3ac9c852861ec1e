// Tests for the inverse search (target ε → noise multiplier z): issue 17 must-show 4 (Opacus's
// test_get_noise_multiplier_rdp_steps) and the guarantees of the answer.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '../errors';
import { noiseMultiplierFor } from './noise-search';
import { privacySpent } from './rdp-accountant';

const OPACUS_CASE = { targetEpsilon: 8, delta: 1e-5, sampleRate: 0.04, rounds: 2000 };

test('when ε = 8, δ = 1e-5, q = 0.04, T = 2000 are the target, then z = 1.3562 (Opacus test_get_noise_multiplier_rdp_steps)', () => {
  const z = noiseMultiplierFor(OPACUS_CASE);
  assert.ok(Math.abs(z - 1.3562) <= 1e-4, `z = ${z}`);
});

test('when the search answers z, then z meets the target and z minus the tolerance does not', () => {
  const tolerance = 1e-6;
  const z = noiseMultiplierFor({ ...OPACUS_CASE, tolerance });
  const epsilonAt = (noiseMultiplier: number) => privacySpent({ ...OPACUS_CASE, noiseMultiplier }).epsilon;
  assert.ok(epsilonAt(z) <= 8, `ε(z) = ${epsilonAt(z)}`);
  assert.ok(epsilonAt(z - tolerance) > 8, `ε(z − tol) = ${epsilonAt(z - tolerance)}`);
});

test('when the target needs more noise than the search allows, or is not above 0, then CONFIG_INVALID', () => {
  // δ = 1e-300 on the plain Gaussian: even huge z leaves ε above 1e-9
  assert.throws(
    () => noiseMultiplierFor({ targetEpsilon: 1e-9, delta: 1e-300, sampleRate: 1, rounds: 1_000_000 }),
    (err: unknown) => isFedloraError(err, 'CONFIG_INVALID') && /no noise multiplier/.test(err.message),
  );
  assert.throws(() => noiseMultiplierFor({ ...OPACUS_CASE, targetEpsilon: 0 }), (err: unknown) => isFedloraError(err, 'CONFIG_INVALID'));
  assert.throws(() => noiseMultiplierFor({ ...OPACUS_CASE, sampleRate: 2 }), (err: unknown) => isFedloraError(err, 'CONFIG_INVALID'));
});
