// Issue 23, defects 5, 6 and 9 over real sockets (in-process coordinator, tiny fake model, no tfjs):
// - 5: frames are small for every peer; an authenticated site's update larger than a frame crosses in parts and is
//   aggregated exactly; unauthenticated connections are capped per address and closed at their deadline;
// - 6: one peer's refused requests are logged up to a budget, then counted into one summary line;
// - 9: enrolled, revoked and unknown site ids get the same answers before authentication.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { io as connect, type Socket } from 'socket.io-client';
import type { CoordinatorOptions } from '@fedlora/coordinator';
import { makeUpload, tinyAdapter } from '@fedlora/coordinator/testing';
import { generateSiteKeys, publicIdentity, type SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { signChallenge } from '@fedlora/shared/crypto/envelope.ts';
import { decodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { LIMITS } from '@fedlora/shared/protocol/limits.ts';
import { asAckSocket, request } from '@fedlora/shared/connection/session.ts';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { within } from './federation-harness';
import { adminApi } from './admin-client';
import { startTinyCoordinator, type TinyCoordinator } from './tiny-coordinator';
import { closedWithin, rawPolling, rawWebSocket } from './raw-socket';

type Ack = { ok: boolean; code?: string; message?: string; data?: Record<string, unknown> };
const running: TinyCoordinator[] = [];
const sockets: Socket[] = [];

after(async () => {
  for (const s of sockets) s.disconnect();
  for (const c of running) await c.close();
});

async function coordinator(edge: CoordinatorOptions['edge'] = {}) {
  const tiny = await startTinyCoordinator({ name: 'edge', edge });
  running.push(tiny);
  return tiny;
}

const ask = (s: Socket, event: string, payload: unknown) =>
  s.timeout(5000).emitWithAck(event, payload) as Promise<Ack>;

function open(url: string): Promise<Socket> {
  const s = connect(url, { transports: ['websocket'], reconnection: false, forceNew: true });
  sockets.push(s);
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve(s));
    s.once('connect_error', reject);
  });
}

async function enrolled(url: string, name: string): Promise<{ siteId: string; keys: SiteKeys }> {
  const r = await adminApi(url).json<{ siteId: string; joinToken: string }>('/api/sites', {
    method: 'POST',
    body: JSON.stringify({ name }),
  });
  const keys = generateSiteKeys();
  const s = await open(url);
  const ok = await ask(s, 'site:enroll', { token: r.joinToken, siteId: r.siteId, ...publicIdentity(keys) });
  assert.equal(ok.ok, true);
  s.disconnect();
  return { siteId: r.siteId, keys };
}

async function prove(s: Socket, siteId: string, keys: SiteKeys): Promise<Ack> {
  const ch = await ask(s, 'auth:challenge', { siteId });
  assert.equal(ch.ok, true, JSON.stringify(ch));
  const d = ch.data as { challenge: ArrayBuffer; coordinatorId: string };
  const signature = signChallenge(new Uint8Array(d.challenge), { siteId, coordinatorId: d.coordinatorId }, keys.signing.secretKey);
  return ask(s, 'auth:prove', { siteId, signature });
}

