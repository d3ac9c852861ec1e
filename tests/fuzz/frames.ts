// The fuzz frames of issue 18 (must-show 2) as fast-check arbitraries: what a hostile peer sends to the site socket
// (every CLIENT_EVENTS event and unknown ones, encoded by socket.io-client or written as raw packet text, binary
// attachments that disagree with their header, engine.io-level garbage, frames over the transport limit, replays of
// captured valid requests) and to the admin REST API (every ADMIN_ROUTES route, with and without the token).
// A frame is data only; harness.ts sends it and judges the answer.

import fc from 'fast-check';
import { ADMIN_ROUTES } from '@fedlora/coordinator/testing';
import { CLIENT_EVENTS } from '@fedlora/shared/protocol/events.ts';

/** socket connections: socket.io-client (anon = not authenticated, auth = an enrolled attacker), or raw engine.io */
export const SOCKET_CONNS = ['anon-ws', 'anon-poll', 'auth-ws', 'auth-poll'] as const;
export const RAW_CONNS = ['raw-ws', 'raw-poll'] as const;
export type SocketConn = (typeof SOCKET_CONNS)[number];
export type RawConn = (typeof RAW_CONNS)[number];
export type AnyConn = SocketConn | RawConn;

export const EVENT_NAMES = Object.keys(CLIENT_EVENTS) as (keyof typeof CLIENT_EVENTS)[];
export const ROUTES = Object.keys(ADMIN_ROUTES) as (keyof typeof ADMIN_ROUTES)[];

/** One change to a valid request: drop a field, replace it with a bad value, add a field, or nothing. */
export interface Mutation {
  op: 'none' | 'delete' | 'replace' | 'extra' | 'wrap';
  field: number;
  value: unknown;
}

export type FuzzFrame =
  /** an event encoded by socket.io-client (binary fields intact), answered through its ack */
  | { kind: 'emit'; conn: SocketConn; event: string; body: { template: number; mutation: Mutation } | { any: unknown } }
  /** socket.io packet text written raw: type, optional ack id, event and payload serialized by hand (NaN, 1e999) */
  | { kind: 'text'; conn: AnyConn; packet: string; ack: boolean; truncate: number | null }
  /** a BINARY_EVENT header announcing `announced` attachments, followed by `sent` of them */
  | { kind: 'binary'; conn: AnyConn; event: string; announced: number; sent: Uint8Array[]; ack: boolean }
  /** engine.io-level text or bytes (raw connections only: socket.io-client's engine frames its own packets) */
  | { kind: 'engine'; conn: RawConn; data: string | Uint8Array }
  /** a request over the transport's frame limit */
  | { kind: 'oversized'; conn: SocketConn; event: string }
  /** a request that was valid once (an honest upload, a used join token, a spent challenge), sent again */
  | { kind: 'replay'; conn: SocketConn; pick: number }
  | {
      kind: 'http';
      route: string;
      method: string | null;
      auth: 'token' | 'none' | 'wrong' | 'malformed' | 'cookie';
      param: string;
      query: Record<string, string>;
      body: { json: unknown } | { text: string } | { size: number } | null;
      origin: string | null;
    };

/** values that break schemas: wrong types, non-finite and edge numbers, oversized strings, prototype keys */
const badValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(NaN, Infinity, -Infinity, -0, 1e308, -1, 2 ** 53, 0.5, null, true, '', [], {}, 'latest', '../../etc/passwd'),
  fc.double(),
  fc.integer(),
  fc.string({ maxLength: 40 }),
  fc.string({ minLength: 300, maxLength: 600 }),
  fc.constant('x'.repeat(5000)),
  fc.uint8Array({ maxLength: 80 }),
  fc.float32Array({ maxLength: 8 }).map((a) => new Uint8Array(a.buffer)),
  fc.jsonValue({ maxDepth: 3 }),
  fc.constant(JSON.parse('{"__proto__": {"polluted": 1}}') as unknown),
);

const mutation: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom('none', 'delete', 'replace', 'replace', 'replace', 'extra', 'wrap'),
  field: fc.nat(16),
  value: badValue,
});

const eventName = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...EVENT_NAMES) },
  { weight: 1, arbitrary: fc.constantFrom('no:such-event', '', ' ', 'disconnect', 'connect', '__proto__', 'constructor', 'x'.repeat(300)) },
);

