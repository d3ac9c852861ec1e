// Issue 23, "Must show" 1: raw frames against a live coordinator (in-process, tiny fake model: no tfjs). 2,400
// seeded frames over polling and websocket, before and after authentication: event names that are not strings,
// empty or numeric, binary attachments with wrong counts, truncated packets, random bytes and text, and known
// events with payloads of the wrong types. After every batch the coordinator answers /healthz; no handler fails
// internally; and an honest round afterwards publishes exactly the mean of two updates.
// One frame of this kind ('42', an EVENT without a name) used to end the process (onAny called .slice on it).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io as connect, type Socket } from 'socket.io-client';
import type { Coordinator } from '@fedlora/coordinator';
import { makeUpload, tinyAdapter } from '@fedlora/coordinator/testing';
import { generateSiteKeys, publicIdentity, type SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { signChallenge } from '@fedlora/shared/crypto/envelope.ts';
import { decodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { seededRandom } from '@fedlora/shared/random.ts';
import { ADMIN_TOKEN, within } from './federation-harness';
import { startTinyCoordinator, type TinyCoordinator } from './tiny-coordinator';
import { adminApi } from './admin-client';
import { rawPolling, rawWebSocket, type RawConnection } from './raw-socket';

type Ack = { ok: boolean; code?: string; data?: Record<string, unknown> };
const FRAMES_PER_BATCH = 100;
const BATCHES_PER_CASE = 6; // × 4 cases (2 transports × before/after auth) = 2,400 frames

let tiny: TinyCoordinator;
let coord: Coordinator;
let url: string;
let log: TinyCoordinator['log'];
const sockets: Socket[] = [];

before(async () => {
  // every refusal logged (the per-peer log budget has its own test): the count shows the frames reached handlers
  tiny = await startTinyCoordinator({ name: 'fuzz', edge: { rejectionLog: { perWindow: Number.MAX_SAFE_INTEGER } } });
  ({ coord, url, log } = tiny);
});

after(async () => {
  for (const s of sockets) s.disconnect();
  await tiny.close();
});

// ---- the frames ----

const NAMES = ['site:enroll', 'auth:challenge', 'auth:prove', 'site:ready', 'update:upload', 'round:fail', 'adapter:fetch', 'model:chunk', 'frame:part'];
const BAD_VALUES: unknown[] = [
  null, 0, -1, 1e308, 'x', '', [], {}, [[[]]], { roundId: 5 }, { siteId: {} }, { numExamples: 1e12 },
  { numExamples: -3, encodings: 'fp32', backend: 7 }, { path: '../../etc/passwd', offset: -1, length: 1e9 },
  { versionId: { $gt: '' } }, { id: 'short', event: 'update:upload', index: 3, count: 2, totalBytes: -1 },
  { token: 'x'.repeat(5000), siteId: 'a', signingPublicKey: 1 }, { __proto__: { polluted: 1 } },
  { roundId: 'r1', envelope: { ciphertext: 'AAAA', nonce: 1 } }, 'true', true,
];

/** One fuzz frame: a socket.io packet string (the engine's '4' is added by the sender) or raw bytes. */
type Frame = { text: string } | { binary: Uint8Array } | { engine: string };

function frameGenerator(seed: number) {
  const rnd = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const int = (n: number) => Math.floor(rnd() * n);
  const ackId = () => (rnd() < 0.5 ? String(int(1000)) : '');
  const randomText = (n: number) =>
    Array.from({ length: n }, () => String.fromCharCode(rnd() < 0.8 ? 32 + int(95) : int(0x3000))).join('');
  const json = (v: unknown) => JSON.stringify(v) ?? 'null';
  const kinds: (() => Frame[])[] = [
    // event names that are not strings, or no name at all
    () => [{ text: pick(['2', '21', '2[]', '2[1]', '2[0,{}]', '27[2]', '2[null]', '2[true]', '2[{}]', '2[[1]]', '2[1.5,"x"]', '2[-0]', '2[1e999]']) }],
    () => [{ text: `2${ackId()}[${json(pick([0, 1, -1, null, {}, [], 2.5, false]))},${json(pick(BAD_VALUES))}]` }],
    // empty and numeric names, names of no event, and reserved ones
    () => [{ text: `2${ackId()}[${json(pick(['', '0', '42', ' ', 'disconnect', 'connect', '__proto__', 'constructor', 'x'.repeat(300)]))},{}]` }],
    // known events with payloads of the wrong types, with and without an ack, with extra arguments
    () => [{ text: `2${ackId()}[${json(pick(NAMES))}${rnd() < 0.8 ? ',' + json(pick(BAD_VALUES)) : ''}${rnd() < 0.2 ? ',' + json(pick(BAD_VALUES)) : ''}]` }],
    // binary events whose attachment count disagrees with what follows
    () => {
      const announced = int(3);
      const sent = int(3);
      const placeholder = { _placeholder: true, num: int(4) - (rnd() < 0.2 ? 1 : 0) };
      const head = { text: `5${announced}-${ackId()}[${json(pick(NAMES))},${json({ roundId: 'r1', envelope: { ciphertext: placeholder } })}]` };
      return [head, ...Array.from({ length: sent }, () => ({ binary: new Uint8Array(int(64)).map(() => int(256)) }))];
    },
    () => [{ binary: new Uint8Array(1 + int(200)).map(() => int(256)) }], // attachment-less binary
    // truncated packets and broken JSON
    () => {
      const full = `2${ackId()}[${json(pick(NAMES))},${json(pick(BAD_VALUES))}]`;
      return [{ text: full.slice(0, 1 + int(full.length - 1)) }];
    },
    () => [{ text: `${int(10)}${randomText(int(80))}` }], // any packet type, random body
    () => [{ text: pick(['0', '0{"token":1}', '0/admin,', '0/nope,{}', '1', '3', '31[]', '6', '4"err"']) }],
    // engine.io level: unknown packet types, noops, upgrade/ping packets where they do not belong
    () => [{ engine: pick(['', '9', '5', '6', '3probe', '2probe', randomText(int(40))]) }],
  ];
  return (): Frame[] => pick(kinds)();
}

/** Sends one fuzz packet; true if the connection is still open once the server has read it. */
async function sendFrames(conn: RawConnection, frames: Frame[]): Promise<boolean> {
  for (const f of frames) {
    const ok =
      'binary' in f
        ? await conn.send(f.binary)
        : await conn.send('engine' in f ? f.engine : `4${f.text}`);
    if (!ok) return false;
  }
  return conn.barrier();
}

/** A socket.io-client connection's engine lets us write raw packets after socket.io-client authenticated it. */
function rawOverClient(s: Socket): RawConnection {
  const engine = (s.io as unknown as { engine: { write(d: string | Uint8Array): void } }).engine;
  return {
    transport: 'websocket',
    received: [],
    get closed() {
      return !s.connected;
    },
    async send(frame) {
      if (!s.connected) return false;
      // the engine adds the '4' (message) itself; our frames carry it for the raw transports
      if (typeof frame === 'string') {
        if (!frame.startsWith('4')) return s.connected; // engine-level packets need the raw transports
        engine.write(frame.slice(1));
      } else engine.write(frame);
      await new Promise((r) => setImmediate(r));
      return s.connected;
    },
    // an authenticated request with an ack: answered, or failed when the connection closes
    barrier: () =>
      s.connected
        ? Promise.race([
            s.timeout(5000).emitWithAck('adapter:fetch', { versionId: 'v0' }).then(() => s.connected, () => false),
            new Promise<boolean>((resolve) => s.once('disconnect', () => resolve(false))),
          ])
        : Promise.resolve(false),
    close: () => s.disconnect(),
  };
}

const ask = (s: Socket, event: string, payload: unknown) =>
  s.timeout(5000).emitWithAck(event, payload) as Promise<Ack>;

function open(transport: 'polling' | 'websocket'): Promise<Socket> {
  const s = connect(url, { transports: [transport], reconnection: false, forceNew: true });
  sockets.push(s);
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve(s));
    s.once('connect_error', reject);
  });
}

