// Issue 8, "Must show" 3 over real sockets: a coordinator (in-process, tiny fake model: no tfjs) runs rounds with
// two honest hand-made sites and a malicious enrolled one that sends a forged signature, wrong round ids, wrong
// shapes, NaN values, an oversized upload, an update naming another site and a replay, while an unknown site knocks
// and sends a frame over the transport limit. Each is refused with its own code, and each round still completes
// with exactly the honest example-weighted mean (the coordinator's unit tests check the codes one function deep).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { io as connect, type Socket } from 'socket.io-client';
import type { Coordinator } from '@fedlora/coordinator';
import { makeUpload, tinyAdapter } from '@fedlora/coordinator/testing';
import { generateSiteKeys, publicIdentity, type SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { sealAndSign, signChallenge } from '@fedlora/shared/crypto/envelope.ts';
import { decodeAdapter, newMessageNonce } from '@fedlora/shared/protocol/codec.ts';
import { LIMITS } from '@fedlora/shared/protocol/limits.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { poll, within } from './federation-harness';
import { adminApi, adminFeed, type AdminFeed, type RoundRecord } from './admin-client';
import { startTinyCoordinator, type TinyCoordinator } from './tiny-coordinator';

type Ack = { ok: boolean; code?: string; data?: Record<string, unknown> };
interface Cfg {
  roundId: string;
  round: number;
  coordinatorBoxPublicKey: Uint8Array;
}

let tiny: TinyCoordinator;
let coord: Coordinator;
let feed: AdminFeed;
let log: TinyCoordinator['log'];
const sockets: Socket[] = [];

before(async () => {
  tiny = await startTinyCoordinator({ name: 'reject', rounds: 2, settings: { minSites: 3, deadlineS: 60, ackTimeoutS: 10 } });
  ({ coord, log } = tiny);
  feed = await adminFeed(coord.url as string);
});

after(async () => {
  feed?.close();
  for (const s of sockets) s.disconnect();
  await tiny?.close();
});

function open(): Promise<Socket> {
  const s = connect(coord.url as string, { transports: ['websocket'], reconnection: false, forceNew: true });
  sockets.push(s);
  return within(
    new Promise((resolve, reject) => {
      s.once('connect', () => resolve(s));
      s.once('connect_error', reject);
    }),
    10_000,
    'a socket.io connection',
  );
}

const ask = (s: Socket, event: string, payload: unknown) =>
  s.timeout(10_000).emitWithAck(event, payload) as Promise<Ack>;

/** bias-only deltas make the weighted mean easy to compute by hand */
function biasDelta(b: number): NamedTensors {
  const d = tinyAdapter(0);
  d['classifier.bias'].data.fill(b);
  return d;
}

interface HandMadeSite {
  siteId: string;
  keys: SiteKeys;
  socket: Socket;
}

/** A hand-made site: enrolled with a fresh token, authenticated, accepting configure, calling onTrain per round. */
async function handMadeSite(
  name: string,
  numExamples: number,
  onTrain: (cfg: Cfg, site: HandMadeSite) => void,
): Promise<HandMadeSite> {
  const r = await adminApi(coord.url as string).json<{ siteId: string; joinToken: string }>('/api/sites', {
    method: 'POST',
    body: JSON.stringify({ name }),
  });
  const site: HandMadeSite = { siteId: r.siteId, keys: generateSiteKeys(), socket: await open() };
  const s = site.socket;
  assert.equal(
    (await ask(s, 'site:enroll', { token: r.joinToken, siteId: r.siteId, ...publicIdentity(site.keys) })).ok,
    true,
  );
  const ch = await ask(s, 'auth:challenge', { siteId: r.siteId });
  const d = ch.data as { challenge: ArrayBuffer; coordinatorId: string };
  const signature = signChallenge(
    new Uint8Array(d.challenge),
    { siteId: r.siteId, coordinatorId: d.coordinatorId },
    site.keys.signing.secretKey,
  );
  assert.equal((await ask(s, 'auth:prove', { siteId: r.siteId, signature })).ok, true);
  let cfg: Cfg | null = null;
  s.on('round:configure', (msg: Cfg, ack: (a: unknown) => void) => {
    cfg = {
      roundId: msg.roundId,
      round: msg.round,
      coordinatorBoxPublicKey: new Uint8Array(msg.coordinatorBoxPublicKey),
    };
    ack({ ok: true, data: { accepted: true } });
  });
  s.on('round:train', (_msg: unknown, ack: (a: unknown) => void) => {
    ack({ ok: true, data: { started: true } });
    onTrain(cfg as Cfg, site);
  });
  assert.equal((await ask(s, 'site:ready', { numExamples, encodings: ['fp32'], backend: 'cpu' })).ok, true);
  return site;
}

/** An update packed by hand (encodeUpdate refuses NaN; a malicious site would not use it). */
function nanUpload(site: HandMadeSite, cfg: Cfg) {
  const tensors: Record<string, unknown> = {};
  for (const [k, t] of Object.entries(biasDelta(0.2))) {
    const d = new Float32Array(t.data);
    if (k === 'classifier.bias') d[1] = NaN;
    tensors[k] = { shape: t.shape, data: new Uint8Array(d.buffer) };
  }
  const wire = {
    v: 1,
    kind: 'update',
    roundId: cfg.roundId,
    siteId: site.siteId,
    nonce: newMessageNonce(),
    numExamples: 20,
    metrics: { loss: 1 },
    encoding: 'fp32',
    tensors,
  };
  const payload = new Uint8Array(new Packr({ useRecords: false }).pack(wire));
  const envelope = sealAndSign(payload, {
    roundId: cfg.roundId,
    recipientBoxPublicKey: cfg.coordinatorBoxPublicKey,
    signing: site.keys.signing,
  });
  return { roundId: cfg.roundId, envelope };
}

test(
  'when a malicious site and an unknown site send every kind of bad upload during rounds, then each is refused with its own code and both rounds version the mean of the good updates',
  { timeout: 120_000 },
  async () => {
    // Arrange. B uploads only once the attacker is done, so that round 1 is still collecting when the replay arrives.
    let attackerDone!: () => void;
    const attackDone = new Promise<void>((r) => (attackerDone = r));
    const codes: Record<number, (string | undefined)[]> = { 1: [], 2: [] };
    const unknownSite: (string | undefined)[] = [];
    let roundOneUpload: ReturnType<typeof makeUpload> | null = null;
    const honest = (bias: number, n: number, wait: Promise<void>) => (cfg: Cfg, site: HandMadeSite) =>
      void wait.then(() =>
        ask(
          site.socket,
          'update:upload',
          makeUpload(site.keys, site.siteId, cfg, biasDelta(bias), { numExamples: n }),
        ),
      );

    async function attack(cfg: Cfg, m: HandMadeSite): Promise<void> {
      const send = async (req: unknown) =>
        codes[cfg.round].push((await ask(m.socket, 'update:upload', req)).code);
      const good = makeUpload(m.keys, m.siteId, cfg, biasDelta(0.2), { numExamples: 20 });
      if (cfg.round === 2) {
        const old = roundOneUpload as ReturnType<typeof makeUpload>;
        await send(old); // round 1's accepted upload again: that round is closed
        await send({ ...old, roundId: cfg.roundId }); // … relabelled for round 2: its signed envelope still says round 1
        await send(good);
        return;
      }
      await send(makeUpload(generateSiteKeys(), m.siteId, cfg, biasDelta(0.2))); // forged signature
      await send({ ...good, roundId: 'r99-elsewhere' }); // wrong round id on the request
      await send(makeUpload(m.keys, m.siteId, cfg, biasDelta(0.2), { roundIdInside: 'r0-earlier' })); // … inside the signed payload
      const wrongShape = biasDelta(0.2);
      wrongShape['classifier.bias'] = { shape: [3], data: new Float32Array(3) };
      await send(makeUpload(m.keys, m.siteId, cfg, wrongShape)); // wrong shapes
      await send(nanUpload(m, cfg)); // NaN
      const maxUpload = 2 * 30 * 4 + 64 * 1024; // the default limit: 2 × the fp32 tiny adapter (30 floats) + 64 KiB
      await send({ ...good, envelope: { ...good.envelope, ciphertext: new Uint8Array(maxUpload + 1) } }); // oversized
      await send(makeUpload(m.keys, m.siteId, cfg, biasDelta(0.2), { siteIdInside: 'site-a' })); // names another site
      // meanwhile an unknown site knocks, then sends a frame over the transport's limit
      const x = await open();
      // a challenge is answered as for any id (no enumeration); the proof then fails like every failed proof
      const knock = await ask(x, 'auth:challenge', { siteId: 'mallory' });
      unknownSite.push(knock.ok ? 'challenged' : knock.code);
      unknownSite.push((await ask(x, 'auth:prove', { siteId: 'mallory', signature: new Uint8Array(64) })).code);
      unknownSite.push(
        (
          await ask(x, 'site:enroll', {
            token: 'mallory.not-a-join-token',
            siteId: 'mallory',
            ...publicIdentity(generateSiteKeys()),
          })
        ).code,
      );
      unknownSite.push((await ask(x, 'update:upload', good)).code);
      const dropped = new Promise<string>((r) => x.once('disconnect', r));
      x.emit('update:upload', {
        ...good,
        envelope: { ...good.envelope, ciphertext: new Uint8Array(LIMITS.maxFrameBytes + 128 * 1024) },
      });
      unknownSite.push(
        await within(dropped, 30_000, 'the coordinator to drop a frame over its transport limit'),
      );
      await send(good); // accepted
      await send(good); // replayed
      roundOneUpload = good;
    }

    await handMadeSite('Site A', 10, honest(0.1, 10, Promise.resolve()));
    await handMadeSite('Site B', 30, honest(0.4, 30, attackDone));
    await handMadeSite('Site M', 20, (cfg, m) => void attack(cfg, m).finally(attackerDone));
    const api = adminApi(coord.url as string);

    // Act
    assert.equal((await api.call('/api/federation/start', { method: 'POST' })).status, 200);
    await within(coord.federation.whenStopped(), 60_000, 'two rounds');

    // Assert: every refusal has its own code, in the order sent
    assert.deepEqual(codes[1], [
      'BAD_SIGNATURE',
      'WRONG_ROUND',
      'WRONG_ROUND',
      'DELTA_INVALID',
      'NON_FINITE',
      'FRAME_TOO_LARGE',
      'UNAUTHORIZED',
      undefined,
      'REPLAY',
    ]);
    assert.deepEqual(codes[2], ['ROUND_CLOSED', 'WRONG_ROUND', undefined]);
    assert.deepEqual(unknownSite.slice(0, 4), ['challenged', 'UNAUTHORIZED', 'UNAUTHORIZED', 'UNAUTHORIZED']);
    assert.match(unknownSite[4] ?? '', /transport (close|error)/);
    // both rounds completed with all three good updates: (10·0.1 + 30·0.4 + 20·0.2) / 60 = 17/60 per round
    const rounds = await api.json<RoundRecord[]>('/api/rounds');
    assert.deepEqual(
      rounds.map((r) => [r.round, r.outcome, r.updates, r.failures.length]),
      [
        [1, 'aggregated', 3, 0],
        [2, 'aggregated', 3, 0],
      ],
    );
    // the round's record lists what reached it (an upload naming an unknown round id belongs to no round)
    assert.deepEqual(
      rounds[0].rejections.map((r) => [r.siteId, r.code]),
      [
        ['site-m', 'BAD_SIGNATURE'],
        ['site-m', 'WRONG_ROUND'],
        ['site-m', 'DELTA_INVALID'],
        ['site-m', 'NON_FINITE'],
        ['site-m', 'FRAME_TOO_LARGE'],
        ['site-m', 'UNAUTHORIZED'],
        ['site-m', 'REPLAY'],
      ],
    );
    assert.deepEqual(rounds[1].rejections, [{ siteId: 'site-m', code: 'WRONG_ROUND' }]);
    for (const [id, expected] of [
      ['v1', 17 / 60],
      ['v2', 34 / 60],
    ] as const) {
      const native = decodeAdapter(await api.bytes(`/api/versions/${id}/native`));
      for (const x of native.adapter['classifier.bias'].data)
        assert.ok(Math.abs(x - expected) < 1e-6, `${id}: ${x} vs ${expected}`);
      for (const x of native.adapter['classifier.weight'].data) assert.equal(x, 0);
    }
    // each refusal is one log line and one live event for the console
    const rejectedLines = log.lines.filter((l) => l.includes('upload.rejected'));
    assert.equal(rejectedLines.length, 10);
    const refusedEvents = () =>
      feed.events.filter((e) => e.event === 'upload' && e.data.accepted === false).length;
    await poll(
      async () => (refusedEvents() >= 10 ? true : undefined),
      10_000,
      'the /admin upload events',
      20,
    );
    assert.equal(refusedEvents(), 10);
    assert.ok(log.lines.some((l) => l.includes('code=UNAUTHORIZED') && l.includes('reason="unknown site"')));
  },
);