/** JSON with what JSON.stringify cannot write: NaN (invalid JSON), ±1e999 (parses as ±Infinity), -0 */
export function hostileJson(v: unknown): string {
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'NaN';
    if (v === Infinity) return '1e999';
    if (v === -Infinity) return '-1e999';
    if (Object.is(v, -0)) return '-0';
    return String(v);
  }
  if (v instanceof Uint8Array) return '{"_placeholder":true,"num":0}';
  if (Array.isArray(v)) return `[${v.map(hostileJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v).map((k) => `${JSON.stringify(k)}:${hostileJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

const textPacket: fc.Arbitrary<string> = fc.oneof(
  // an EVENT (2) with a known or unknown name and a hostile payload; the ack id is added by the sender
  fc.tuple(eventName, fc.oneof(badValue, fc.anything({ maxDepth: 2 })), fc.boolean()).map(
    ([e, p, extra]) => `2[${JSON.stringify(e)},${hostileJson(p)}${extra ? ',' + hostileJson(p) : ''}]`,
  ),
  // names that are not strings, no name at all, reserved names
  fc.constantFrom('2', '2[]', '2[1]', '2[0,{}]', '2[null]', '2[true]', '2[{}]', '2[[1]]', '2[1.5,"x"]', '2[-0]', '2[1e999]', '2[NaN]', '2["disconnect"]'),
  // other packet types where a site may not send them, and namespaces that do not exist
  fc.constantFrom('0', '0{"token":1}', '0/admin,', '0/nope,{}', '1', '3', '3[]', '31[]', '6', '4"err"', '9', '0/admin,{"token":"x"}'),
  fc.string({ maxLength: 120 }).map((s) => `${s.length % 10}${s}`),
);

const bytes = fc.uint8Array({ maxLength: 200 });

const httpBody = fc.oneof(
  { weight: 4, arbitrary: fc.oneof(badValue, fc.anything({ maxDepth: 2 }), fc.dictionary(fc.constantFrom('token', 'name', 'minSites', 'deadlineS', 'strategy', 'sitesPerRound', 'learningRate', 'encoding', 'strategyOptions', 'rounds', 'x'), badValue)).map((json) => ({ json })) },
  { weight: 2, arbitrary: fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom('{', '{"a":', '[1,2', 'null', '"str"', '{"name": NaN}', '{"minSites": 1e999}')).map((text) => ({ text })) },
  { weight: 1, arbitrary: fc.constantFrom({ size: 70 * 1024 }, { size: 1024 * 1024 }) },
  { weight: 2, arbitrary: fc.constant(null) },
);

const httpParam = fc.oneof(
  fc.constantFrom('v0', 'v1', 'latest', 'nope', '..%2f..%2fetc%2fpasswd', '%E0%A4%A', '%zz', '%00', 'site-x', '__proto__', 'constructor', 'x'.repeat(2000)),
  fc.string({ maxLength: 40 }).map(encodeURIComponent),
);

export const httpFrame: fc.Arbitrary<FuzzFrame> = fc.record({
  kind: fc.constant('http' as const),
  route: fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...ROUTES) }, { weight: 1, arbitrary: fc.constantFrom('GET /nope', 'POST /versions', 'GET /sites/:id', 'PATCH /settings') }),
  method: fc.option(fc.constantFrom<string>('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'), { freq: 8, nil: null }),
  auth: fc.constantFrom('token', 'token', 'none', 'wrong', 'malformed', 'cookie'),
  param: httpParam,
  query: fc.oneof(fc.constant({}), fc.dictionary(fc.constantFrom('file', 'x', '__proto__', 'offset'), fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('adapter_config.json', 'adapter_model.safetensors')))),
  body: httpBody,
  origin: fc.option(fc.constantFrom<string>('http://evil.example', 'null', ''), { freq: 4, nil: null }),
});

export const socketFrame: fc.Arbitrary<FuzzFrame> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant('emit' as const),
      conn: fc.constantFrom(...SOCKET_CONNS),
      event: eventName,
      body: fc.oneof(
        { weight: 4, arbitrary: fc.record({ template: fc.nat(64), mutation }) },
        { weight: 1, arbitrary: fc.record({ any: fc.oneof(badValue, fc.anything({ maxDepth: 2, withTypedArray: true })) }) },
      ),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('text' as const),
      conn: fc.constantFrom<AnyConn>(...SOCKET_CONNS, ...RAW_CONNS),
      packet: textPacket,
      ack: fc.boolean(),
      truncate: fc.option(fc.nat(200), { freq: 3, nil: null }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('binary' as const),
      conn: fc.constantFrom<AnyConn>(...SOCKET_CONNS, ...RAW_CONNS),
      event: eventName,
      announced: fc.nat(3),
      sent: fc.array(bytes, { maxLength: 3 }),
      ack: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('engine' as const),
      conn: fc.constantFrom(...RAW_CONNS),
      data: fc.oneof(fc.constantFrom('', '9', '5', '6', '3probe', '2probe', '1', 'b', 'bAAAA', 'b!!'), fc.string({ maxLength: 40 }), bytes),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('replay' as const), conn: fc.constantFrom(...SOCKET_CONNS), pick: fc.nat() }) },
);

/** The mix: mostly socket frames, a quarter admin requests, and now and then a frame over the transport limit. */
export const fuzzFrame: fc.Arbitrary<FuzzFrame> = fc.oneof(
  { weight: 72, arbitrary: socketFrame },
  { weight: 27, arbitrary: httpFrame },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('oversized' as const), conn: fc.constantFrom(...SOCKET_CONNS), event: fc.constantFrom(...EVENT_NAMES) }) },
);

/** Applies `m` to a copy of a valid request: the bad value lands on one of its fields (or the whole request). */
export function mutate(valid: Record<string, unknown>, m: Mutation): unknown {
  const keys = Object.keys(valid);
  const key = keys[m.field % keys.length];
  const copy: Record<string, unknown> = { ...valid };
  switch (m.op) {
    case 'none':
      return copy;
    case 'delete':
      delete copy[key];
      return copy;
    case 'replace':
      copy[key] = m.value;
      return copy;
    case 'extra':
      copy[`x${m.field}`] = m.value;
      return copy;
    case 'wrap':
      return [copy, m.value];
  }
}