async function enrolledSite(name: string): Promise<{ siteId: string; keys: SiteKeys }> {
  const r = await adminApi(url).json<{ siteId: string; joinToken: string }>('/api/sites', {
    method: 'POST',
    body: JSON.stringify({ name }),
  });
  const keys = generateSiteKeys();
  const s = await open('websocket');
  assert.equal((await ask(s, 'site:enroll', { token: r.joinToken, siteId: r.siteId, ...publicIdentity(keys) })).ok, true);
  s.disconnect();
  return { siteId: r.siteId, keys };
}

async function authenticated(transport: 'polling' | 'websocket', site: { siteId: string; keys: SiteKeys }): Promise<Socket> {
  const s = await open(transport);
  const ch = await ask(s, 'auth:challenge', { siteId: site.siteId });
  const d = ch.data as { challenge: ArrayBuffer; coordinatorId: string };
  const signature = signChallenge(new Uint8Array(d.challenge), { siteId: site.siteId, coordinatorId: d.coordinatorId }, site.keys.signing.secretKey);
  assert.equal((await ask(s, 'auth:prove', { siteId: site.siteId, signature })).ok, true);
  return s;
}

// In a deployment an exception that escapes a socket listener ends the coordinator's process; here the test runner
// would swallow it, so every one is collected and each health check asserts there was none.
const escaped: string[] = [];

