// Site-facing socket.io handlers. Every request is parsed with its schema at the edge, answered with an Ack, and
// every rejection is one log line (ids and codes only, never tokens or keys) with no state change. Until a socket
// has proved its identity (auth:challenge + auth:prove) it may only enroll or authenticate.

import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import nacl from 'tweetnacl';
import { LIMITS } from '@fedlora/shared/protocol/limits.ts';
import { FedloraError, describeError } from '@fedlora/shared/errors.ts';
import { createChallenge, verifyChallenge } from '@fedlora/shared/crypto/envelope.ts';
import {
  ackError,
  ackOk,
  type Ack,
  CLIENT_EVENTS,
  parseClientRequest,
  type ClientEventName,
  type ClientReply,
  type ClientRequest,
} from '@fedlora/shared/protocol/events.ts';
import type { Manifest } from '@fedlora/shared/protocol/manifest.ts';
import type { Logger } from '../log';
import type { CandidateAdapters } from '../eval/candidate-adapters';
import type { Federation } from '../rounds/federation';
import type { AdapterStore } from '../registry/types';
import type { SiteStore } from '../sites/types';
import type { Presence, SiteNamespace, SiteSocket } from './presence';
import type { ConnectionGate } from './connection-gate';
import { FrameAssembly, type PartBudget } from './frame-assembly';
import type { RejectionLog } from './rejection-log';
import type { CoordinatorSigner } from '../coordinator-key';
import { adapterVersionBody } from '@fedlora/shared/protocol/signed-messages.ts';
import { DEFAULT_PROJECT_ID, parseJoinToken } from '@fedlora/shared/protocol/join-token.ts';
import type { ClusterLink, ForwardedEvent } from '../cluster/cluster-link';

/** A base-model file the coordinator serves in chunks ('model:chunk'). */
export interface ModelFile {
  path: string;
  absPath: string;
  sha256: string;
  bytes: number;
}

export interface SiteHandlerDeps {
  sites: SiteStore;
  federation: Federation;
  store: AdapterStore;
  presence: Presence;
  manifest: () => Promise<Manifest>;
  coordinatorId: string;
  /** the project these handlers serve (projects/project.ts): a join token of another project enrolls nothing here */
  projectId: string;
  /** the coordinator's long-term key: answers 'coordinator:hello', signs the manifest and adapter versions */
  signer: Pick<CoordinatorSigner, 'sign' | 'hello' | 'publicKey' | 'fingerprint'>;
  modelFiles: readonly ModelFile[];
  log: Logger;
  /** throttled per-peer log of refused requests */
  rejections: RejectionLog;
  /** unauthenticated connections: per-address cap and authentication deadline */
  gate: ConnectionGate;
  /** bytes all sockets' unfinished parted uploads may hold */
  partBudget: PartBudget;
  /** candidates under federated evaluation, which 'adapter:chunk' serves besides the store's versions */
  candidates?: CandidateAdapters;
  /** bytes of adapters and base-model chunks sent to sites (the metrics' transfer counters) */
  sent?: (kind: 'adapter' | 'model', bytes: number) => void;
  /** several processes: a round request from a site on this process goes to the leader (cluster/cluster-link.ts) */
  cluster?: { link: ClusterLink; isLeader: () => boolean } | null;
}

/**
 * What a site sends during a round, run by the federation of this process: the socket handlers call it for their own
 * sites, and in a cluster the leader calls it for sites connected to other processes (the payload is parsed again
 * here: it crossed Redis). Throws a peer-visible FedloraError on refusal.
 */
export function roundRequests(d: Pick<SiteHandlerDeps, 'sites' | 'federation'>) {
  return async (event: ForwardedEvent, siteId: string, raw: unknown): Promise<void> => {
    if (event === 'round:fail') return d.federation.reportFailure(siteId, parseClientRequest('round:fail', raw));
    if (event === 'secagg:upload') return d.federation.maskedUpload(siteId, parseClientRequest('secagg:upload', raw));
    const req = parseClientRequest('update:upload', raw);
    const key = await d.sites.signingKey(siteId);
    if (!key) throw new FedloraError('UNAUTHORIZED', 'this site is no longer enrolled');
    d.federation.upload(siteId, key, req);
  };
}

/**
 * The secret of a join token as the site sent it. Sites send the secret alone; a client that sends the whole pinned
 * token (protocol/join-token.ts) is served too, unless it was pinned to another coordinator's key.
 */
