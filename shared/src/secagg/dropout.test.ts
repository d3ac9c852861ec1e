// Must-show 1: dropout correctness. 100 sites × 20k coordinates with 30% dropping after share-keys decode to the
// survivors' plaintext mean within 2c/Q; drops of 10/30/45% at each stage complete or abort exactly as the t rule,
// recomputed here from the graph and the drop sets, says.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { Rng } from '../random';
import type { NamedTensors } from '../tensor';
import { simulateSecAgg, simulatedSite, SECAGG_STAGES, type SecAggStage, type SimulatedSite } from './simulate';
import { degreeForDropRate, type SecAggGraph } from './graph';

function randomDelta(rng: Rng, sizes: readonly number[], sd: number): NamedTensors {
  const out: NamedTensors = {};
  sizes.forEach((n, i) => (out[`layer${i}.lora_A`] = { shape: [n], data: Float32Array.from({ length: n }, () => rng.normal() * sd) }));
  return out;
}

function pickSites(rng: Rng, ids: readonly string[], fraction: number): Set<string> {
  const pool = [...ids];
  const out = new Set<string>();
  const count = Math.round(fraction * ids.length);
  while (out.size < count) out.add(pool.splice(rng.int(pool.length), 1)[0]);
  return out;
}

test('when 30% of 100 sites drop after share-keys, then the aggregate equals the survivors\' plaintext mean within 2c/Q per coordinate', async () => {
  const rng = new Rng(17);
  const params = { clip: 1, levels: 2 ** 22, maxWeight: 1 };
  const sites: SimulatedSite[] = Array.from({ length: 100 }, (_, i) => simulatedSite(`site-${String(i).padStart(3, '0')}`, randomDelta(rng, [12_000, 8_000], 0.01), 1));
  const dropped = pickSites(rng, sites.map((s) => s.siteId), 0.3);

  const started = performance.now();
  // the default k = 15 loses a site below t = 9 live neighbours at 30% drops almost surely: size k for the drop rate
  const degree = degreeForDropRate(100, 0.3, 1e-3);
  const outcome = await simulateSecAgg({ ctx: { runId: 'run', roundId: 'round-1', attempt: 0 }, params, sites, degree, drops: { 'masked-upload': dropped } });
  const seconds = (performance.now() - started) / 1000;
  console.log(`# 100 sites × 20,000 coordinates, k = ${degree}, 30% dropped after share-keys: ${seconds.toFixed(1)} s`);

  assert.ok(outcome.ok, outcome.ok ? '' : outcome.reason);
  const survivors = sites.filter((s) => !dropped.has(s.siteId));
  assert.equal(outcome.result.count, 70);
  assert.equal(outcome.result.totalWeight, 70);
  assert.deepEqual(outcome.survivors, survivors.map((s) => s.siteId));
  const tolerance = (2 * params.clip) / params.levels;
  let worst = 0;
  for (const name of Object.keys(outcome.result.sum)) {
    const got = outcome.result.sum[name].data;
    for (let i = 0; i < got.length; i++) {
      let mean = 0;
      for (const s of survivors) mean += s.delta[name].data[i];
      mean /= survivors.length;
      worst = Math.max(worst, Math.abs(got[i] / outcome.result.totalWeight - mean));
    }
  }
  console.log(`# worst coordinate error ${worst.toExponential(2)} (tolerance 2c/Q = ${tolerance.toExponential(2)})`);
  assert.ok(worst <= tolerance, `worst error ${worst} > 2c/Q = ${tolerance}`);
});

/** The t rule, recomputed from the graph and the drop sets: which stage aborts, or null when the round completes. */
function expectedAbort(g: SecAggGraph, drops: Partial<Record<SecAggStage, ReadonlySet<string>>>): SecAggStage | null {
  const t = g.threshold;
  const minus = (a: Set<string>, d: ReadonlySet<string> | undefined) => new Set([...a].filter((x) => !d?.has(x)));
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

test('when 10%, 30% or 45% of 100 sites drop at each stage, then the round completes or aborts exactly as the t rule says', async () => {
  const rng = new Rng(4);
  const params = { clip: 1, levels: 2 ** 20, maxWeight: 50 };
  const sites = Array.from({ length: 100 }, (_, i) => simulatedSite(`s${String(i).padStart(3, '0')}`, randomDelta(rng, [64], 0.1), 1 + rng.int(50)));
  const ids = sites.map((s) => s.siteId);
  const tally = { completed: 0, aborted: 0 };
  const started = performance.now();
  for (const stage of SECAGG_STAGES) {
    for (const rate of [0.1, 0.3, 0.45]) {
      const drops = { [stage]: pickSites(rng, ids, rate) };
      const outcome = await simulateSecAgg({ ctx: { runId: 'run', roundId: `r-${stage}-${rate}`, attempt: 0 }, params, sites, drops, graphSeed: nacl.randomBytes(32) });
      const g = outcome.server.graph;
      assert.deepEqual(g.sites, stage === 'setup' ? ids.filter((id) => !drops.setup!.has(id)) : ids);
      const expected = expectedAbort(g, drops);
      const what = `drop ${rate * 100}% at ${stage} (k=${g.degree}, t=${g.threshold})`;
      if (expected === null) {
        assert.ok(outcome.ok, `${what}: expected completion, got ${outcome.ok ? '' : outcome.reason}`);
        tally.completed++;
        // the sum is right too: Σ w·x over the sites that uploaded
        const uploaded = sites.filter((s) => g.sites.includes(s.siteId) && !drops['share-keys']?.has(s.siteId) && !drops['masked-upload']?.has(s.siteId));
        assert.equal(outcome.result.totalWeight, uploaded.reduce((a, s) => a + s.weight, 0), what);
        const name = Object.keys(outcome.result.sum)[0];
        const tolerance = (uploaded.length * 2 * params.clip * params.maxWeight) / params.levels;
        outcome.result.sum[name].data.forEach((x, i) => {
          const exact = uploaded.reduce((a, s) => a + s.weight * Math.max(-1, Math.min(1, s.delta[name].data[i])), 0);
          assert.ok(Math.abs(x - exact) <= tolerance, `${what}: coordinate ${i} ${x} vs ${exact}`);
        });
      } else {
        assert.ok(!outcome.ok, `${what}: expected an abort at ${expected}, the round completed`);
        assert.equal(outcome.stage, expected, `${what}: ${outcome.reason}`);
        assert.match(outcome.reason, /threshold/);
        assert.equal(outcome.server.abortReason !== null, true);
        tally.aborted++;
      }
    }
  }
  console.log(`# drop sweep: ${tally.completed} completed, ${tally.aborted} aborted, ${((performance.now() - started) / 1000).toFixed(1)} s`);
  assert.ok(tally.completed > 0 && tally.aborted > 0, 'the sweep exercises both outcomes');
});
