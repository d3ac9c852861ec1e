// The site's side of the socket.io request/ack contract, shared by the Node agent and the browser site: send a
// request and validate the coordinator's ack (every reply goes through parseClientReply), enroll with a one-time
// token, and authenticate by signing the coordinator's challenge. Opening the socket stays with each client.

import { FedloraError, isFedloraError } from '../errors';
import { publicIdentity, type SiteKeys } from '../crypto/keys';
import { signChallenge } from '../crypto/envelope';
import { randomBytes } from '../crypto/bytes';
import { HELLO_NONCE_BYTES, trustCoordinator, type CoordinatorTrust } from '../crypto/coordinator-trust';
import { projectOfNamespace } from '../protocol/project-id';
import { parseManifest, type Manifest } from '../protocol/manifest';
import { verifyManifest } from '../protocol/signed-messages';
import { parseClientReply, type ClientEventName, type ClientReply, type ClientRequest } from '../protocol/events';
import { isPartedEvent, splitRequest } from '../protocol/frame-parts';
import type { RoundTransport } from '../round/round-handler';

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * What a request needs from a socket.io-client Socket. Its typed emitWithAck does not let a generic event name
 * through, so clients pass their socket through asAckSocket (shared/ does not depend on socket.io-client).
 */
export interface AckSocket {
  timeout(ms: number): { emitWithAck(event: string, payload: unknown): Promise<unknown> };
  /** the namespace the socket talks on (socket.io-client's Socket.nsp): it names the site's project */
  readonly nsp?: string;
}

/** The part of a socket.io-client Socket that tells a lost connection. */
export interface ConnectionSocket {
  readonly connected: boolean;
  once(event: 'disconnect', listener: (reason: string) => void): unknown;
  off(event: 'disconnect', listener: (reason: string) => void): unknown;
}

/** The socket as an AckSocket whose pending acks fail as soon as the connection is lost (failOnDisconnect). */
export function asAckSocket(socket: object): AckSocket {
  const s = socket as unknown as AckSocket & ConnectionSocket;
  return {
    nsp: s.nsp,
    timeout: (ms) => ({
      emitWithAck: (event, payload) => failOnDisconnect(s, event, () => s.timeout(ms).emitWithAck(event, payload)),
    }),
  };
}

/**
 * Runs `send` but fails with UNREACHABLE as soon as the socket disconnects (at once if it already has, without
 * sending). socket.io-client fails a pending ack on disconnect only if its packet went out: one emitted on a dead
 * socket, or while the engine's ping had expired (the event loop was busy training), is buffered for a
 * reconnection that never comes (one socket per connection here), so its ack waited the full request timeout
 * while the site declined every round.
 */
export function failOnDisconnect<T>(socket: ConnectionSocket, what: string, send: () => Promise<T>): Promise<T> {
  if (!socket.connected)
    return Promise.reject(new FedloraError('UNREACHABLE', `${what}: not connected to the coordinator`));
  return new Promise<T>((resolve, reject) => {
    const onDisconnect = (reason: string) =>
      reject(new FedloraError('UNREACHABLE', `${what}: connection to the coordinator lost (${reason})`));
    socket.once('disconnect', onDisconnect);
    const stopListening = () => socket.off('disconnect', onDisconnect);
    try {
      send().then(resolve, reject).finally(stopListening);
    } catch (err) {
      stopListening();
      reject(err);
    }
  });
}

/** How a request is sent; `partBytes` cuts a large update into smaller 'frame:part's (tests use tiny parts). */
export interface RequestOptions {
  partBytes?: number;
}

async function sendOnce(socket: AckSocket, event: string, payload: unknown, timeoutMs: number): Promise<unknown> {
  try {
    return await socket.timeout(timeoutMs).emitWithAck(event, payload);
  } catch (err) {
    if (isFedloraError(err)) throw err; // e.g. the connection was lost (failOnDisconnect)
    throw new FedloraError('UNREACHABLE', `${event}: no reply from the coordinator within ${timeoutMs} ms`, { cause: err });
  }
}

