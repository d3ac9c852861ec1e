// The metrics registry fed from the coordinator's event paths: a round with the in-memory fakes moves the round,
// stage, upload and byte counters; rejections from the rejection log and from the round's inbox are counted by
// code (also those the log's per-peer budget leaves out); presence and activity give the per-site gauges.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { silentLogger } from './log';
import { MemoryStorage } from './storage';
import { AdapterRegistry } from './registry/registry';
import { Federation } from './rounds/federation';
import { DEFAULT_SETTINGS, DEFAULT_STOP } from './rounds/settings';
import { FakeEvaluator, FakeTransport, ManualClock, generateSiteKeys, makeUpload, tinyAdapter } from './rounds/fakes';
import type { ConfigureMessage } from './rounds/types';
import { RejectionLog } from './socket/rejection-log';
import { CoordinatorMetrics, type SiteLastSeen } from './metrics';

/** The value of one sample of the exposition text, e.g. sample(text, 'fedlora_rounds_total{outcome="kept"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function metricsWith(enrolled: SiteLastSeen[] = [], now = () => Date.parse('2026-01-01T00:01:00Z')) {
  return new CoordinatorMetrics({ enrolledSites: () => enrolled, now });
}

test('when a round aggregates two uploads and a late upload is refused, then rounds, stages, uploads, bytes and rejections move', async () => {
  // Arrange: the round loop with fakes, its events going to the metrics as app.ts forwards them
  const metrics = metricsWith();
  const transport = new FakeTransport();
  const fed = new Federation({
    strategy: createStrategy('fedavg', {}),
    transport,
    evaluator: new FakeEvaluator(),
    store: await AdapterRegistry.open(new MemoryStorage()),
    initialState: () => tinyAdapter(0),
    settings: { ...DEFAULT_SETTINGS, minSites: 2, sampleWaitS: 0, deadlineS: 60, maxDeltaNorm: 10 },
    stop: { ...DEFAULT_STOP },
    log: silentLogger,
    clock: new ManualClock(),
    rng: () => 0,
    retryDelayMs: 0,
    onEvent: (e) => metrics.onFederationEvent(e),
  });
  await fed.init();
  const configs = new Map<string, ConfigureMessage>();
  const keys = { a: generateSiteKeys(), b: generateSiteKeys() };
  for (const id of ['a', 'b'] as const)
    transport.addSite(
      id,
      {
        onTrain: (cfg) => {
          configs.set(id, cfg);
          fed.upload(id, keys[id].signing.publicKey, makeUpload(keys[id], id, cfg, tinyAdapter(0.01), { numExamples: 5 }));
        },
      },
      5,
    );

  // Act: one round, then an upload for the closed round
  const rec = await fed.runRound();
  const cfg = configs.get('a') as ConfigureMessage;
  assert.throws(() => fed.upload('a', keys.a.signing.publicKey, makeUpload(keys.a, 'a', cfg, tinyAdapter(0.01))));
  const { body } = await metrics.expose();

  // Assert
  assert.equal(rec?.outcome, 'aggregated');
  assert.equal(sample(body, 'fedlora_rounds_total{outcome="aggregated"}'), 1);
  assert.equal(sample(body, 'fedlora_rounds_total{outcome="kept"}'), 0);
  assert.equal(sample(body, 'fedlora_round_duration_seconds_count'), 1);
  for (const stage of ['sample', 'configure', 'collect', 'aggregate', 'evaluate', 'version'])
    assert.equal(sample(body, `fedlora_round_stage_duration_seconds_count{stage="${stage}"}`), 1, stage);
  assert.equal(sample(body, 'fedlora_uploads_total{outcome="accepted"}'), 2);
  assert.equal(sample(body, 'fedlora_uploads_total{outcome="rejected"}'), 1);
  assert.equal(sample(body, 'fedlora_rejections_total{source="upload",code="ROUND_CLOSED"}'), 1);
  assert.ok((rec?.uploadedBytes ?? 0) > 0);
  assert.equal(sample(body, 'fedlora_transfer_bytes_total{direction="in",kind="upload"}'), rec?.uploadedBytes);
});

test('when the rejection log suppresses lines over its budget, then the metrics still count every rejection by code', async () => {
  const metrics = metricsWith();
  const rejections = new RejectionLog(silentLogger, { perWindow: 1 }, Date.now, (event, code) =>
    metrics.onRejection(event, code),
  );

  for (let i = 0; i < 3; i++) rejections.record('request.rejected', '10.0.0.1', { code: 'BAD_MESSAGE' });
  rejections.record('connection.refused', '10.0.0.2', { code: 'UNAUTHORIZED' });
  rejections.close();
  const { body } = await metrics.expose();

  assert.equal(sample(body, 'fedlora_rejections_total{source="request.rejected",code="BAD_MESSAGE"}'), 3);
  assert.equal(sample(body, 'fedlora_rejections_total{source="connection.refused",code="UNAUTHORIZED"}'), 1);
});

test('when sites connect and leave, then sites online, ready and the last-seen lag of enrolled sites only are exposed', async () => {
  // a: seen 30 s before "now"; b: never seen; c: connected now
  const enrolled: SiteLastSeen[] = [
    { siteId: 'a', lastSeen: '2026-01-01T00:00:30Z' },
    { siteId: 'b', lastSeen: null },
    { siteId: 'c', lastSeen: '2026-01-01T00:00:00Z' },
  ];
  const metrics = metricsWith(enrolled);

  metrics.onSiteStatus({ siteId: 'c', online: true, ready: true });
  metrics.onSiteStatus({ siteId: 'd', online: true, ready: false });
  metrics.onSiteStatus({ siteId: 'd', online: false, ready: false });
  metrics.onSiteStatus({ siteId: 'x', online: true, ready: false });
  let { body } = await metrics.expose();

  assert.equal(sample(body, 'fedlora_sites_online'), 2);
  assert.equal(sample(body, 'fedlora_sites_ready'), 1);
  assert.equal(sample(body, 'fedlora_site_last_seen_seconds{site="a"}'), 30);
  assert.equal(sample(body, 'fedlora_site_last_seen_seconds{site="b"}'), undefined, 'never seen: no sample');
  assert.equal(sample(body, 'fedlora_site_last_seen_seconds{site="c"}'), 0, 'connected: 0');
  assert.equal(sample(body, 'fedlora_site_last_seen_seconds{site="x"}'), undefined, 'not enrolled: no series');

  // a revoked site leaves the enrolled list, and its series goes with it at the next scrape
  enrolled.splice(0, 1);
  ({ body } = await metrics.expose());
  assert.equal(sample(body, 'fedlora_site_last_seen_seconds{site="a"}'), undefined);
});

test('when bytes go out to sites, then they are counted by kind', async () => {
  const metrics = metricsWith();

  metrics.onTransfer('out', 'adapter', 1000);
  metrics.onTransfer('out', 'model', 300);
  metrics.onTransfer('out', 'model', 200);
  const { body } = await metrics.expose();

  assert.equal(sample(body, 'fedlora_transfer_bytes_total{direction="out",kind="adapter"}'), 1000);
  assert.equal(sample(body, 'fedlora_transfer_bytes_total{direction="out",kind="model"}'), 500);
});

test('when two projects run rounds at the same time and share a site id, then every stage of both is timed and each project\'s site counts on its own', async () => {
  let t = Date.parse('2026-01-01T00:00:00Z');
  const metrics = new CoordinatorMetrics({
    enrolledSites: () => [{ siteId: 'hospital-a', lastSeen: null }, { siteId: 'triage/hospital-a', lastSeen: null }],
    now: () => t,
  });
  const stage = (project: string, roundId: string, s: 'train' | 'collect') =>
    metrics.onFederationEvent({ type: 'round:stage', round: 1, roundId, stage: s } as never, project);
  // interleaved: default's train, triage's train, default's collect, triage's collect
  stage('default', 'r-default', 'train');
  t += 1000;
  stage('triage', 'r-triage', 'train');
  t += 1000;
  stage('default', 'r-default', 'collect');
  t += 1000;
  stage('triage', 'r-triage', 'collect');
  const text = (await metrics.expose()).body;
  // both trains were timed (2 s each); one project's stage never closes the other's
  assert.equal(sample(text, 'fedlora_round_stage_duration_seconds_count{stage="train"}'), 2, text);
  assert.equal(sample(text, 'fedlora_round_stage_duration_seconds_sum{stage="train"}'), 4);
  for (const project of ['default', 'triage']) metrics.onSiteStatus({ siteId: 'hospital-a', online: true, ready: true }, project);
  const after = (await metrics.expose()).body;
  assert.equal(sample(after, 'fedlora_sites_online'), 2);
  assert.equal(sample(after, 'fedlora_site_last_seen_seconds{site="hospital-a"}'), 0);
  assert.equal(sample(after, 'fedlora_site_last_seen_seconds{site="triage/hospital-a"}'), 0);
});
