// Several coordinator processes serving one federation (issue 18): socket.io's Redis adapter joins their socket.io
// servers, so a site may be connected to any process and a room (`site:<id>`) reaches it wherever it is. Only the
// leader (leader-lease.ts) runs rounds; this link carries what the leader needs from the other processes:
// - the sites that are ready on each process (a snapshot on request; a nudge whenever one changes),
// - what a site sends during a round (uploads, failure reports) when its socket is on another process: forwarded to
//   the leader and answered with the leader's ack,
// - a site's socket closing on another process (it leaves the running round).

import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { FedloraError, describeError } from '@fedlora/shared/errors.ts';
import { ackError, type Ack } from '@fedlora/shared/protocol/events.ts';
import { pack, unpack } from '@fedlora/shared/protocol/packed.ts';
import { MAX_PARTED_BYTES } from '@fedlora/shared/protocol/frame-parts.ts';
import { z } from 'zod';
import type { Logger } from '../log';
import type { AvailableSite } from '../rounds/types';
import type { SiteServer } from '../socket/presence';

/** what a site sends during a round, handled by the leader's federation */
export type ForwardedEvent = 'update:upload' | 'secagg:upload' | 'round:fail';

export interface ForwardedRequest {
  event: ForwardedEvent;
  siteId: string;
  payload: unknown;
}

export type ReadySite = AvailableSite & { backend: string };

/** a forwarded request as it crosses Redis: the request packed, in base64 (binary does not survive the adapter's
 * server-side events) */
interface WireRequest {
  event: ForwardedEvent;
  siteId: string;
  packed: string;
}

/** what this process answers for the others */
export interface ClusterHandlers {
  /** the ready sites connected to this process */
  localReady(): ReadySite[];
  /** true while this process holds the lease */
  isLeader(): boolean;
  /** runs a forwarded site request on this (leader) process; throws a peer-visible FedloraError on refusal */
  handle(req: ForwardedRequest): Promise<void>;
  siteLeft(siteId: string): void;
  /** availability changed somewhere */
  availabilityChanged(): void;
}

type Callback = (r: unknown) => void;
type ServerSide = {
  serverSideEmit(ev: string, ...args: unknown[]): boolean;
  /** bounded by the adapter's requestsTimeout (connect's requestTimeoutMs) */
  serverSideEmitWithAck(ev: string, ...args: unknown[]): Promise<unknown[]>;
  on(ev: string, fn: (...args: never[]) => void): void;
};

export class ClusterLink {
  private handlers: ClusterHandlers | null = null;
  private readonly ns: ServerSide;

  private constructor(
    io: SiteServer,
    private readonly clients: { close(): Promise<unknown> }[],
    private readonly log: Logger,
  ) {
    this.ns = io as unknown as ServerSide;
    this.ns.on('fedlora:ready-sites', ((cb: Callback) => cb(this.handlers?.localReady() ?? [])) as never);
    this.ns.on('fedlora:availability', (() => this.handlers?.availabilityChanged()) as never);
    this.ns.on('fedlora:site-left', ((siteId: string) => {
      if (this.handlers?.isLeader()) this.handlers.siteLeft(siteId);
    }) as never);
    this.ns.on('fedlora:site-request', ((wire: WireRequest, cb: Callback) => {
      const h = this.handlers;
      if (!h?.isLeader()) return cb({ leader: false });
      let req: ForwardedRequest;
      try {
        req = { event: wire.event, siteId: wire.siteId, payload: unpack(z.unknown(), { packed: Buffer.from(String(wire.packed), 'base64') }, `forwarded ${wire.event}`, MAX_PARTED_BYTES) };
      } catch (err) {
        return cb({ leader: true, ack: this.refused(wire, err) });
      }
      h.handle(req).then(
        () => cb({ leader: true, ack: { ok: true, data: {} } }),
        (err: unknown) => cb({ leader: true, ack: this.refused(wire, err) }),
      );
    }) as never);
  }

  /** The answer to a refused forwarded request, logged here: the site's own process only relays the answer, so the
   * leader, which decided, is where an operator looks for why (the same fields as a local rejection's line). */
  private refused(wire: WireRequest, err: unknown): Ack<unknown> {
    const ack = ackError(err);
    // an INTERNAL answer hides the cause from the peer, not from the operator
    this.log('cluster.forwarded_refused', { event: String(wire.event), siteId: String(wire.siteId), code: ack.code, error: ack.code === 'INTERNAL' ? describeError(err) : ack.message });
    return ack;
  }

  /** Puts socket.io on the Redis adapter at `redisUrl` (the URL never reaches a log: it may hold a password). */
  static async connect(io: SiteServer, redisUrl: string, log: Logger, requestTimeoutMs = 10_000): Promise<ClusterLink> {
    const pub = createClient({ url: redisUrl });
    const sub = pub.duplicate();
    for (const c of [pub, sub]) c.on('error', (err: unknown) => log('cluster.redis_error', { error: describeError(err) }));
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub, { key: 'fedlora', requestsTimeout: requestTimeoutMs }));
    return new ClusterLink(io, [pub, sub], log);
  }

  attach(h: ClusterHandlers): void {
    this.handlers = h;
  }

  /** The ready sites of every other process (a process that does not answer in time counts as having none). */
  async remoteReady(): Promise<ReadySite[]> {
    try {
      const answers = await this.ns.serverSideEmitWithAck('fedlora:ready-sites');
      return answers.flatMap((a) => (Array.isArray(a) ? (a as ReadySite[]) : []));
    } catch (err) {
      this.log('cluster.ready_sites_partial', { error: describeError(err) });
      return [];
    }
  }

  availabilityChanged(): void {
    this.ns.serverSideEmit('fedlora:availability');
  }

  siteLeft(siteId: string): void {
    this.ns.serverSideEmit('fedlora:site-left', siteId);
  }

  /** A site's round request, run by the leader wherever it is; resolves or throws with the leader's answer. */
  async forward(req: ForwardedRequest): Promise<void> {
    let answers: unknown[];
    try {
      const packed = Buffer.from(pack(req.payload, MAX_PARTED_BYTES).packed).toString('base64');
      const wire: WireRequest = { event: req.event, siteId: req.siteId, packed };
      answers = await this.ns.serverSideEmitWithAck('fedlora:site-request', wire);
    } catch (err) {
      throw new FedloraError('BUSY', `no coordinator leads the federation right now (${describeError(err)}); retry`, { cause: err });
    }
    const fromLeader = answers.find((a) => (a as { leader?: boolean })?.leader === true) as { ack: Ack<unknown> } | undefined;
    if (!fromLeader) throw new FedloraError('BUSY', 'no coordinator leads the federation right now; retry');
    if (!fromLeader.ack.ok) throw new FedloraError(fromLeader.ack.code, fromLeader.ack.message);
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close().catch(() => {})));
  }
}
