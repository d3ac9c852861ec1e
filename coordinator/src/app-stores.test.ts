// The store seam of createCoordinator: injected adapter and site stores that answer asynchronously (as a database
// store would) carry enrollment, authentication and a whole round over real sockets, and the coordinator's
// Storage never gets a registry file of its own.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { io as connect, type Socket } from 'socket.io-client';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { generateSiteKeys, publicIdentity } from '@fedlora/shared/crypto/keys.ts';
import { signChallenge } from '@fedlora/shared/crypto/envelope.ts';
import { MemoryStorage } from './storage';
import { createCoordinator } from './app';
import { DEFAULT_SETTINGS, DEFAULT_STOP } from './rounds/settings';
import { makeUpload, tinyAdapter, tinyFakeTask } from './rounds/fakes';
import type { ConfigureMessage } from './rounds/types';
import { MemoryAdapterStore, MemorySiteStore } from './memory-stores';

const ADMIN = 'admin-token-for-tests-0123456789';

// acks are loose JSON here: each step asserts the fields it reads
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type LooseAck = { ok: boolean; code?: string; data?: any };

test('when the coordinator is given async in-memory adapter and site stores, then a round over the sockets enrolls, versions and records into them', async () => {
  // Arrange: a coordinator on the injected stores; its Storage keeps only its own files
  const adapterStore = new MemoryAdapterStore();
  const siteStore = new MemorySiteStore();
  const storage = new MemoryStorage();
  const coord = await createCoordinator({
    adminToken: ADMIN,
    storage,
    adapterStore,
    siteStore,
    strategy: createStrategy('fedavg', {}),
    settings: {
      ...DEFAULT_SETTINGS,
      minSites: 2,
      sampleWaitS: 0,
      deadlineS: 30,
      ackTimeoutS: 5,
      maxDeltaNorm: 10,
    },
    stop: { ...DEFAULT_STOP, rounds: 1 },
    task: tinyFakeTask(),
    autostart: false,
    retryDelayMs: 0,
  });
  const url = await coord.listen(0);
  const sockets: Socket[] = [];
  const api = (path: string, init: RequestInit = {}) =>
    fetch(url + path, {
      ...init,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
    });
  const ask = (s: Socket, event: string, payload: unknown) =>
    s.timeout(5000).emitWithAck(event, payload) as Promise<LooseAck>;
  try {
    for (const [name, bias, n] of [
      ['Site A', 0.1, 10],
      ['Site B', 0.4, 30],
    ] as const) {
      const created = await api('/api/sites', { method: 'POST', body: JSON.stringify({ name }) });
      const { siteId, joinToken } = (await created.json()) as { siteId: string; joinToken: string };
      const keys = generateSiteKeys();
      const s = connect(url, { transports: ['websocket'], reconnection: false, forceNew: true });
      sockets.push(s);
      await new Promise<void>((resolve) => s.once('connect', () => resolve()));
      assert.equal(
        (await ask(s, 'site:enroll', { token: joinToken, siteId, ...publicIdentity(keys) })).ok,
        true,
      );
      const ch = await ask(s, 'auth:challenge', { siteId });
      const signature = signChallenge(
        new Uint8Array(ch.data.challenge),
        { siteId, coordinatorId: ch.data.coordinatorId },
        keys.signing.secretKey,
      );
      const proved = await ask(s, 'auth:prove', { siteId, signature });
      assert.equal(proved.data?.manifest.versionId, 'v0', JSON.stringify(proved));
      let cfg: ConfigureMessage;
      s.on('round:configure', (m: ConfigureMessage, ack: (a: unknown) => void) => {
        cfg = m;
        ack({ ok: true, data: { accepted: true } });
      });
      s.on('round:train', (_m: unknown, ack: (a: unknown) => void) => {
        ack({ ok: true, data: { started: true } });
        const delta = tinyAdapter(0);
        delta['classifier.bias'].data.fill(bias);
        const box = { ...cfg, coordinatorBoxPublicKey: new Uint8Array(cfg.coordinatorBoxPublicKey) };
        void ask(s, 'update:upload', makeUpload(keys, siteId, box, delta, { numExamples: n }));
      });
      assert.equal(
        (await ask(s, 'site:ready', { numExamples: n, encodings: ['fp32'], backend: 'cpu' })).ok,
        true,
      );
    }

    // Act
    assert.equal((await api('/api/federation/start', { method: 'POST' })).status, 200);
    await coord.federation.whenStopped();

    // Assert: (10·0.1 + 30·0.4) / 40 = 0.325, in the injected store and through the API that reads it
    assert.equal(await adapterStore.currentId(), 'v1');
    const bias = (await adapterStore.loadState('v1'))['classifier.bias'].data;
    assert.ok(Math.abs(bias[0] - 0.325) < 1e-6, `bias ${bias[0]}`);
    const rounds = await adapterStore.rounds();
    assert.deepEqual([rounds.length, rounds[0].outcome, rounds[0].updates], [1, 'aggregated', 2]);
    const versions = (await (await api('/api/versions')).json()) as { currentId: string };
    assert.equal(versions.currentId, 'v1');
    const status = (await (await api('/api/status')).json()) as { sitesEnrolled: number; lastRound: number };
    assert.deepEqual([status.sitesEnrolled, status.lastRound], [2, 1]);
    assert.deepEqual(
      (await siteStore.list()).map((s) => [s.id, s.enrolledAt !== null]),
      [
        ['site-a', true],
        ['site-b', true],
      ],
    );
    assert.equal(coord.federation.state, 'finished');
    for (const file of ['index.json', 'sites.json', 'sites.journal'])
      assert.equal(await storage.read(file), null, `${file} is not written when a store is given`);
  } finally {
    for (const s of sockets) s.disconnect();
    await coord.close();
  }
});
