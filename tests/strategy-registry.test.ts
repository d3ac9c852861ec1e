// Issue 16 part 1: a strategy owns its options. A new strategy is one file (tests/strategies/fedstep.ts) plus one
// registerStrategy line (below); with no other edit it runs a round, and its option is a coordinator flag in
// `fedlora-coordinator --help`, a field of the settings API, a field of GET /api/strategies (the console's form) and a
// simulator flag in `npm run simulate -- --help`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerStrategy } from '@fedlora/shared/aggregation/index.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import {
  AdapterRegistry,
  coordinatorHelp,
  createCoordinator,
  DirStorage,
  DEFAULT_STOP,
  Federation,
  MemoryStorage,
  parseConfig,
  silentLogger,
  strategyFromSettings,
  type Coordinator,
} from '@fedlora/coordinator';
import { FakeEvaluator, FakeTransport, ManualClock, generateSiteKeys, makeUpload, tinyAdapter, tinyFakeTask } from '@fedlora/coordinator/testing';
import { parseSimArgs, simHelp, type SimOptions } from '../simulations/src/options';
import { FEDSTEP } from './strategies/fedstep';

registerStrategy(FEDSTEP);

const TOKEN = 'admin-token-for-registry-test-0123';
let dir: string;
let coord: Coordinator;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedlora-registry-'));
  const config = parseConfig(['--min-sites', '1'], { FEDLORA_ADMIN_TOKEN: TOKEN });
  assert.ok(config !== 'help');
  coord = await createCoordinator({
    adminToken: TOKEN,
    storage: new DirStorage(join(dir, 'data')),
    strategy: strategyFromSettings('fedavg', config.settings),
    settings: config.settings,
    stop: DEFAULT_STOP,
    task: tinyFakeTask([]),
    autostart: false,
  });
  await coord.listen(0);
});

after(async () => {
  await coord.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A delta that only moves classifier.bias by `b` (the fake evaluator's accuracy is 0.5 + mean bias). */
function biasDelta(b: number): NamedTensors {
  const d = tinyAdapter(0);
  d['classifier.bias'].data.fill(b);
  return d;
}

test('when a new strategy is registered, then the coordinator flag parses into the settings and a round aggregates with it', async () => {
  // Arrange: the coordinator's command line picks the new strategy and sets its option
  const config = parseConfig(['--strategy', 'fedstep', '--step-size', '0.5'], { FEDLORA_ADMIN_TOKEN: TOKEN });
  assert.ok(config !== 'help');
  assert.deepEqual(config.settings.strategyOptions.fedstep, { stepSize: 0.5 });
  assert.throws(
    () => parseConfig(['--step-size', '2'], { FEDLORA_ADMIN_TOKEN: TOKEN }),
    /--step-size must be ≤ 1/,
  );
  const transport = new FakeTransport();
  const store = await AdapterRegistry.open(new MemoryStorage());
  const fed = new Federation({
    strategy: strategyFromSettings(config.strategy, config.settings),
    transport,
    evaluator: new FakeEvaluator(),
    store,
    initialState: () => tinyAdapter(0),
    settings: { ...config.settings, sampleWaitS: 0, maxDeltaNorm: 10 },
    stop: config.stop,
    log: silentLogger,
    clock: new ManualClock(),
    rng: () => 0,
  });
  await fed.init();
  for (const [id, b] of [['a', 0.2], ['b', 0.6]] as const) {
    const keys = generateSiteKeys();
    transport.addSite(
      id,
      { onTrain: (cfg) => fed.upload(id, keys.signing.publicKey, makeUpload(keys, id, cfg, biasDelta(b), { numExamples: 10 })) },
      10,
    );
  }

  // Act
  const record = await fed.runRound();

  // Assert: v1 = v0 + 0.5 · mean(0.2, 0.6) = 0.2 on the bias; the record names the strategy
  assert.equal(record?.outcome, 'aggregated');
  assert.equal(record?.strategy, 'fedstep');
  const bias = (await store.loadState('v1'))['classifier.bias'].data;
  assert.ok(Math.abs(bias[0] - 0.2) < 1e-6, `bias ${bias[0]}`);
  await fed.close();
});

test('when a new strategy is registered, then its option is in the coordinator and simulator --help, and the simulator flag parses', () => {
  assert.match(coordinatorHelp(), /--step-size X +fedstep stepSize: server step size s along the mean delta, in \(0, 1\] \(1\)/);
  assert.match(coordinatorHelp(), /--strategy fedavg\|fedprox\|fedadam\|fedavgm\|median\|trimmed-mean\|multi-krum\|fedstep/);
  assert.match(simHelp(), /--step-size X +fedstep stepSize: server step size/);
  const o = parseSimArgs(['--strategy', 'fedavg,fedstep', '--step-size', '0.25']) as SimOptions;
  assert.deepEqual([o.strategies, o.strategyOptions], [['fedavg', 'fedstep'], { fedstep: { stepSize: 0.25 } }]);
  assert.throws(() => parseSimArgs(['--step-size', '0']), /--step-size must be > 0/);
});

test('when a new strategy is registered, then the settings API shows, changes and checks its option and GET /api/strategies describes it', async () => {
  const api = (path: string, init: RequestInit = {}) =>
    fetch((coord.url as string) + path, {
      ...init,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    });

  const settings = (await (await api('/api/settings')).json()) as { strategyOptions: Record<string, unknown> };
  assert.deepEqual(settings.strategyOptions.fedstep, { stepSize: 1 });
  const strategies = (await (await api('/api/strategies')).json()) as { name: string; options: unknown[] }[];
  assert.deepEqual(strategies.find((s) => s.name === 'fedstep')?.options, [
    {
      key: 'stepSize',
      flag: 'step-size',
      description: 'server step size s along the mean delta',
      type: 'number',
      default: 1,
      exclusiveMinimum: 0,
      maximum: 1,
      bounds: 'in (0, 1]',
    },
  ]);

  const put = await api('/api/settings', {
    method: 'PUT',
    body: JSON.stringify({ strategy: 'fedstep', strategyOptions: { fedstep: { stepSize: 0.25 } } }),
  });
  assert.equal(put.status, 200);
  const after = (await put.json()) as { strategy: string; strategyOptions: Record<string, unknown> };
  assert.deepEqual([after.strategy, after.strategyOptions.fedstep], ['fedstep', { stepSize: 0.25 }]);
  assert.equal(coord.federation.status().strategy, 'fedstep');

  const bad = await api('/api/settings', {
    method: 'PUT',
    body: JSON.stringify({ strategyOptions: { fedstep: { stepSize: 2 } } }),
  });
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: { message: string } }).error.message, /strategyOptions\.fedstep\.stepSize must be ≤ 1/);
});

