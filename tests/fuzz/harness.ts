// Issue 18, must-show 2: fast-check fuzz frames (frames.ts) at a live coordinator's site socket and admin REST API
// while an honest round of two socket sites with fake trainers runs at the same time. The property, per frame: the
// coordinator is still up (no exception escaped, /healthz answers), and the frame was answered with a specific code
// from the documented set (never INTERNAL, never a 5xx), or refused by the transport (connection closed), or was a
// notification without an ack. The honest sites upload halfway through the frames; the version they make must be
// exactly their example-weighted mean. Used by tests/fuzz.e2e.test.ts (500 frames) and `npm run fuzz` (10,000).

import { createHash } from 'node:crypto';
import fc from 'fast-check';
import type { Socket } from 'socket.io-client';
import { ADMIN_ROUTES, makeUpload, tinyAdapter } from '@fedlora/coordinator/testing';
import { generateSiteKeys, publicIdentity } from '@fedlora/shared/crypto/keys.ts';
import { decodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { LIMITS } from '@fedlora/shared/protocol/limits.ts';
import { PEER_VISIBLE_CODES } from '@fedlora/shared/protocol/events.ts';
import { ADMIN_TOKEN, within } from '../federation-harness';
import { adminApi } from '../admin-client';
import { startTinyCoordinator } from '../tiny-coordinator';
import { rawPolling, rawWebSocket, type RawConnection } from '../raw-socket';
import { ask, authenticate, enrollSites, FakeSocketSite, openSocket, type RoundKey, type SiteIdentity } from '../socket-sites';
import { EVENT_NAMES, fuzzFrame, hostileJson, mutate, type AnyConn, type FuzzFrame } from './frames';

/** the admin API's documented error codes (docs/API.md), INTERNAL excluded: bad input must never produce it */
/** SHA-256 of 1,000 zero bytes: the frame:part template's data, so mutations start from a part that verifies */
const ZEROS_SHA256 = createHash('sha256').update(new Uint8Array(1000)).digest('hex');

export const HTTP_CODES = ['BAD_MESSAGE', 'CONFIG_INVALID', 'UNAUTHORIZED', 'CROSS_ORIGIN', 'NOT_FOUND', 'CONFLICT', 'FRAME_TOO_LARGE', 'RATE_LIMITED'];
export const SOCKET_CODES: string[] = PEER_VISIBLE_CODES.filter((c) => c !== 'INTERNAL');
/** honest sites: bias deltas and example counts; the version must be (10·0.01 + 30·0.03) / 40 = 0.025 */
const HONEST = [
  { name: 'Honest Alpha 7f3', bias: 0.01, numExamples: 10 },
  { name: 'Honest Beta 7f3', bias: 0.03, numExamples: 30 },
] as const;
export const EXPECTED_BIAS = 0.025;

export interface FuzzSummary {
  frames: number;
  seconds: number;
  /** outcome → count: socket:<CODE>|ok|closed|notification, http:<status> <CODE> */
  outcomes: Record<string, number>;
  eventsSent: string[];
  routesSent: string[];
  reconnects: number;
  honestBias: number;
  honestRoundOutcome: string;
}

type Outcome = string;
const RESERVED = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);
const ACK_BASE = 900_000; // far above socket.io-client's own ack ids

interface Conn {
  kind: AnyConn;
  socket?: Socket;
  raw?: RawConnection;
  acks: Map<number, string>;
  closed(): boolean;
}

/** The ack id and outcome of an ack packet's text (socket.io level: '3<id>[…]' or '6<n>-<id>[…]'), or null. */
function parseAck(p: string): [number, string] | null {
  const m = /^(?:3|6\d+-)(\d+)(.*)$/s.exec(p);
  if (!m) return null;
  if (p.startsWith('6')) return [Number(m[1]), 'ok'];
  try {
    const [a] = JSON.parse(m[2]) as [{ ok: boolean; code?: string }];
    return [Number(m[1]), a.ok ? 'ok' : String(a.code)];
  } catch {
    return [Number(m[1]), 'UNPARSEABLE_ACK'];
  }
}