test('when an unauthenticated peer sends a frame over the small frame limit, then the transport drops it; an authenticated site sends a larger update in parts and it is aggregated exactly', async () => {
  // Arrange
  const { coord, url } = await coordinator();
  const x = await open(url);
  const dropped = new Promise<string>((r) => x.once('disconnect', r));

  // Act: 1.5 MiB, far below the old 32 MiB limit and over the new 1 MiB one
  x.emit('site:enroll', { token: 'x', blob: new Uint8Array(LIMITS.maxSocketFrameBytes + 512 * 1024) });

  // Assert
  assert.match(await within(dropped, 10_000, 'the frame to be dropped'), /transport (close|error)/);

  // an honest round whose two uploads travel in 200-byte parts (tinyAdapter's update is ~1 KB)
  let partsSent = 0;
  for (const [name, bias] of [['Parted A', 0.01], ['Parted B', 0.05]] as const) {
    const site = await enrolled(url, name);
    const s = await open(url);
    assert.equal((await prove(s, site.siteId, site.keys)).ok, true);
    s.on('round:configure', (m: { roundId: string; coordinatorBoxPublicKey: ArrayBuffer }, ack: (a: unknown) => void) => {
      ack({ ok: true, data: { accepted: true } });
      s.once('round:train', (_t: unknown, ackTrain: (a: unknown) => void) => {
        ackTrain({ ok: true, data: { started: true } });
        const delta = tinyAdapter(0);
        delta['classifier.bias'].data.fill(bias);
        const cfg = { roundId: m.roundId, coordinatorBoxPublicKey: new Uint8Array(m.coordinatorBoxPublicKey) };
        const counting = asAckSocket(s);
        const countingSocket = {
          timeout: (ms: number) => ({
            emitWithAck: (event: string, payload: unknown) => {
              if (event === 'frame:part') partsSent++;
              return counting.timeout(ms).emitWithAck(event, payload);
            },
          }),
        };
        void request(countingSocket, 'update:upload', makeUpload(site.keys, site.siteId, cfg, delta, { numExamples: 10 }), 5000, { partBytes: 200 });
      });
    });
    assert.equal((await ask(s, 'site:ready', { numExamples: 10, encodings: ['fp32'], backend: 'cpu' })).ok, true);
  }
  assert.equal((await adminApi(url).call('/api/federation/start', { method: 'POST' })).status, 200);
  await within(coord.federation.whenStopped(), 30_000, 'the round with parted uploads');
  assert.equal(coord.store.currentId(), 'v1', JSON.stringify(coord.store.rounds()));
  assert.ok(partsSent >= 8, `${partsSent} parts`);
  const native = decodeAdapter(new Uint8Array(await (await adminApi(url).call('/api/versions/v1/native')).arrayBuffer()));
  assert.ok(Math.abs(native.adapter['classifier.bias'].data[0] - 0.03) < 1e-7, String(native.adapter['classifier.bias'].data[0]));
});

/** SHA-256 of 1,000 zero bytes: the data of the hand-made parts below */
const ZEROS_SHA256 = createHash('sha256').update(new Uint8Array(1000)).digest('hex');