/**
 * Sends one request and returns the coordinator's validated reply; its error ack is thrown as a FedloraError.
 * An update larger than one transport frame goes as numbered parts, each acked (protocol/frame-parts.ts).
 */
export async function request<E extends ClientEventName>(
  socket: AckSocket,
  event: E,
  payload: ClientRequest<E>,
  timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
  opts: RequestOptions = {},
): Promise<ClientReply<E>> {
  const parts = isPartedEvent(event) ? await splitRequest(event, payload, opts.partBytes) : [];
  if (parts.length <= 1) return parseClientReply(event, await sendOnce(socket, event, payload, timeoutMs));
  for (const part of parts.slice(0, -1)) parseClientReply('frame:part', await sendOnce(socket, 'frame:part', part, timeoutMs));
  return parseClientReply(event, await sendOnce(socket, 'frame:part', parts[parts.length - 1], timeoutMs));
}

/** The part of a socket.io-client Socket that listens to the coordinator's events. */
interface ListeningSocket {
  readonly connected: boolean;
  on(event: string, listener: (...args: never[]) => void): unknown;
}

/** A connected socket as the round handler's transport (round-handler.ts): its round events, and requests sent
 * with request() through asAckSocket. */
export function roundTransport(socket: object, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): RoundTransport {
  const s = socket as unknown as ListeningSocket;
  const ack = asAckSocket(socket);
  return {
    on: (event, listener) => void s.on(event, listener),
    request: (event, payload) => request(ack, event, payload, timeoutMs),
    get connected() {
      return s.connected;
    },
  };
}

/** Registers the site's public keys with a one-time token; returns the site id the coordinator assigned. */
export async function enroll(socket: AckSocket, token: string, siteId: string, keys: SiteKeys): Promise<string> {
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
  /** the coordinator's checked signing key: every round message and adapter version is verified with it */
  trust: CoordinatorTrust;
}

/**
 * 'coordinator:hello': the coordinator signs a fresh nonce with its long-term key, whose fingerprint must be `pinned`
 * (crypto/coordinator-trust.ts; null: nothing pinned yet, the presented key is taken and its fingerprint returned for
 * the caller to record). UNTRUSTED_COORDINATOR names both fingerprints on a mismatch.
 */
export async function helloCoordinator(socket: AckSocket, pinned: string | null, timeoutMs?: number): Promise<CoordinatorTrust> {
  const nonce = randomBytes(HELLO_NONCE_BYTES);
  const reply = await request(socket, 'coordinator:hello', { nonce }, timeoutMs);
  // the project is the namespace's: what the coordinator signed for another project's sites does not verify here
  return trustCoordinator(reply, nonce, pinned, projectOfNamespace(socket.nsp));
}

/**
 * Hello → challenge → signature → signed manifest. The site's signature binds the coordinator id and site id
 * (crypto/envelope.ts); the coordinator's binds the manifest to its pinned key.
 */
export async function authenticate(
  socket: AckSocket,
  siteId: string,
  keys: SiteKeys,
  timeoutMs: number | undefined,
  pinned: string | null,
): Promise<Session> {
  const trust = await helloCoordinator(socket, pinned, timeoutMs);
  const { challenge, coordinatorId } = await request(socket, 'auth:challenge', { siteId }, timeoutMs);
  if (coordinatorId !== trust.coordinatorId)
    throw new FedloraError('UNTRUSTED_COORDINATOR', `the challenge names coordinator ${coordinatorId}, its hello ${trust.coordinatorId}`);
  const signature = signChallenge(challenge, { siteId, coordinatorId }, keys.signing.secretKey);
  const reply = await request(socket, 'auth:prove', { siteId, signature }, timeoutMs);
  const manifest = parseManifest(reply.manifest);
  verifyManifest(trust, manifest, reply.manifestSignature);
  return { coordinatorId, manifest, trust };
}
