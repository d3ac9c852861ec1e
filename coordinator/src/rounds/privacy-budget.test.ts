// Tests for the coordinator's DP settings (flags and settings API share one schema) and its privacy budget
// (privacy-budget.ts): the noise multiplier a round runs with, the stop rule, and the per-round ledger.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { privacySpent } from '@fedlora/shared/privacy/index.ts';
import { parseConfig, type CoordinatorConfig } from '../config';
import type { RoundRecord } from '../registry/types';
import { DEFAULT_SETTINGS, DEFAULT_STOP, updateSettings } from './settings';
import { expectedSampleRate, PrivacyBudget } from './privacy-budget';

const TOKEN = ['--admin-token', 'a-token-of-16-chars'];
const configOf = (...flags: string[]) => parseConfig([...TOKEN, ...flags], {}) as CoordinatorConfig;
const invalid = (why: RegExp) => (err: unknown) => isFedloraError(err, 'CONFIG_INVALID') && why.test(err.message);

test('when the coordinator gets --dp-clip, --dp-noise-multiplier, --dp-target-epsilon and --dp-delta, then they become the DP settings', () => {
  const c = configOf('--dp-clip', '0.5', '--dp-noise-multiplier', '1.1', '--dp-target-epsilon', '8', '--dp-delta', '1e-6');
  assert.deepEqual(
    [c.settings.dpClipNorm, c.settings.dpNoiseMultiplier, c.settings.dpTargetEpsilon, c.settings.dpDelta],
    [0.5, 1.1, 8, 1e-6],
  );
  const off = configOf();
  assert.deepEqual([off.settings.dpClipNorm, off.settings.dpNoiseMultiplier, off.settings.dpDelta], [null, null, 1e-5]);
});

test('when DP flags do not fit together, then startup stops with CONFIG_INVALID naming the flag', () => {
  assert.throws(() => configOf('--dp-noise-multiplier', '1'), invalid(/^--dp-clip: is needed/));
  assert.throws(() => configOf('--dp-clip', '1'), invalid(/^--dp-noise-multiplier: or dpTargetEpsilon is needed/));
  assert.throws(() => configOf('--dp-clip', '1', '--dp-target-epsilon', '8'), invalid(/^--dp-target-epsilon: without dpNoiseMultiplier needs the rounds stop rule/));
  assert.throws(() => configOf('--dp-clip', '0', '--dp-noise-multiplier', '1'), invalid(/^--dp-clip: must be a number > 0/));
  assert.throws(() => configOf('--dp-clip', '1', '--dp-noise-multiplier', '1', '--dp-delta', '1'), invalid(/^--dp-delta: must be a number in \(0, 1\)/));
  // with a rounds rule, a target alone is enough
  assert.equal(configOf('--dp-clip', '1', '--dp-target-epsilon', '8', '--rounds', '50').settings.dpTargetEpsilon, 8);
});

test('when a settings patch would remove the rounds rule a target-only DP budget needs, then it is refused', () => {
  const current = updateSettings({ settings: DEFAULT_SETTINGS, stop: DEFAULT_STOP }, { dpClipNorm: 1, dpTargetEpsilon: 4, rounds: 10 });
  assert.throws(() => updateSettings(current, { rounds: null }), invalid(/^dpTargetEpsilon without dpNoiseMultiplier/));
  assert.equal(updateSettings(current, { rounds: null, dpNoiseMultiplier: 1 }).settings.dpNoiseMultiplier, 1);
});

const DP_SETTINGS = { ...DEFAULT_SETTINGS, dpClipNorm: 1, dpNoiseMultiplier: 1.5, dpTargetEpsilon: 2, dpDelta: 1e-5 };

test('when the next round stays within the target, then no stop; when it would pass it, then the reason names both ε', () => {
  const budget = new PrivacyBudget();
  const plan = budget.plan(DP_SETTINGS, DEFAULT_STOP, 0.1);
  assert.deepEqual(plan, { clipNorm: 1, noiseMultiplier: 1.5, expectedSampleRate: 0.1 });
  assert.equal(budget.stopReason(DP_SETTINGS, plan), null);
  let rounds = 0;
  while (budget.stopReason(DP_SETTINGS, plan) === null) {
    budget.record(++rounds, { sampleRate: 0.1, noiseMultiplier: 1.5, clipNorm: 1, expectedParticipants: 5, noiseStd: 0.3 }, 1e-5);
    assert.ok(rounds < 10_000);
  }
  const spent = budget.report(DP_SETTINGS).epsilon;
  const next = privacySpent({ noiseMultiplier: 1.5, sampleRate: 0.1, rounds: rounds + 1, delta: 1e-5 }).epsilon;
  assert.ok(spent <= 2 && next > 2, `spent ${spent}, next ${next}`);
  assert.match(budget.stopReason(DP_SETTINGS, plan) ?? '', /one more round would spend ε = \d+\.\d{4} > the target 2/);
  assert.equal(budget.report(DP_SETTINGS).rounds.length, rounds);
});

test('when DP is off, then there is no plan and no stop', () => {
  const budget = new PrivacyBudget();
  assert.equal(budget.plan(DEFAULT_SETTINGS, DEFAULT_STOP, 0.5), null);
  assert.equal(budget.stopReason(DEFAULT_SETTINGS, null), null);
});

test('when the round history holds DP rounds, then restore rebuilds the same ε as recording them', () => {
  const live = new PrivacyBudget();
  const records: RoundRecord[] = [];
  for (const [round, q] of [[1, 0.2], [2, 0.5], [3, 0.25]] as const) {
    const privacy = live.record(round, { sampleRate: q, noiseMultiplier: 1.2, clipNorm: 1, expectedParticipants: 4, noiseStd: 0.3 }, 1e-5);
    records.push({ round, privacy } as RoundRecord, { round: round + 0.5 } as RoundRecord); // rounds without DP are skipped
  }
  const restored = new PrivacyBudget();
  restored.restore(records);
  assert.deepEqual(restored.report(DP_SETTINGS), live.report(DP_SETTINGS));
});

test('when all enrolled sites would be sampled, then the expected q is 1; when a fraction, then that fraction', () => {
  assert.equal(expectedSampleRate((n) => n, 7), 1);
  assert.equal(expectedSampleRate((n) => Math.ceil(0.25 * n), 8), 0.25);
  assert.equal(expectedSampleRate(() => 2, 0), 1);
});