async function healthy(): Promise<void> {
  await new Promise((r) => setTimeout(r, 20)); // let the last frames' handlers run
  assert.deepEqual(escaped, [], 'no exception may escape a socket handler (it would end the process)');
  const r = await within(fetch(`${url}/healthz`), 5000, '/healthz after a batch of fuzz frames');
  assert.equal(r.status, 200);
  await r.arrayBuffer();
}

test('when 2,400 malformed frames arrive over polling and websocket, before and after authentication, then the coordinator keeps serving and an honest round afterwards versions the exact mean', async () => {
  // Arrange
  const fuzzer = await enrolledSite('Fuzzer');
  process.on('uncaughtException', (err) => escaped.push(String(err)));
  const next = frameGenerator(20261204);
  let frames = 0;
  let reconnects = 0;
  const cases: [string, () => Promise<RawConnection>][] = [
    ['polling, unauthenticated', () => rawPolling(url)],
    ['websocket, unauthenticated', () => rawWebSocket(url)],
    ['polling, authenticated', async () => rawOverClient(await authenticated('polling', fuzzer))],
    ['websocket, authenticated', async () => rawOverClient(await authenticated('websocket', fuzzer))],
  ];

  // Act
  for (const [what, opener] of cases) {
    let conn = await opener();
    for (let b = 0; b < BATCHES_PER_CASE; b++) {
      for (let i = 0; i < FRAMES_PER_BATCH; i++) {
        const packet = next();
        frames++;
        if (!(await sendFrames(conn, packet))) {
          // a frame the transport cannot parse closes the connection (by design): open another
          conn.close();
          conn = await opener();
          reconnects++;
        }
      }
      await healthy();
    }
    conn.close();
    console.log(`fuzz: ${what}: ${frames} frames so far, ${reconnects} connections closed by the server`, performance.now());
  }
  for (const s of sockets) s.disconnect();

  // Assert: it kept serving, and nothing failed inside a handler
  assert.ok(frames >= 2400, `${frames} frames`);
  assert.ok(reconnects > 0, 'some frames close their connection (the transport refuses them)');
  assert.deepEqual(escaped, []);
  assert.deepEqual(log.lines.filter((l) => l.includes('socket.handler.failed')), []);
  assert.ok(!log.lines.some((l) => l.includes('code=INTERNAL')), 'no request ended as INTERNAL');
  // most frames got as far as a handler, which refused them (the rest were refused by the transport's parser)
  const refused = log.lines.filter((l) => l.includes(' request.rejected ')).length;
  console.log(`fuzz: ${frames} frames, ${reconnects} closed their connection, ${refused} refused by a handler`);
  assert.ok(refused >= 600, `${refused} frames were refused by a handler`);

  // an honest round afterwards: two hand-made sites, the mean of their updates exactly
  const published = new Promise<string>((resolve) => {
    const admin = connect(`${url}/admin`, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token: ADMIN_TOKEN } });
    sockets.push(admin);
    admin.on('version:new', (v: { id: string }) => v.id !== 'v0' && resolve(v.id));
  });
  for (const [name, bias] of [['Honest A', 0.01], ['Honest B', 0.03]] as const) {
    const site = await enrolledSite(name);
    const s = await authenticated('websocket', site);
    let cfg: { roundId: string; coordinatorBoxPublicKey: Uint8Array } | null = null;
    s.on('round:configure', (m: { roundId: string; coordinatorBoxPublicKey: ArrayBuffer }, ack: (a: unknown) => void) => {
      cfg = { roundId: m.roundId, coordinatorBoxPublicKey: new Uint8Array(m.coordinatorBoxPublicKey) };
      ack({ ok: true, data: { accepted: true } });
    });
    s.on('round:train', (_m: unknown, ack: (a: unknown) => void) => {
      ack({ ok: true, data: { started: true } });
      const delta = tinyAdapter(0);
      delta['classifier.bias'].data.fill(bias);
      void ask(s, 'update:upload', makeUpload(site.keys, site.siteId, cfg!, delta, { numExamples: 10 }));
    });
    assert.equal((await ask(s, 'site:ready', { numExamples: 10, encodings: ['fp32'], backend: 'cpu' })).ok, true);
  }
  assert.equal((await adminApi(url).call('/api/federation/start', { method: 'POST' })).status, 200);
  const id = await within(published, 30_000, 'the honest round to publish a version');
  const native = decodeAdapter(new Uint8Array(await (await adminApi(url).call(`/api/versions/${id}/native`)).arrayBuffer()));
  // (10·0.01 + 10·0.03) / 20, computed in float32 like the aggregate
  assert.ok(Math.abs(native.adapter['classifier.bias'].data[0] - 0.02) < 1e-7, String(native.adapter['classifier.bias'].data[0]));
  await within(coord.federation.whenStopped(), 10_000, 'the federation to stop after its one round');
});
