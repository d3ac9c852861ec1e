// The simulator's secure aggregation and DP (privacy.ts) on a tiny in-memory dataset (seconds): a secure round equals
// the plaintext round within the quantization error, per-stage drops complete or abort exactly as the t rule says,
// a DP run stays within its target ε, and the flags refuse what cannot work (secure aggregation with the median).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeDataset, type LabeledExample } from '@fedlora/shared/data/dataset.ts';
import { buildGraph, type SecAggGraph } from '@fedlora/shared/secagg/graph.ts';
import { levelsFor } from '@fedlora/shared/secagg/quantize.ts';
import type { SecAggStage } from '@fedlora/shared/secagg/simulate.ts';
import { adamWeightCeiling } from '@fedlora/shared/training/update-bound.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { DEFAULT_SIM_OPTIONS, parseSimArgs, type SimOptions } from './options';
import { jsonSummary, runSimulation } from './simulate';
import { sampleRound, siteId } from './federation';
import { secureDrops, secureGraphSeed } from './privacy';
import type { SimData } from './data';

function tinyData(): SimData {
  const spam = ['win cash now', 'cheap pills online', 'claim your free prize'];
  const ham = ['meeting moved to noon', 'see the attached report', 'notes from the call'];
  const make = (n: number, offset: number): LabeledExample[] =>
    Array.from({ length: n }, (_, i) => ({ text: `${(i % 2 ? ham : spam)[i % 3]} ${offset + i}`, label: i % 2 ? 'ham' : 'spam' }));
  const labels = ['ham', 'spam'];
  return { train: makeDataset('tiny-train', make(144, 0), labels), heldout: makeDataset('tiny-heldout', make(32, 1000), labels), labels };
}

const TINY: SimOptions = {
  ...DEFAULT_SIM_OPTIONS,
  sites: 3,
  sitesPerRound: 3,
  rounds: 1,
  alpha: null,
  maxSteps: 2,
  batchSize: 8,
  maxLength: 32,
  centralized: false,
  localOnly: false,
  quiet: true,
};

async function finalAdapter(o: SimOptions): Promise<NamedTensors> {
  let final: NamedTensors = {};
  await runSimulation(o, { data: tinyData(), onArmResult: (r) => (final = r.final) });
  return final;
}

test('when one round runs with secure aggregation, then its adapter equals the plaintext round\'s within the quantization error', async () => {
  // Arrange: 3 sites of 48 examples (equal weights W = 48), the default clip c = the AdamW ceiling, Q = levelsFor(3)
  const plain = await finalAdapter(TINY);
  // Act
  let secure: NamedTensors = {};
  const res = await runSimulation({ ...TINY, secureAggregation: { dropRate: 0, degree: null, clip: null } }, { data: tinyData(), onArmResult: (r) => (secure = r.final) });
  // Assert: each site's rounding moves its weighted coordinate by < one step 2cW/Q, so the mean by < 2c/Q; float32
  // rounding of the sum and of global + mean adds a few ulps of the value
  const quantum = (2 * adamWeightCeiling(TINY.learningRate, TINY.maxSteps)) / levelsFor(3);
  let worst = 0;
  let moved = 0;
  for (const name of Object.keys(plain)) {
    const a = plain[name].data;
    const b = secure[name].data;
    for (let i = 0; i < a.length; i++) {
      const tol = quantum + 4 * 2 ** -23 * Math.max(Math.abs(a[i]), 1e-3);
      worst = Math.max(worst, Math.abs(a[i] - b[i]) - tol);
      if (a[i] !== b[i]) moved++;
    }
  }
  assert.ok(worst <= 0, `a coordinate differs by ${worst} more than the quantization error ${quantum}`);
  assert.ok(moved > 0, 'the secure path really quantized (some coordinate differs in its last bits)');
  const [r] = res.arms.fedavg.rounds;
  assert.deepEqual([r.aggregated, r.survivors, r.aborted, r.envelopeBytes], [true, 3, null, 0]);
  assert.ok((r.secaggSeconds ?? 0) > 0 && r.updateBytes > 0);
  assert.ok((r.medianDeltaNorm ?? 0) > 0, 'the simulator measures the norms an operator needs to choose S');
});

/** The t rule, recomputed from the graph and the drop sets (as secagg/dropout.test.ts): the stage that aborts, or null. */
function expectedAbort(g: SecAggGraph, drops: Record<SecAggStage, ReadonlySet<string>>): SecAggStage | null {
  const t = g.threshold;
  const minus = (a: Set<string>, d: ReadonlySet<string>) => new Set([...a].filter((x) => !d.has(x)));
  const count = (u: string, among: Set<string>) => g.neighbours.get(u)!.filter((v) => among.has(v)).length;
  const u2 = minus(new Set(g.sites), drops['share-keys']);
  if ([...u2].some((u) => count(u, u2) < t)) return 'masked-upload';
  const u3 = minus(u2, drops['masked-upload']);
  const dead = [...u2].filter((u) => !u3.has(u) && count(u, u3) > 0);
  const recoverable = (holders: Set<string>) => [...u3, ...dead].every((u) => count(u, holders) >= t);
  if (!recoverable(u3)) return 'sign-survivors';
  const signers = minus(u3, drops['sign-survivors']);
  const asked = new Set([...signers].filter((v) => count(v, signers) >= t));
  if (!recoverable(asked)) return 'unmask';
  return recoverable(minus(asked, drops.unmask)) ? null : 'unmask';
}

