// The coordinator's admin side as the e2e tests use it: the REST API under /api (bearer token), the '/admin' live
// namespace recorded so that no early event is missed, and the parts of its records the tests read (docs/API.md).

import { io as connect, type Socket } from 'socket.io-client';
import { ADMIN_TOKEN, within } from './federation-harness';

/** The admin REST API of a coordinator at `url`. */
export function adminApi(url: string, token: string | null = ADMIN_TOKEN) {
  const call = async (path: string, init: RequestInit = {}) =>
    fetch(url + path, {
      ...init,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      signal: AbortSignal.timeout(60_000),
    });
  return {
    call,
    async json<T>(path: string, init: RequestInit = {}): Promise<T> {
      const r = await call(path, init);
      if (!r.ok) throw new Error(`${init.method ?? 'GET'} ${path}: HTTP ${r.status} ${await r.text()}`);
      return (await r.json()) as T;
    },
    async bytes(path: string): Promise<Uint8Array> {
      const r = await call(path);
      if (!r.ok) throw new Error(`GET ${path}: HTTP ${r.status}`);
      return new Uint8Array(await r.arrayBuffer());
    },
  };
}

/** A connected '/admin' socket that records every event it receives, so a wait can never miss an early one. */
export interface AdminFeed {
  socket: Socket;
  events: { event: string; data: Record<string, unknown> }[];
  /** resolves with the first event (past or future) named `event` for which `match` holds */
  next(
    event: string,
    match: (d: Record<string, unknown>) => boolean,
    ms: number,
  ): Promise<Record<string, unknown>>;
  close(): void;
}

export async function adminFeed(url: string, token = ADMIN_TOKEN): Promise<AdminFeed> {
  const socket = connect(url + '/admin', { transports: ['websocket'], forceNew: true, auth: { token } });
  const events: AdminFeed['events'] = [];
  const waiters: {
    event: string;
    match: (d: Record<string, unknown>) => boolean;
    resolve: (d: Record<string, unknown>) => void;
  }[] = [];
  socket.onAny((event: string, data: Record<string, unknown>) => {
    events.push({ event, data });
    for (const w of [...waiters])
      if (w.event === event && w.match(data)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(data);
      }
  });
  await within(
    new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    }),
    30_000,
    `the /admin namespace of ${url}`,
  );
  return {
    socket,
    events,
    next: (event, match, ms) =>
      within(
        new Promise((resolve) => {
          const seen = events.find((e) => e.event === event && match(e.data));
          if (seen) return resolve(seen.data);
          waiters.push({ event, match, resolve });
        }),
        ms,
        `admin event ${event}`,
      ),
    close: () => socket.close(),
  };
}

/** The parts of the coordinator's records the tests read (docs/API.md). */
export interface VersionRecord {
  id: string;
  parent: string | null;
  round: number;
  sites: number;
  examples: number;
  sha256: string;
  bytes: number;
  metrics: {
    accuracy: number;
    macroF1: number;
    loss: number;
    perClass: { label: string; support: number }[];
  } | null;
}
export interface RoundRecord {
  round: number;
  outcome: string;
  versionId: string | null;
  baseVersionId: string;
  sampled: number;
  participants: number;
  updates: number;
  failures: { siteId: string; code: string }[];
  rejections: { siteId: string; code: string }[];
  uploadedBytes: number;
  durationMs: number;
  strategy: string;
  /** the training config the round's sites got (FedProx's proximalMu among it) */
  config?: { proximalMu: number } & Record<string, unknown>;
}
export interface SiteRecord {
  id: string;
  name: string;
  online: boolean;
  ready: boolean;
  backend?: string;
  revokedAt: string | null;
  roundsContributed: number;
  lastError: { code: string; round: number; at: string } | null;
}