test('when the robust strategies are built in, then their options are coordinator and simulator flags, settings and GET /api/strategies entries', async () => {
  // Arrange / Act: the flags of issue 17's robust aggregation, through the registry only
  const config = parseConfig(
    ['--strategy', 'multi-krum', '--byzantine-fraction', '0.25', '--krum-select', '5', '--trim-beta', '0.1'],
    { FEDLORA_ADMIN_TOKEN: TOKEN },
  );
  assert.ok(config !== 'help');
  const sim = parseSimArgs(['--strategy', 'median,trimmed-mean,multi-krum', '--trim-beta', '0.3']) as SimOptions;
  const strategies = (await (
    await fetch((coord.url as string) + '/api/strategies', { headers: { authorization: `Bearer ${TOKEN}` } })
  ).json()) as { name: string; options: { key: string }[] }[];

  // Assert
  assert.equal(config.strategy, 'multi-krum');
  assert.deepEqual(config.settings.strategyOptions['multi-krum'], { byzantineFraction: 0.25, select: 5 });
  assert.deepEqual(config.settings.strategyOptions['trimmed-mean'], { beta: 0.1 });
  assert.deepEqual(config.settings.strategyOptions.median, {});
  assert.throws(() => parseConfig(['--trim-beta', '0.5'], { FEDLORA_ADMIN_TOKEN: TOKEN }), /--trim-beta must be < 0\.5/);
  assert.match(coordinatorHelp(), /--trim-beta X +trimmed-mean beta: fraction β of the values cut from each side/);
  assert.match(simHelp(), /--krum-select X +multi-krum select: m, how many lowest-scored updates to average/);
  assert.deepEqual([sim.strategies, sim.strategyOptions['trimmed-mean']], [['median', 'trimmed-mean', 'multi-krum'], { beta: 0.3 }]);
  assert.deepEqual(
    strategies.filter((s) => ['median', 'trimmed-mean', 'multi-krum'].includes(s.name)).map((s) => [s.name, s.options.map((o) => o.key)]),
    [['median', []], ['trimmed-mean', ['beta']], ['multi-krum', ['byzantineFraction', 'select']]],
  );
});

test('when multi-krum gets too few updates for its f in a coordinator round, then the round keeps the adapter and its reason says why', async () => {
  // Arrange: 2 sites, f = ⌊0.2·2⌋ = 0 still needs more than 2 updates
  const config = parseConfig(['--strategy', 'multi-krum', '--min-sites', '2'], { FEDLORA_ADMIN_TOKEN: TOKEN });
  assert.ok(config !== 'help');
  const transport = new FakeTransport();
  const store = await AdapterRegistry.open(new MemoryStorage());
  const fed = new Federation({
    strategy: strategyFromSettings(config.strategy, config.settings),
    transport,
    evaluator: new FakeEvaluator(),
    store,
    initialState: () => tinyAdapter(0),
    settings: { ...config.settings, sampleWaitS: 0, maxDeltaNorm: 10 },
    stop: config.stop,
    log: silentLogger,
    clock: new ManualClock(),
    rng: () => 0,
  });
  await fed.init();
  for (const [id, b] of [['a', 0.2], ['b', 0.6]] as const) {
    const keys = generateSiteKeys();
    transport.addSite(
      id,
      { onTrain: (cfg) => fed.upload(id, keys.signing.publicKey, makeUpload(keys, id, cfg, biasDelta(b), { numExamples: 10 })) },
      10,
    );
  }

  // Act
  const record = await fed.runRound();

  // Assert
  assert.equal(record?.outcome, 'kept');
  assert.match(record?.reason ?? '', /multi-krum needs more than 2f \+ 2 = 2 updates for f = 0 Byzantine sites, got 2/);
  assert.equal(record?.versionId, null);
  await fed.close();
});