function enrollmentSecret(token: string, fingerprint: string, projectId: string): string {
  let t;
  try {
    t = parseJoinToken(token);
  } catch (err) {
    throw new FedloraError('BAD_MESSAGE', 'the join token ends in a malformed coordinator fingerprint', { cause: err });
  }
  if (t.fingerprint !== null && t.fingerprint !== fingerprint)
    throw new FedloraError('UNAUTHORIZED', 'this join token was made for another coordinator (its fingerprint is not this coordinator\'s)');
  // a whole token of another project: the same answer as any token this project does not know. Sites send the secret
  // alone (the namespace they connect to is the project), and only this project's registry can know it
  if (t.fingerprint !== null && (t.project ?? DEFAULT_PROJECT_ID) !== projectId) throw new FedloraError('UNAUTHORIZED', 'unknown join token');
  return t.secret;
}

const OPEN_EVENTS = new Set<ClientEventName>(['coordinator:hello', 'site:enroll', 'auth:challenge', 'auth:prove']);
/** errors the round loop already logged */
const logged = new WeakSet<object>();
/** what a failed prove says, whatever failed: unknown, revoked and enrolled ids must look alike before auth */
const AUTH_FAILED = 'authentication failed: unknown or revoked site, or a signature that does not verify';
/** verified against when the id has no key, so that an unknown id costs the same time as a wrong signature */
const DECOY_SIGNING_KEY = nacl.sign.keyPair().publicKey;

type AnyAck = Ack<unknown>;