test('when 30% of the sites drop at each SecAgg stage, then every round completes or aborts as the t rule says, reports its survivors, and an abort keeps the adapter', async () => {
  // Arrange: 16 sites of 9 examples, all sampled, 3 rounds of one step. At 30% per stage a site survives all five
  // stages with probability 0.7^5 = 17%, so most rounds abort; seed 1 has a round (2) that completes
  const o: SimOptions = { ...TINY, sites: 16, sitesPerRound: 16, rounds: 3, maxSteps: 1, seed: 1, secureAggregation: { dropRate: 0.3, degree: null, clip: null } };
  // Act
  const res = await runSimulation(o, { data: tinyData() });
  // Assert
  const arm = res.arms.fedavg;
  let previous = arm.initialAccuracy;
  const tally = { completed: 0, aborted: 0 };
  for (const r of arm.rounds) {
    const ids = sampleRound(o.seed, r.round, o.sites, o.sitesPerRound, 0, 0).map((s) => siteId(s.site));
    const drops = secureDrops(o.seed, r.round, ids, 0.3);
    const keyed = ids.filter((id) => !drops.setup.has(id));
    const expected = keyed.length < 3 ? 'share-keys' : expectedAbort(buildGraph(keyed, secureGraphSeed(o.seed, r.round)), drops);
    if (expected === null) {
      assert.equal(r.aborted, null, `round ${r.round}: expected completion`);
      const uploaded = keyed.filter((id) => !drops['share-keys'].has(id) && !drops['masked-upload'].has(id));
      assert.equal(r.survivors, uploaded.length, `round ${r.round}: survivors are the sites whose masked upload is in the sum`);
      assert.ok(r.aggregated);
      tally.completed++;
    } else {
      assert.match(r.aborted ?? '', new RegExp(`^${expected}: .*(threshold|at least 3 sites)`), `round ${r.round}`);
      assert.equal(r.aggregated, false);
      assert.equal(r.accuracy, previous, `round ${r.round}: an aborted round keeps the adapter`);
      tally.aborted++;
    }
    previous = r.accuracy;
  }
  assert.ok(tally.completed > 0 && tally.aborted > 0, `both outcomes occur: ${JSON.stringify(tally)}`);
  const line = JSON.parse(jsonSummary(res, '/tmp/run'));
  assert.deepEqual(line.arms.fedavg.rounds, arm.rounds.map((r) => ({ round: r.round, survivors: r.survivors, aborted: r.aborted })));
});

test('when secure aggregation runs with DP at a target ε of 4, then the ε spent over the rounds is at most 4 and reported', async () => {
  // Arrange: the flags, then the tiny run's sizes (q = 3/3 = 1: no amplification by sampling)
  const flags = ['--sites', '3', '--sites-per-round', '3', '--rounds', '2', '--secure-aggregation', '--dp-clip', '0.05', '--dp-target-epsilon', '4'];
  const parsed = parseSimArgs(flags) as SimOptions;
  assert.ok(parsed.dp && parsed.dp.targetEpsilon === 4 && parsed.dp.sampleRate === 1 && parsed.dp.delta === 1e-5);
  // Act
  const res = await runSimulation({ ...TINY, rounds: 2, secureAggregation: parsed.secureAggregation, dp: parsed.dp }, { data: tinyData() });
  // Assert
  const p = res.arms.fedavg.privacy;
  assert.ok(p, 'the arm reports its privacy');
  assert.equal(p.rounds, 2);
  assert.ok(p.epsilon <= 4 && p.epsilon > 3.99, `ε ${p.epsilon}: the search stops just inside the target`);
  assert.equal(p.noiseMultiplier, parsed.dp.noiseMultiplier);
  const [r1, r2] = res.arms.fedavg.rounds;
  assert.ok((r1.epsilon ?? Infinity) < (r2.epsilon ?? 0) && r2.epsilon === p.epsilon, 'ε grows round by round');
  assert.deepEqual([r1.aborted, r1.survivors], [null, 3]);
  const line = JSON.parse(jsonSummary(res, '/tmp/run'));
  assert.deepEqual(Object.keys(line.arms.fedavg.privacy).sort(), ['clipNorm', 'delta', 'epsilon', 'noiseMultiplier', 'rounds', 'sampleRate', 'targetEpsilon']);
});

test('when secure aggregation or DP is asked of a strategy that needs single updates, or the flags do not fit, then the flag is refused', () => {
  const refused = (argv: string[], pattern: RegExp) => assert.throws(() => parseSimArgs(argv), pattern, argv.join(' '));
  refused(['--secure-aggregation', '--strategy', 'fedavg,median'], /--strategy median needs the single updates, which --secure-aggregation hides/);
  refused(['--secure-aggregation', '--strategy', 'trimmed-mean'], /trimmed-mean needs the single updates/);
  refused(['--dp-clip', '1', '--dp-noise-multiplier', '1', '--strategy', 'multi-krum'], /multi-krum needs the single updates, which client-level DP/);
  refused(['--drop-rate', '0.3'], /--drop-rate needs --secure-aggregation/);
  refused(['--secure-aggregation', '--sites', '2'], /--secure-aggregation needs --sites-per-round >= 3/);
  refused(['--dp-noise-multiplier', '1'], /--dp-clip is needed/);
  refused(['--dp-clip', '1'], /--dp-clip needs --dp-noise-multiplier Z or --dp-target-epsilon E/);
  refused(['--dp-clip', '1', '--dp-noise-multiplier', '1', '--dp-target-epsilon', '8'], /exclude each other/);
  const ok = parseSimArgs(['--secure-aggregation', '--drop-rate', '0.1', '--secagg-degree', '4', '--strategy', 'fedavg,fedadam']) as SimOptions;
  assert.deepEqual(ok.secureAggregation, { dropRate: 0.1, degree: 4, clip: null });
  assert.equal(ok.dp, null);
});