export async function runFuzz(opts: { frames: number; seed: number; progress?: (line: string) => void }): Promise<FuzzSummary> {
  const escaped: string[] = [];
  const onEscape = (err: unknown) => escaped.push(String(err));
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
  const tiny = await startTinyCoordinator({
    name: 'fuzz18',
    settings: {
      sitesPerRound: { kind: 'fraction', value: 1 },
      deadlineS: 3600, // the honest sites upload halfway through the fuzz, however long it takes
      ackTimeoutS: 10,
    },
    edge: { rejectionLog: { perWindow: Number.MAX_SAFE_INTEGER } },
  });
  const { coord, url, log } = tiny;
  const conns = new Map<AnyConn, Conn>();
  const honest: FakeSocketSite[] = [];
  let release = () => {};
  try {
    // Arrange: two honest sites in a running round (collecting, their uploads held back), two enrolled attackers
    const ids = await enrollSites(url, [...HONEST.map((h) => h.name), 'Fuzz Attacker WS', 'Fuzz Attacker Poll']);
    const halfway = new Promise<void>((r) => (release = r));
    const collecting: Promise<RoundKey>[] = [];
    const replays: { event: string; payload: unknown }[] = [];
    for (const [i, h] of HONEST.entries()) {
      let inRound!: (cfg: RoundKey) => void;
      collecting.push(new Promise((r) => (inRound = r)));
      honest.push(
        await FakeSocketSite.connect(url, ids[i], {
          numExamples: h.numExamples,
          delta: () => {
            const d = tinyAdapter(0);
            d['classifier.bias'].data.fill(h.bias);
            return d;
          },
          beforeUpload: (cfg) => (inRound(cfg), halfway),
          onUpload: (payload) => replays.push({ event: 'update:upload', payload }),
        }),
      );
    }
    const api = adminApi(url);
    const started = await api.call('/api/federation/start', { method: 'POST' });
    if (started.status !== 200) throw new Error(`federation start: ${started.status} ${await started.text()}`);
    const [roundKey] = await within(Promise.all(collecting), 30_000, 'the honest round to reach collect');

    const attackers: Record<'auth-ws' | 'auth-poll', SiteIdentity> = { 'auth-ws': ids[2], 'auth-poll': ids[3] };
    // valid requests the attackers could send, by event; mutations break one field of them
    const strangerKeys = generateSiteKeys();
    const templates = (conn: AnyConn): Record<string, Record<string, unknown>[]> => {
      const me = attackers[conn as 'auth-ws'] ?? ids[2];
      const upload = makeUpload(me.keys, me.siteId, roundKey, tinyAdapter(0.01));
      const nan = new Float32Array(30).fill(NaN);
      return {
        'site:enroll': [{ token: 'fuzz-token-0123456789', siteId: 'fuzz-newcomer', ...publicIdentity(strangerKeys) }],
        'auth:challenge': [{ siteId: me.siteId }],
        'auth:prove': [{ siteId: me.siteId, signature: new Uint8Array(64) }],
        'site:ready': [{ numExamples: 10, encodings: ['fp32'], backend: 'cpu' }],
        'update:upload': [upload, makeUpload(me.keys, me.siteId, { ...roundKey, coordinatorBoxPublicKey: strangerKeys.box.publicKey }, tinyAdapter(0))],
        'secagg:upload': [{ roundId: roundKey.roundId, upload: { siteId: me.siteId, masked: new Uint8Array(nan.buffer) } }],
        'round:fail': [{ roundId: roundKey.roundId, code: 'DATA_INVALID', message: 'fuzz' }],
        'adapter:fetch': [{ versionId: 'v0' }, { versionId: 'latest' }],
        'model:chunk': [{ path: 'model.safetensors', offset: 0, length: 64 }],
        'frame:part': [{ id: 'fuzz-request-1', event: 'update:upload', index: 0, count: 2, totalBytes: 2000, data: new Uint8Array(1000), sha256: ZEROS_SHA256, requestSha256: ZEROS_SHA256 }],
      };
    };
    // the attackers' own valid requests, replayed later: a used join token, a spent challenge signature
    replays.push({ event: 'site:enroll', payload: { token: 'x'.repeat(32), siteId: ids[2].siteId, ...publicIdentity(ids[2].keys) } });

    // ---- connections, opened on first use and again after the server closed them ----
    let reconnects = 0;
    const open = async (kind: AnyConn): Promise<Conn> => {
      const have = conns.get(kind);
      if (have && !have.closed()) return have;
      if (have) {
        reconnects++;
        have.socket?.close();
        have.raw?.close();
      }
      const acks = new Map<number, string>();
      let c: Conn;
      if (kind === 'raw-ws' || kind === 'raw-poll') {
        const raw = await (kind === 'raw-ws' ? rawWebSocket(url) : rawPolling(url));
        let seen = 0;
        c = {
          kind, raw, acks,
          closed: () => {
            for (; seen < raw.received.length; seen++) {
              const a = parseAck(raw.received[seen].slice(1));
              if (a) acks.set(a[0], a[1]);
            }
            return raw.closed;
          },
        };
      } else {
        const socket = await openSocket(url, kind.endsWith('poll') ? 'polling' : 'websocket');
        if (kind === 'auth-ws' || kind === 'auth-poll') await authenticate(socket, attackers[kind]);
        const engine = socket.io.engine as unknown as { on(e: 'packet', f: (p: { type: string; data: unknown }) => void): void };
        engine.on('packet', (p) => {
          if (p.type !== 'message' || typeof p.data !== 'string') return;
          const a = parseAck(p.data);
          if (a) acks.set(a[0], a[1]);
        });
        c = { kind, socket, acks, closed: () => !socket.connected };
      }
      conns.set(kind, c);
      return c;
    };
    const write = (c: Conn, data: string | Uint8Array) => {
      if (c.raw) return c.raw.send(typeof data === 'string' ? `4${data}` : data);
      (c.socket!.io.engine as unknown as { write(d: string | Uint8Array): void }).write(data);
      return Promise.resolve(true);
    };
    let nextAck = ACK_BASE;
    /** the answer to ack id `id`, or 'closed' when the connection went first */
    const answerOf = async (c: Conn, id: number): Promise<Outcome> => {
      const until = Date.now() + 10_000;
      for (;;) {
        const closed = c.closed();
        const a = c.acks.get(id);
        if (a !== undefined) return a;
        if (closed) return 'closed';
        if (Date.now() > until) return 'UNANSWERED';
        await new Promise((r) => setTimeout(r, 1));
      }
    };
    /** a frame without an ack id: nothing can answer it; a round trip shows the server read it */
    const notification = async (c: Conn): Promise<Outcome> => {
      if (c.raw) return (await c.raw.barrier()) ? 'notification' : 'closed';
      const a = await ask(c.socket!, 'fuzz:barrier', {}, 10_000).catch(() => null);
      return c.closed() ? 'closed' : a?.code === 'BAD_MESSAGE' ? 'notification' : `BARRIER_${a?.code ?? 'TIMEOUT'}`;
    };
    /** socket.io-client's own encoding (binary fields as attachments), answered by its ack or by the close */
    const emit = async (c: Conn, event: string, payload: unknown): Promise<Outcome> => {
      const s = c.socket!;
      const closed = new Promise<Outcome>((r) => s.once('disconnect', () => r('closed')));
      const acked = ask(s, event, payload, 10_000).then((a) => (a.ok ? 'ok' : String(a.code)), () => (s.connected ? 'UNANSWERED' : 'closed'));
      return Promise.race([acked, closed]);
    };

    const eventsSent = new Set<string>();
    const routesSent = new Set<string>();
    const sendSocket = async (f: Exclude<FuzzFrame, { kind: 'http' }>): Promise<Outcome> => {
      const c = await open(f.conn);
      switch (f.kind) {
        case 'emit': {
          const all = templates(f.conn);
          const list = Object.hasOwn(all, f.event) ? all[f.event] : undefined;
          const payload = 'any' in f.body ? f.body.any : list ? mutate(list[f.body.template % list.length], f.body.mutation) : f.body.mutation.value;
          eventsSent.add(f.event);
          if (!RESERVED.has(f.event)) return emit(c, f.event, payload);
          // socket.io-client refuses to send reserved names; the raw packet carries them
          const id = nextAck++;
          await write(c, `2${id}[${JSON.stringify(f.event)},${hostileJson(payload)}]`);
          return answerOf(c, id);
        }
        case 'replay': {
          const r = replays[f.pick % replays.length];
          eventsSent.add(r.event);
          return emit(c, r.event, r.payload);
        }
        case 'oversized':
          eventsSent.add(f.event);
          return emit(c, f.event, { roundId: roundKey.roundId, blob: new Uint8Array(LIMITS.maxSocketFrameBytes + 1024) });
        case 'text': {
          // an ack id only where the packet is a whole EVENT: a truncated one may have lost it, or kept part of it
          const id = f.ack && f.packet.startsWith('2') && f.truncate === null ? nextAck++ : null;
          let text = id === null ? f.packet : `2${id}${f.packet.slice(1)}`;
          if (f.truncate !== null) text = text.slice(0, 1 + (f.truncate % Math.max(1, text.length)));
          await write(c, text);
          return id === null ? notification(c) : answerOf(c, id);
        }
        case 'binary': {
          const id = f.ack ? nextAck++ : null;
          await write(c, `5${f.announced}-${id ?? ''}[${JSON.stringify(f.event)},${hostileJson({ roundId: roundKey.roundId, data: new Uint8Array(0) })}]`);
          for (const b of f.sent) await write(c, b);
          return id === null || f.sent.length < f.announced ? notification(c) : answerOf(c, id);
        }
        case 'engine':
          await c.raw!.send(f.data);
          return notification(c);
      }
    };

    const sendHttp = async (f: Extract<FuzzFrame, { kind: 'http' }>): Promise<Outcome> => {
      const [routeMethod, routePath] = f.route.split(' ');
      routesSent.add(f.route);
      const method = f.method ?? routeMethod;
      const path = routePath.replace(':id', f.param);
      const q = new URLSearchParams(f.query).toString();
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (f.auth === 'token') headers.authorization = `Bearer ${ADMIN_TOKEN}`;
      if (f.auth === 'wrong') headers.authorization = `Bearer ${ADMIN_TOKEN.replace(/.$/, 'x')}`;
      if (f.auth === 'malformed') headers.authorization = 'Bearer';
      if (f.auth === 'cookie') headers.cookie = 'fedlora_session=forged; other=1';
      if (f.origin !== null) headers.origin = f.origin;
      let body: string | undefined =
        f.body === null ? undefined : 'json' in f.body ? hostileJson(f.body.json) : 'text' in f.body ? f.body.text : 'x'.repeat(f.body.size);
      // the token holder may change the federation: its writes carry one field no route accepts, so that no
      // fuzzed request pauses, revokes, promotes or reconfigures under the honest round (the rest is still fuzzed)
      const write = method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
      if (f.auth === 'token' && write && !['POST /login', 'POST /logout', 'POST /sites'].includes(f.route))
        body = `{"fuzzPoison":1${body && body.startsWith('{') && body.length > 2 ? ',' + body.slice(1) : '}'}`;
      if (method === 'GET' || method === 'HEAD') body = undefined;
      const r = await fetch(`${url}/api${path}${q ? '?' + q : ''}`, { method, headers, body, signal: AbortSignal.timeout(10_000) });
      const text = await r.text();
      if (r.status < 400) return `http:${r.status}`;
      if (method === 'HEAD') return `http:${r.status} (HEAD: no body)`;
      let code = 'NO_CODE';
      try {
        code = (JSON.parse(text) as { error: { code: string } }).error.code;
      } catch {
        /* not JSON: judged below */
      }
      return `http:${r.status} ${code}`;
    };

    const outcomes: Record<string, number> = {};
    let sent = 0;
    const t0 = performance.now();
    const allowed = (o: Outcome) =>
      o.startsWith('http:')
        ? /^http:[23]\d\d$/.test(o) || /^http:4\d\d \(HEAD/.test(o) || (/^http:4\d\d /.test(o) && HTTP_CODES.includes(o.split(' ')[1]))
        : o === 'ok' || o === 'closed' || o === 'notification' || SOCKET_CODES.includes(o);

    // Act: the property, once per frame
    await fc.assert(
      fc.asyncProperty(fuzzFrame, async (f) => {
        if (++sent === Math.floor(opts.frames / 2)) release();
        const o = f.kind === 'http' ? await sendHttp(f) : await sendSocket(f);
        const key = o.startsWith('http:') ? o : `socket:${o}`;
        outcomes[key] = (outcomes[key] ?? 0) + 1;
        if (!allowed(o)) throw new Error(`frame answered ${key}`);
        if (escaped.length) throw new Error(`an exception escaped: ${escaped[0]}`);
        if (sent % 250 === 0) {
          const h = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5000) });
          await h.arrayBuffer();
          if (h.status !== 200) throw new Error(`/healthz answered ${h.status}`);
          opts.progress?.(`fuzz: ${sent} frames, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
        }
      }),
      { numRuns: opts.frames, seed: opts.seed, endOnFailure: true, includeErrorInReport: true },
    );
    release();
    const seconds = (performance.now() - t0) / 1000;
    const failedInside = log.lines.filter((l) => l.includes('socket.handler.failed') || l.includes('api.error'));
    if (failedInside.length) throw new Error(`handlers failed internally: ${failedInside.slice(0, 3).join(' | ')}`);

    // the honest round: exactly the mean of the honest updates
    await within(coord.federation.whenStopped(), 60_000, 'the honest round to end');
    const { currentId: id } = await api.json<{ currentId: string }>('/api/versions');
    const native = decodeAdapter(await api.bytes(`/api/versions/${id}/native`));
    const honestBias = native.adapter['classifier.bias'].data[0];
    const rounds = await api.json<{ outcome: string; updates: number }[]>('/api/rounds');
    return {
      frames: sent,
      seconds,
      outcomes,
      eventsSent: [...eventsSent].filter((e) => EVENT_NAMES.includes(e as never)).sort(),
      routesSent: [...routesSent].filter((r) => r in ADMIN_ROUTES).sort(),
      reconnects,
      honestBias,
      honestRoundOutcome: `${rounds[0]?.outcome} with ${rounds[0]?.updates} updates`,
    };
  } finally {
    release();
    for (const c of conns.values()) {
      c.socket?.close();
      c.raw?.close();
    }
    for (const h of honest) h.close();
    await tiny.close();
    process.off('uncaughtException', onEscape);
    process.off('unhandledRejection', onEscape);
  }
}
