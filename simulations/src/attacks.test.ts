// Simulated attackers (issue 17): which sites attack, what they upload, the flags, and one tiny run in which
// Multi-Krum leaves the attacker out and the summary names it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeDataset, type LabeledExample } from '@fedlora/shared/data/dataset.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { attackDelta, chooseAttackers } from './attacks';
import { DEFAULT_SIM_OPTIONS, parseSimArgs, type SimOptions } from './options';
import { jsonSummary, runSimulation } from './simulate';
import { summaryMarkdown } from './report';

const honest: NamedTensors = {
  b: { shape: [2], data: new Float32Array([0.5, -0.25]) },
  a: { shape: [1, 3], data: new Float32Array([1, 0, -2]) },
};

test('when attackers are chosen, then ⌊F·sites⌋ distinct sites are, the same for the same seed and another set for another', () => {
  const a = chooseAttackers(7, 20, 0.2);
  assert.equal(a.length, 4);
  assert.equal(new Set(a).size, 4);
  assert.ok(a.every((s) => Number.isInteger(s) && s >= 0 && s < 20));
  assert.deepEqual(a, [...a].sort((x, y) => x - y));
  assert.deepEqual(chooseAttackers(7, 20, 0.2), a);
  assert.notDeepEqual(chooseAttackers(8, 20, 0.2), a);
  assert.equal(chooseAttackers(0, 100, 0.29).length, 29); // 0.29·100 is 28.999999999999996 in floating point
  assert.throws(() => chooseAttackers(0, 5, 0.1), /--attackers 0\.1 of 5 sites is no site/);
});

test('when a site attacks, then sign-flip uploads −10×, scale 100× its delta, and gaussian seeded N(0, 1) noise of its shape', () => {
  const flip = attackDelta('sign-flip', honest, 1);
  assert.deepEqual([...flip.a.data, ...flip.b.data], [-10, -0, 20, -5, 2.5]);
  const scale = attackDelta('scale', honest, 1);
  assert.deepEqual([...scale.a.data, ...scale.b.data], [100, 0, -200, 50, -25]);
  assert.deepEqual(honest.a.data, new Float32Array([1, 0, -2]), 'the honest delta is not changed');

  const noise = attackDelta('gaussian', honest, 42);
  assert.deepEqual([noise.a.shape, noise.b.shape], [[1, 3], [2]]);
  assert.deepEqual(attackDelta('gaussian', honest, 42), noise, 'same seed, same noise');
  assert.notDeepEqual(attackDelta('gaussian', honest, 43), noise);
  const big = attackDelta('gaussian', { w: { shape: [20_000], data: new Float32Array(20_000) } }, 5).w.data;
  const mean = big.reduce((s, x) => s + x, 0) / big.length;
  const sd = Math.sqrt(big.reduce((s, x) => s + (x - mean) ** 2, 0) / big.length);
  assert.ok(Math.abs(mean) < 0.03 && Math.abs(sd - 1) < 0.03, `mean ${mean}, sd ${sd}`);
});

test('when --attack and --attackers are parsed, then both are needed, the kind is checked and 0 is an honest run', () => {
  const o = parseSimArgs(['--sites', '20', '--attack', 'sign-flip', '--attackers', '0.2']) as SimOptions;
  assert.deepEqual(o.attack, { kind: 'sign-flip', fraction: 0.2 });
  assert.equal((parseSimArgs([]) as SimOptions).attack, null);
  assert.equal((parseSimArgs(['--attack', 'scale', '--attackers', '0']) as SimOptions).attack, null);
  assert.throws(() => parseSimArgs(['--attack', 'scale']), /--attack needs --attackers F/);
  assert.throws(() => parseSimArgs(['--attackers', '0.2']), /--attackers needs --attack sign-flip\|scale\|gaussian/);
  assert.throws(() => parseSimArgs(['--attack', 'label-flip', '--attackers', '0.2']), /--attack must be one of sign-flip, scale, gaussian/);
  assert.throws(() => parseSimArgs(['--attack', 'scale', '--attackers', '1.5']), /--attackers must be a number/);
  assert.throws(() => parseSimArgs(['--sites', '4', '--attack', 'scale', '--attackers', '0.2']), /no site/);
});