test('when parts come unauthenticated, out of order, damaged or over the budget, then each is refused with its code and nothing is held', async () => {
  // Arrange: room for one 3,000-byte request at a time
  const { url } = await coordinator({ maxPartedBytes: 3000 });
  const anon = await open(url);
  const part = (over: Record<string, unknown> = {}) => ({
    id: 'request-0001',
    event: 'update:upload',
    index: 0,
    count: 3,
    totalBytes: 2500,
    data: new Uint8Array(1000),
    sha256: ZEROS_SHA256,
    requestSha256: ZEROS_SHA256,
    ...over,
  });

  // Act + Assert
  assert.equal((await ask(anon, 'frame:part', part())).code, 'UNAUTHORIZED');
  const site = await enrolled(url, 'Parts');
  const s = await open(url);
  assert.equal((await prove(s, site.siteId, site.keys)).ok, true);
  assert.equal((await ask(s, 'frame:part', part({ event: 'site:ready' }))).code, 'BAD_MESSAGE');
  assert.equal((await ask(s, 'frame:part', part({ index: 1 }))).code, 'BAD_MESSAGE'); // no first part
  assert.deepEqual(await ask(s, 'frame:part', part()), { ok: true, data: { received: 1 } });
  assert.equal((await ask(s, 'frame:part', part({ index: 2 }))).code, 'BAD_MESSAGE'); // skipped part 1
  // the refused request was dropped, so a new one fits; a second site's does not while this one is held
  assert.deepEqual(await ask(s, 'frame:part', part({ id: 'request-0002' })), { ok: true, data: { received: 1 } });
  const other = await enrolled(url, 'Parts 2');
  const s2 = await open(url);
  assert.equal((await prove(s2, other.siteId, other.keys)).ok, true);
  assert.equal((await ask(s2, 'frame:part', part({ id: 'request-0003' }))).code, 'BUSY');
  assert.deepEqual(await ask(s, 'frame:part', part({ id: 'request-0002', index: 1 })), { ok: true, data: { received: 2 } });
  // the last part: 2,500 announced, 3,000 would arrive
  assert.equal((await ask(s, 'frame:part', part({ id: 'request-0002', index: 2 }))).code, 'BAD_MESSAGE');
  // …and the budget is free again: the whole of a (garbage) request arrives and is parsed as update:upload
  const last = await ask(s2, 'frame:part', part({ id: 'request-0004', count: 1, totalBytes: 1000 }));
  assert.equal(last.code, 'BAD_MESSAGE');
  assert.match(last.message ?? '', /msgpack|update:upload/);
  // a part whose bytes do not match its sha256 (one byte flipped in transit) is HASH_MISMATCH and nothing is held
  const flipped = new Uint8Array(1000);
  flipped[500] = 1;
  assert.equal((await ask(s2, 'frame:part', part({ id: 'request-0005', data: flipped }))).code, 'HASH_MISMATCH');
  assert.equal((await ask(s2, 'frame:part', part({ id: 'request-0005', index: 1 }))).code, 'BAD_MESSAGE'); // dropped
  assert.deepEqual(await ask(s, 'frame:part', part({ id: 'request-0006' })), { ok: true, data: { received: 1 } });
});

test('when one address opens more unauthenticated connections than the cap, then further handshakes are refused until one authenticates, and a connection that never authenticates is closed at its deadline', async () => {
  // Arrange
  const { url, log } = await coordinator({ connections: { maxPerAddress: 4, authDeadlineMs: 1500 } });
  const idle = await Promise.all([rawPolling(url), rawWebSocket(url), rawPolling(url, false), rawWebSocket(url, false)]);

  // Act + Assert: the fifth is refused at the handshake
  const refused = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(refused.status, 403, await refused.text());
  await assert.rejects(open(url));
  assert.ok(log.lines.some((l) => l.includes('connection.refused') && l.includes('reason=too_many_unauthenticated')));

  // an authenticated connection does not count: free one slot by authenticating it
  idle[3].close();
  await within(
    (async () => {
      for (;;) {
        const r = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
        await r.text();
        if (r.status === 200) return;
        await new Promise((res) => setTimeout(res, 50));
      }
    })(),
    5000,
    'a slot to free up after a close',
  );
  // every unauthenticated connection is closed at its deadline; an authenticated one stays
  const site = await enrolled(url, 'Stays').catch(() => null);
  assert.equal(site, null, 'all slots are taken (the probe above holds the freed one until its deadline)');
  for (const c of idle.slice(0, 3)) assert.equal(await closedWithin(c, 5000), true, `${c.transport} closed at its deadline`);
  assert.ok(log.lines.some((l) => l.includes('connection.refused') && l.includes('reason=auth_deadline')));
  const kept = await enrolled(url, 'Kept');
  const s = await open(url);
  assert.equal((await prove(s, kept.siteId, kept.keys)).ok, true);
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(s.connected, true, 'an authenticated site is not closed at the deadline');
});