export function attachSiteHandlers(io: SiteNamespace, d: SiteHandlerDeps): void {
  io.on('connection', (socket) => {
    const peer = socket.handshake.address;
    const assembly = new FrameAssembly(d.partBudget);
    const reject = (event: string, code: string, reason: string) =>
      d.rejections.record('request.rejected', peer, { event, site: socket.data.siteId, code, reason });
    /** a thrown value that is not a peer's fault: logged in full (never reaching the process), answered INTERNAL */
    const internal = (where: string, err: unknown) =>
      d.log('socket.handler.failed', { where, site: socket.data.siteId, error: describeError(err) });

    const handlers = new Map<ClientEventName, (raw: unknown, siteId: string) => Promise<unknown>>();

    /** Runs the handler of `event` on an unparsed request and returns the ack (never throws). */
    const answer = async (event: ClientEventName, raw: unknown): Promise<AnyAck> => {
      try {
        const siteId = socket.data.siteId;
        if (!OPEN_EVENTS.has(event) && !siteId)
          throw new FedloraError('UNAUTHORIZED', 'authenticate first (auth:challenge, then auth:prove)');
        const handler = handlers.get(event);
        if (!handler) throw new FedloraError('BAD_MESSAGE', 'unknown event');
        return ackOk(await handler(raw, siteId ?? ''));
      } catch (err) {
        if (!(err instanceof Object && logged.has(err))) reject(event, ackError(err).code, describeError(err));
        return ackError(err);
      }
    };

    /**
     * Every listener on the socket goes through here: a peer can send any number of arguments of any type under
     * any name, so the ack is taken only if it is a function, a request is exactly one argument, and no exception
     * (from a handler, a logger or the ack itself) can leave the listener.
     */
    const listen = (event: string, respond: (raw: unknown) => Promise<AnyAck>) => {
      socket.on(event as never, ((...args: unknown[]) => {
        try {
          const ack = typeof args.at(-1) === 'function' ? (args.pop() as (a: AnyAck) => void) : null;
          if (!ack || args.length !== 1) {
            const why = !ack ? 'no ack callback' : `${args.length} arguments where 1 request was expected`;
            reject(event, 'BAD_MESSAGE', why);
            ack?.(ackError(new FedloraError('BAD_MESSAGE', why)));
            return;
          }
          respond(args[0]).then(
            (reply) => {
              try {
                ack(reply);
              } catch (err) {
                internal(event, err);
              }
            },
            (err: unknown) => internal(event, err),
          );
        } catch (err) {
          internal(event, err);
        }
      }) as never);
    };

    const on = <E extends ClientEventName>(
      event: E,
      fn: (req: ClientRequest<E>, siteId: string) => Promise<ClientReply<E>> | ClientReply<E>,
    ) => {
      handlers.set(event, async (raw, siteId) => fn(parseClientRequest(event, raw), siteId));
      listen(event, (raw) => answer(event, raw));
    };

    on('site:enroll', async (req) => {
      const site = await d.sites.enroll(enrollmentSecret(req.token, d.signer.fingerprint, d.projectId), req);
      d.log('site.enrolled', { site: site.id, requested: req.siteId === site.id ? undefined : req.siteId });
      return { siteId: site.id };
    });

    // any peer may ask: a site checks the key's fingerprint against its join token before it sends the token
    on('coordinator:hello', (req) => ({
      coordinatorId: d.coordinatorId,
      signingPublicKey: d.signer.publicKey,
      signature: d.signer.hello(req.nonce, d.coordinatorId),
    }));

    // the same answer for enrolled, revoked and unknown ids: a peer learns nothing about which sites exist
    on('auth:challenge', (req) => {
      const challenge = createChallenge();
      socket.data.challenge = { siteId: req.siteId, challenge };
      return { challenge, coordinatorId: d.coordinatorId };
    });

    on('auth:prove', async (req) => {
      const pending = socket.data.challenge;
      socket.data.challenge = undefined; // one attempt per challenge, taken before anything is awaited
      const site = await d.sites.get(req.siteId);
      const key = site?.enrolledAt && !site.revokedAt ? await d.sites.signingKey(req.siteId) : undefined;
      const verified =
        !!pending &&
        pending.siteId === req.siteId &&
        verifyChallenge(
          pending.challenge,
          { siteId: req.siteId, coordinatorId: d.coordinatorId },
          req.signature,
          key ?? DECOY_SIGNING_KEY,
        );
      if (!verified || !key) {
        // the precise reason stays in the coordinator's log; the peer gets one answer for all of them
        const why = !pending || pending.siteId !== req.siteId
          ? 'no challenge for this site on this connection'
          : !site?.enrolledAt
            ? 'unknown site'
            : site.revokedAt
              ? 'revoked site'
              : 'signature does not verify';
        const err = new FedloraError('UNAUTHORIZED', AUTH_FAILED);
        reject('auth:prove', 'UNAUTHORIZED', why);
        logged.add(err);
        throw err;
      }
      const manifest = await d.manifest();
      // the connection may have closed while the stores answered: a closed socket must not become the site's session
      if (socket.disconnected)
        throw new FedloraError('UNAUTHORIZED', 'the connection closed during authentication');
      socket.data.siteId = req.siteId;
      d.gate.authenticated(socket.conn);
      d.presence.authenticated(req.siteId, socket);
      d.log('site.authenticated', { site: req.siteId });
      return { manifest, manifestSignature: d.signer.sign('manifest', manifest, d.projectId) };
    });

    on('site:ready', (req, siteId) => {
      d.presence.ready(siteId, req);
      d.log('site.ready', { site: siteId, examples: req.numExamples, newExamples: req.newExamples, backend: req.backend });
      return {};
    });

    on('site:data', (req, siteId) => {
      // before 'site:ready' a site is not in the pool: its counts come with its ready message
      if (d.presence.dataChanged(siteId, req))
        d.log('site.data', { site: siteId, examples: req.numExamples, newExamples: req.newExamples });
      return {};
    });

    // the round's own requests: to this process's federation, or in a cluster to the leader's
    const runHere = roundRequests(d);
    const roundRequest = (event: ForwardedEvent) =>
      on(event, async (req, siteId) => {
        const c = d.cluster;
        if (c && !c.isLeader()) {
          // the leader's round loop logs what it refuses; this process logs the refusal as its peer sees it
          await c.link.forward({ event, siteId, payload: req });
          return {};
        }
        try {
          await runHere(event, siteId, req);
        } catch (err) {
          // the round loop logged its own rejections already
          if (event !== 'round:fail' && err instanceof Object) logged.add(err);
          throw err;
        }
        return {};
      });
    roundRequest('update:upload');
    roundRequest('secagg:upload');
    roundRequest('round:fail');

    // what a site checks a fetched adapter against: the version's hash as this coordinator's key signed it
    const signVersion = (v: { id: string; sha256: string }) =>
      d.signer.sign('adapter:version', adapterVersionBody({ versionId: v.id, adapterSha256: v.sha256 }), d.projectId);

    on('adapter:fetch', async (req) => {
      const id = req.versionId === 'latest' ? await d.store.currentId() : req.versionId;
      const v = id ? await d.store.get(id) : undefined;
      if (!v) throw new FedloraError('NOT_FOUND', 'no such version');
      const adapter = await d.store.loadNative(v.id);
      if (adapter.byteLength > LIMITS.adapterInlineBytes)
        throw new FedloraError('FRAME_TOO_LARGE', `version ${v.id} is ${adapter.byteLength} bytes, over ${LIMITS.adapterInlineBytes}: fetch it in adapter:chunk's`);
      d.sent?.('adapter', adapter.byteLength);
      return { versionId: v.id, adapter, adapterSha256: v.sha256, versionSignature: signVersion(v) };
    });

    // any adapter in chunks with a SHA-256 each (connection/adapter-download.ts); one over the inline limit only so
    on('adapter:chunk', async (req) => {
      const id = req.versionId === 'latest' ? await d.store.currentId() : req.versionId;
      const v = id ? await d.store.get(id) : undefined;
      // a round's candidate under federated evaluation: not a registry version yet (eval/candidate-adapters.ts)
      const candidate = !v && id ? d.candidates?.get(id) : undefined;
      if (candidate) {
        const { bytes, sha256: adapterSha256 } = candidate;
        if (req.offset >= bytes.byteLength)
          throw new FedloraError('BAD_MESSAGE', `offset is past the end of the adapter (${bytes.byteLength} bytes)`);
        const data = bytes.subarray(req.offset, Math.min(bytes.byteLength, req.offset + req.length));
        d.sent?.('adapter', data.byteLength);
        const sha256 = createHash('sha256').update(data).digest('hex');
        return { versionId: id as string, offset: req.offset, totalBytes: bytes.byteLength, data, sha256, adapterSha256 };
      }
      if (!v) throw new FedloraError('NOT_FOUND', 'no such version');
      const adapter = await d.store.loadNative(v.id);
      if (req.offset >= adapter.byteLength)
        throw new FedloraError('BAD_MESSAGE', `offset is past the end of the adapter (${adapter.byteLength} bytes)`);
      const data = adapter.subarray(req.offset, Math.min(adapter.byteLength, req.offset + req.length));
      d.sent?.('adapter', data.byteLength);
      const sha256 = createHash('sha256').update(data).digest('hex');
      return { versionId: v.id, offset: req.offset, totalBytes: adapter.byteLength, data, sha256, adapterSha256: v.sha256, versionSignature: signVersion(v) };
    });

    on('model:chunk', async (req) => {
      const f = d.modelFiles.find((m) => m.path === req.path);
      if (!f) throw new FedloraError('NOT_FOUND', 'not a file of the manifest');
      if (req.offset > f.bytes)
        throw new FedloraError('BAD_MESSAGE', `offset is past the end of the file (${f.bytes} bytes)`);
      const n = Math.min(req.length, f.bytes - req.offset);
      const data = new Uint8Array(n);
      const fh = await open(f.absPath, 'r');
      try {
        await fh.read(data, 0, n, req.offset);
      } finally {
        await fh.close();
      }
      d.sent?.('model', n);
      // hashed as read, so the site can tell a chunk damaged on the way from one sent as it is (connection/model-chunk.ts)
      const sha256 = createHash('sha256').update(data).digest('hex');
      return { path: f.path, offset: req.offset, totalBytes: f.bytes, data, sha256 };
    });

    // a request too large for one frame, in parts; the last part is answered like the event it carries
    listen('frame:part', async (raw) => {
      let done;
      try {
        if (!socket.data.siteId)
          throw new FedloraError('UNAUTHORIZED', 'authenticate first (auth:challenge, then auth:prove)');
        done = assembly.add(parseClientRequest('frame:part', raw));
      } catch (err) {
        assembly.abandon();
        reject('frame:part', ackError(err).code, describeError(err));
        return ackError(err);
      }
      return done.complete ? answer(done.event, done.payload) : ackOk({ received: done.received });
    });

    // events nobody listens for; the name can be any JSON value (a number, an array), never assume a string
    socket.onAny((event: unknown, ...args: unknown[]) => {
      try {
        if (typeof event === 'string' && Object.hasOwn(CLIENT_EVENTS, event)) return;
        // an EVENT with an ack id and no data at all ('2<id>'): socket.io hands over the ack in the name's place
        const name = typeof event === 'string' ? event.slice(0, 64) : typeof event === 'function' ? '(no name)' : `(${typeof event} name)`;
        reject(name, 'BAD_MESSAGE', 'unknown event');
        const ack = typeof event === 'function' ? event : args.at(-1);
        if (typeof ack === 'function') ack(ackError(new FedloraError('BAD_MESSAGE', 'unknown event')));
      } catch (err) {
        internal('onAny', err);
      }
    });

    socket.on('disconnect', () => {
      try {
        assembly.abandon();
        const siteId = socket.data.siteId;
        if (siteId && d.presence.left(siteId, socket)) {
          d.log('site.disconnected', { site: siteId });
          d.federation.siteLeft(siteId);
          if (d.cluster && !d.cluster.isLeader()) d.cluster.link.siteLeft(siteId);
        }
      } catch (err) {
        internal('disconnect', err);
      }
    });
  });
}

export type { SiteSocket };