/** 40 examples per site for 5 sites and a small held-out set (texts vary by a number so none repeat). */
function tinyData() {
  const spam = ['win cash now', 'cheap pills online', 'claim your free prize'];
  const ham = ['meeting moved to noon', 'see the attached report', 'notes from the call'];
  const make = (n: number, offset: number): LabeledExample[] =>
    Array.from({ length: n }, (_, i) => ({ text: `${(i % 2 ? ham : spam)[i % 3]} ${offset + i}`, label: i % 2 ? 'ham' : 'spam' }));
  const labels = ['ham', 'spam'];
  return { train: makeDataset('tiny-train', make(200, 0), labels), heldout: makeDataset('tiny-heldout', make(32, 1000), labels), labels };
}

test('when one of 5 sites attacks by scaling, then every arm sees its update, Multi-Krum leaves it out, and the summary names it', async () => {
  // Arrange: f = ⌊0.2·5⌋ = 1, so Multi-Krum averages the n − f = 4 lowest-scored updates
  const o: SimOptions = {
    ...DEFAULT_SIM_OPTIONS,
    sites: 5,
    sitesPerRound: 5,
    rounds: 1,
    alpha: null,
    maxSteps: 2,
    batchSize: 8,
    maxLength: 32,
    strategies: ['fedavg', 'multi-krum'],
    strategyOptions: { 'multi-krum': { byzantineFraction: 0.2 } },
    attack: { kind: 'scale', fraction: 0.2 },
    centralized: false,
    localOnly: false,
    quiet: true,
  };

  // Act
  const res = await runSimulation(o, { data: tinyData() });

  // Assert
  const attackers = chooseAttackers(o.seed, 5, 0.2).map((s) => `site-${String(s).padStart(4, '0')}`);
  assert.deepEqual(res.attack, { kind: 'scale', fraction: 0.2, sites: attackers });
  const [fedavg] = res.arms.fedavg.rounds;
  const [krum] = res.arms['multi-krum'].rounds;
  assert.deepEqual([fedavg.attackerUpdates, fedavg.excludedSites], [1, undefined]);
  assert.deepEqual([krum.attackerUpdates, krum.excludedSites, krum.updates], [1, attackers, 4]);
  assert.deepEqual(JSON.parse(jsonSummary(res, '/tmp/run')).attack, res.attack);
  assert.match(summaryMarkdown(res, 'npm run simulate -- --attack scale'), new RegExp(`Attack: scale by 1 of 5 sites \\(${attackers[0]}\\)`));
});

test('when Multi-Krum gets too few updates for its f, then the simulated round keeps the adapter and says why', async () => {
  // f = ⌊0.4·3⌋ = 1 needs more than 2f + 2 = 4 updates
  const o: SimOptions = {
    ...DEFAULT_SIM_OPTIONS,
    sites: 3,
    sitesPerRound: 3,
    rounds: 1,
    alpha: null,
    maxSteps: 1,
    batchSize: 8,
    maxLength: 32,
    strategies: ['multi-krum'],
    strategyOptions: { 'multi-krum': { byzantineFraction: 0.4 } },
    centralized: false,
    localOnly: false,
    quiet: true,
  };
  const res = await runSimulation(o, { data: tinyData() });
  const [r] = res.arms['multi-krum'].rounds;
  assert.equal(r.aggregated, false);
  assert.match(r.keptReason ?? '', /more than 2f \+ 2 = 4 updates for f = 1 Byzantine sites, got 3/);
  assert.equal(res.arms['multi-krum'].accuracy, res.arms['multi-krum'].initialAccuracy);
});