test('when one peer sends hundreds of refused requests, then the log holds its budget of lines and one summary with the count and codes', async () => {
  // Arrange
  const { url, log } = await coordinator({ rejectionLog: { perWindow: 20, windowMs: 1000 } });
  const s = await open(url);

  // Act
  for (let i = 0; i < 300; i++) s.emit('no:such-event' as never, i as never);
  await ask(s, 'site:ready', { numExamples: 1, encodings: ['fp32'], backend: 'cpu' }); // UNAUTHORIZED, and a sync point

  // Assert
  const lines = () => log.lines.filter((l) => l.includes(' request.rejected'));
  assert.equal(lines().filter((l) => l.includes(' request.rejected ')).length, 20);
  const summary = await within(
    (async () => {
      for (;;) {
        const l = lines().find((x) => x.includes('request.rejected.suppressed'));
        if (l) return l;
        await new Promise((r) => setTimeout(r, 100));
      }
    })(),
    5000,
    'the summary line at the end of the window',
  );
  assert.match(summary, /peer=127\.0\.0\.1 count=281 codes=BAD_MESSAGE:280,UNAUTHORIZED:1/);
});

test('when enrolled, revoked and unknown site ids ask for a challenge and prove it wrongly, then every answer looks the same', async () => {
  // Arrange
  const { url, log } = await coordinator();
  const live = await enrolled(url, 'Live');
  const revoked = await enrolled(url, 'Revoked');
  assert.equal((await adminApi(url).call(`/api/sites/${revoked.siteId}`, { method: 'DELETE' })).status, 200);
  const s = await open(url);

  // Act
  const answers = [];
  for (const siteId of [live.siteId, revoked.siteId, 'never-enrolled']) {
    const ch = await ask(s, 'auth:challenge', { siteId });
    const d = ch.data as { challenge: ArrayBuffer; coordinatorId: string };
    const wrongKey = generateSiteKeys(); // the attacker does not hold the site's key
    const signature = signChallenge(new Uint8Array(d.challenge), { siteId, coordinatorId: d.coordinatorId }, wrongKey.signing.secretKey);
    const p = await ask(s, 'auth:prove', { siteId, signature });
    answers.push({ challengeOk: ch.ok, challengeBytes: new Uint8Array(d.challenge).length, coordinatorId: d.coordinatorId, prove: [p.ok, p.code, p.message] });
  }
  // the revoked site's own key fails the same way
  const withOwnKey = await prove(s, revoked.siteId, revoked.keys);

  // Assert
  assert.deepEqual(answers[1], answers[0]);
  assert.deepEqual(answers[2], answers[0]);
  assert.deepEqual([withOwnKey.ok, withOwnKey.code, withOwnKey.message], answers[0].prove);
  assert.equal(answers[0].prove[1], 'UNAUTHORIZED');
  // the operator's log keeps the precise reason
  for (const why of ['signature does not verify', 'revoked site', 'unknown site'])
    assert.ok(log.lines.some((l) => l.includes(`reason="${why}"`)), why);
  // and the live site still authenticates with its key
  assert.equal((await prove(s, live.siteId, live.keys)).ok, true);
});

test('when the connection drops while an update is being sent in parts, then the request fails at once', async () => {
  const { url } = await coordinator();
  const site = await enrolled(url, 'Dropper');
  const s = await open(url);
  assert.equal((await prove(s, site.siteId, site.keys)).ok, true);
  const upload = makeUpload(site.keys, site.siteId, { roundId: 'r1', coordinatorBoxPublicKey: generateSiteKeys().box.publicKey }, tinyAdapter(0));
  const t0 = Date.now();
  // the connection drops right after the first part was acked (deterministic: no timer racing the parts)
  const ack = asAckSocket(s);
  let parts = 0;
  const dropping = {
    timeout: (ms: number) => ({
      emitWithAck: async (event: string, payload: unknown) => {
        if (event === 'frame:part' && ++parts === 2) s.disconnect();
        return ack.timeout(ms).emitWithAck(event, payload);
      },
    }),
  };
  const sending = request(dropping, 'update:upload', upload, 20_000, { partBytes: 64 });
  await assert.rejects(sending, (err) => isFedloraError(err, 'UNREACHABLE'));
  assert.equal(parts, 2, 'it stopped at the part sent after the drop');
  assert.ok(Date.now() - t0 < 5000, `failed after ${Date.now() - t0} ms, not at the request timeout`);
});
