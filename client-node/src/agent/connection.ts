// The site's side of the socket.io contract: open a connection, send a request and validate the coordinator's
// ack (every reply goes through parseClientReply), enroll with a one-time token, and authenticate by signing the
// coordinator's challenge. Each connection attempt is one socket; reconnecting is the agent's loop (backoff.ts),
// so authentication always runs again on a fresh socket.

import { io, type Socket } from 'socket.io-client';
import { FedloraError, isFedloraError } from '@fedlora/shared/errors.ts';
import { publicIdentity, type SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { signChallenge } from '@fedlora/shared/crypto/envelope.ts';
import { parseManifest, type Manifest } from '@fedlora/shared/protocol/manifest.ts';
import {
  parseClientReply,
  type ClientEventName,
  type ClientReply,
  type ClientRequest,
  type ClientToServerEvents,
  type ServerToClientEvents,
} from '@fedlora/shared/protocol/events.ts';

export type SiteSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** Opens one socket.io connection; UNREACHABLE (with the cause) if it cannot be established in time. */
export function openSocket(url: string, timeoutMs = DEFAULT_CONNECT_TIMEOUT_MS): Promise<SiteSocket> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    return Promise.reject(new FedloraError('CONFIG_INVALID', `coordinator URL "${url}" is not a URL`, { cause: err }));
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    return Promise.reject(new FedloraError('CONFIG_INVALID', `coordinator URL must be http(s)://, got "${url}"`));
  const socket: SiteSocket = io(url, {
    // websocket first: update frames are binary and MBs large, long-polling would base64 them
    transports: ['websocket'],
    reconnection: false,
    timeout: timeoutMs,
    forceNew: true,
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

// socket.io's typed emitWithAck does not let a generic event name through; this is the untyped shape it has.
interface AckEmitter {
  timeout(ms: number): { emitWithAck(event: string, payload: unknown): Promise<unknown> };
}

/** Sends one request and returns the coordinator's validated reply; its error ack is thrown as a FedloraError. */
export async function request<E extends ClientEventName>(
  socket: SiteSocket,
  event: E,
  payload: ClientRequest<E>,
  timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
): Promise<ClientReply<E>> {
  let raw: unknown;
  try {
    raw = await (socket as unknown as AckEmitter).timeout(timeoutMs).emitWithAck(event, payload);
  } catch (err) {
    throw new FedloraError('UNREACHABLE', `${event}: no reply from the coordinator within ${timeoutMs} ms`, { cause: err });
  }
  return parseClientReply(event, raw);
}

/** Registers the site's public keys with a one-time token; returns the site id the coordinator assigned. */
export async function enroll(socket: SiteSocket, token: string, siteId: string, keys: SiteKeys): Promise<string> {
  try {
    const reply = await request(socket, 'site:enroll', { token, siteId, ...publicIdentity(keys) });
    return reply.siteId;
  } catch (err) {
    if (isFedloraError(err, 'TOKEN_USED'))
      throw new FedloraError('TOKEN_USED', 'this join token was already used: ask the coordinator admin for a new one', { cause: err });
    if (isFedloraError(err, 'UNAUTHORIZED'))
      throw new FedloraError('UNAUTHORIZED', `the coordinator refused the join token (${err.message})`, { cause: err });
    throw err;
  }
}

export interface Session {
  coordinatorId: string;
  manifest: Manifest;
}

/** Challenge → signature → manifest. The signature binds the coordinator id and site id (crypto/envelope.ts). */
export async function authenticate(socket: SiteSocket, siteId: string, keys: SiteKeys, timeoutMs?: number): Promise<Session> {
  const { challenge, coordinatorId } = await request(socket, 'auth:challenge', { siteId }, timeoutMs);
  const signature = signChallenge(challenge, { siteId, coordinatorId }, keys.signing.secretKey);
  const { manifest } = await request(socket, 'auth:prove', { siteId, signature }, timeoutMs);
  return { coordinatorId, manifest: parseManifest(manifest) };
}

/** Connect + authenticate in one step (predict, join's check); the caller closes the socket. */
export async function connectAndAuthenticate(
  url: string,
  siteId: string,
  keys: SiteKeys,
): Promise<Session & { socket: SiteSocket }> {
  const socket = await openSocket(url);
  try {
    return { socket, ...(await authenticate(socket, siteId, keys)) };
  } catch (err) {
    socket.close();
    throw err;
  }
}
