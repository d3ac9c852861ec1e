// The Node site's socket: open a connection, then request/enroll/authenticate through the shared implementation
// (shared/src/connection/session.ts, also used by the browser site). Each connection attempt is one socket; reconnecting
// is the agent's loop (shared/src/connection/backoff.ts), so authentication always runs again on a fresh socket.

import { readFileSync } from 'node:fs';
import { io, type Socket } from 'socket.io-client';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { projectNamespace } from '@fedlora/shared/protocol/join-token.ts';
import type { SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import type { CoordinatorTrust } from '@fedlora/shared/crypto/coordinator-trust.ts';
import * as shared from '@fedlora/shared/connection/session.ts';
import { asAckSocket, DEFAULT_REQUEST_TIMEOUT_MS, type Session } from '@fedlora/shared/connection/session.ts';
import type {
  ClientEventName,
  ClientReply,
  ClientRequest,
  ClientToServerEvents,
  ServerToClientEvents,
} from '@fedlora/shared/protocol/events.ts';

export type SiteSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export { DEFAULT_REQUEST_TIMEOUT_MS, type Session };

/** How a site reaches its coordinator: `caFile` adds a private CA (PEM) for an https:// coordinator. */
export interface ConnectOptions {
  caFile?: string;
  /** the coordinator's project (issue 21): its sites talk on the namespace '/projects/<id>'; absent: the default */
  project?: string | null;
  timeoutMs?: number;
}

function readCa(caFile: string): Buffer {
  try {
    const pem = readFileSync(caFile);
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new FedloraError('CONFIG_INVALID', `--ca ${caFile} holds no PEM certificate`);
    return pem;
  } catch (err) {
    if (err instanceof FedloraError) throw err;
    throw new FedloraError('FILE_NOT_FOUND', `--ca ${caFile}: ${(err as Error).message}`, { cause: err });
  }
}

/** Opens one socket.io connection; UNREACHABLE (with the cause) if it cannot be established in time. */
export function openSocket(url: string, o: ConnectOptions = {}): Promise<SiteSocket> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    return Promise.reject(new FedloraError('CONFIG_INVALID', `coordinator URL "${url}" is not a URL`, { cause: err }));
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    return Promise.reject(new FedloraError('CONFIG_INVALID', `coordinator URL must be http(s)://, got "${url}"`));
  // socket.io-client takes the URL's path as the namespace: the project's, on the coordinator's own origin
  const socket: SiteSocket = io(o.project ? new URL(projectNamespace(o.project), parsed).href : url, {
    // websocket first: update frames are binary and MBs large, long-polling would base64 them
    transports: ['websocket'],
    reconnection: false,
    timeout: timeoutMs,
    forceNew: true,
    // a private CA in addition to the system's (engine.io hands it to the TLS connection; a public CA needs nothing)
    ...(o.caFile ? ({ ca: readCa(o.caFile) } as object) : {}),
  });
  return new Promise((resolve, reject) => {
    const fail = (why: string, cause?: unknown) => {
      socket.off('connect', ok);
      socket.close();
      reject(new FedloraError('UNREACHABLE', `cannot reach the coordinator at ${url}: ${why}`, { cause }));
    };
    const ok = () => {
      socket.off('connect_error', onError);
      resolve(socket);
    };
    const onError = (err: Error) => fail(err.message || 'connection refused', err);
    socket.once('connect', ok);
    socket.once('connect_error', onError);
  });
}

/** Sends one request and returns the coordinator's validated reply (shared/src/connection/session.ts). */
export function request<E extends ClientEventName>(
  socket: SiteSocket,
  event: E,
  payload: ClientRequest<E>,
  timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
): Promise<ClientReply<E>> {
  return shared.request(asAckSocket(socket), event, payload, timeoutMs);
}

/** Registers the site's public keys with a one-time token; returns the site id the coordinator assigned. */
export function enroll(socket: SiteSocket, token: string, siteId: string, keys: SiteKeys): Promise<string> {
  return shared.enroll(asAckSocket(socket), token, siteId, keys);
}

/** The coordinator proves its pinned signing key (null: none pinned yet); shared/src/connection/session.ts. */
export function helloCoordinator(socket: SiteSocket, pinned: string | null): Promise<CoordinatorTrust> {
  return shared.helloCoordinator(asAckSocket(socket), pinned);
}

/** Hello → challenge → signature → signed manifest, against the pinned fingerprint (shared/src/connection/session.ts). */
export function authenticate(
  socket: SiteSocket,
  siteId: string,
  keys: SiteKeys,
  pinned: string | null,
  timeoutMs?: number,
): Promise<Session> {
  return shared.authenticate(asAckSocket(socket), siteId, keys, timeoutMs, pinned);
}

/** Connect + authenticate in one step (predict, join's check); the caller closes the socket. */
export async function connectAndAuthenticate(
  url: string,
  siteId: string,
  keys: SiteKeys,
  pinned: string | null,
  o: ConnectOptions = {},
): Promise<Session & { socket: SiteSocket }> {
  const socket = await openSocket(url, o);
  try {
    return { socket, ...(await authenticate(socket, siteId, keys, pinned)) };
  } catch (err) {
    socket.close();
    throw err;
  }
}
