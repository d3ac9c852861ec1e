// The socket.io side of RoundTransport: which authenticated sites are connected and ready, and sends to one site
// with an ack timeout (every ack is validated with parseServerReply before the loop sees it).

import type { Namespace, Server, Socket } from 'socket.io';
import type { ClientToServerEvents, ServerMessage, ServerToClientEvents } from '@fedlora/shared/protocol/events.ts';
import { pack, unpack } from '@fedlora/shared/protocol/packed.ts';
import {
  SecAggSetupReplySchema,
  SecAggShareKeysReplySchema,
  SecAggSurvivorsReplySchema,
  SecAggUnmaskReplySchema,
  type SecAggShareKeysMessage,
  type SecAggSurvivorsMessage,
  type SecAggUnmaskMessage,
  type EvaluateReply,
} from '@fedlora/shared/protocol/messages.ts';
import type { z } from 'zod';
import { parseServerReply } from '@fedlora/shared/protocol/events.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { isSignedServerEvent, signServerMessage, type SignFn } from '@fedlora/shared/protocol/signed-messages.ts';
import type { Awaitable } from '../registry/types';
import type { ClusterLink, ReadySite } from '../cluster/cluster-link';
import type {
  AvailableSite,
  ConfigureMessage,
  EvaluateMessage,
  RoundClosedMessage,
  RoundTransport,
  SecAggAsk,
  TrainMessage,
  VersionPublishedMessage,
} from '../rounds/types';

export interface SocketData {
  siteId?: string;
  challenge?: { siteId: string; challenge: Uint8Array };
}
export type SiteServer = Server<
  ClientToServerEvents,
  ServerToClientEvents,
  Record<string, never>,
  SocketData
>;
/** one project's sites (projects/project.ts): the server's '/' namespace, or '/projects/<id>' */
export type SiteNamespace = Namespace<
  ClientToServerEvents,
  ServerToClientEvents,
  Record<string, never>,
  SocketData
>;
export type SiteSocket = Socket<
  ClientToServerEvents,
  ServerToClientEvents,
  Record<string, never>,
  SocketData
>;

export interface SiteStatus {
  siteId: string;
  online: boolean;
  ready: boolean;
  numExamples?: number;
  /** of numExamples, those the site has not trained on yet (continual re-training) */
  newExamples?: number;
  backend?: string;
}

/** socket.io's typed emitWithAck does not accept a generic event name; this is its untyped shape. */
interface AckEmitter {
  timeout(ms: number): { emitWithAck(event: string, payload: unknown): Promise<unknown> };
}

/** every authenticated site socket is in its site's room: in a cluster the room reaches it on any process */
export const siteRoom = (siteId: string) => `site:${siteId}`;
const ALL_SITES = 'sites';

export class Presence implements RoundTransport {
  private readonly bySite = new Map<
    string,
    { socket: SiteSocket; ready: (AvailableSite & { backend: string }) | null }
  >();
  private listeners: (() => void)[] = [];
  /** several processes (cluster/cluster-link.ts): sends go through rooms, and the other processes' ready sites */
  private cluster: ClusterLink | null = null;
  private remote: ReadySite[] = [];

  constructor(
    private readonly io: SiteNamespace,
    private readonly activeSites: () => Awaitable<number>,
    private readonly onStatus: (s: SiteStatus) => void,
    /** enrolled sites' Ed25519 keys (SiteStore.signingKey): secure rounds check the sites' signatures with them */
    private readonly signingKey: (siteId: string) => Awaitable<Uint8Array | null> = () => null,
  ) {}

  /** Joins the processes of a cluster: from now on sends reach sites on any of them. */
  useCluster(link: ClusterLink): void {
    this.cluster = link;
  }

  /** the coordinator's signature for the round messages that steer training (protocol/signed-messages.ts) */
  private sign: SignFn | null = null;

  /** Signs every round message and version:published from now on (SIGNED_SERVER_EVENTS); sites refuse them unsigned. */
  useSigner(sign: SignFn): void {
    this.sign = sign;
  }

  /** `msg` signed when `event` is one sites accept only signed: every send goes through here (ask, published) */
  private signed(event: string, msg: unknown): unknown {
    return this.sign && isSignedServerEvent(event) && typeof msg === 'object' && msg !== null
      ? signServerMessage(event, msg, this.sign)
      : msg;
  }

  /** the ready sites connected to this process */
  localReady(): ReadySite[] {
    return [...this.bySite.values()].flatMap((e) => (e.ready ? [{ ...e.ready, encodings: [...e.ready.encodings] }] : []));
  }

  /** another process's sites changed: the round loop waiting for sites looks again */
  remoteChanged(): void {
    for (const l of this.listeners) l();
  }

  private changed(siteId: string): void {
    const e = this.bySite.get(siteId);
    this.onStatus({
      siteId,
      online: !!e,
      ready: !!e?.ready,
      numExamples: e?.ready?.numExamples,
      newExamples: e?.ready?.newExamples,
      backend: e?.ready?.backend,
    });
    for (const l of this.listeners) l();
    this.cluster?.availabilityChanged();
  }

  /** A socket proved it is `siteId`; an older connection of the same site is closed (one session per site). */
  authenticated(siteId: string, socket: SiteSocket): void {
    const old = this.bySite.get(siteId);
    this.bySite.set(siteId, { socket, ready: null });
    if (old && old.socket.id !== socket.id) old.socket.disconnect(true);
    // an older connection on another process of the cluster is closed too
    if (this.cluster) this.io.in(siteRoom(siteId)).except(socket.id).disconnectSockets(true);
    void socket.join([siteRoom(siteId), ALL_SITES]);
    this.changed(siteId);
  }

  ready(
    siteId: string,
    info: { numExamples: number; newExamples?: number; encodings: AvailableSite['encodings']; backend: string },
  ): void {
    const e = this.bySite.get(siteId);
    if (!e) return;
    e.ready = {
      siteId,
      numExamples: info.numExamples,
      ...(info.newExamples !== undefined ? { newExamples: Math.min(info.newExamples, info.numExamples) } : {}),
      encodings: info.encodings,
      backend: info.backend,
    };
    this.changed(siteId);
  }

  /** A ready site's data changed ('site:data'): its counts, for sampling and the data trigger. Ignored before ready. */
  dataChanged(siteId: string, counts: { numExamples: number; newExamples: number }): boolean {
    const e = this.bySite.get(siteId);
    if (!e?.ready) return false;
    e.ready = { ...e.ready, numExamples: counts.numExamples, newExamples: counts.newExamples };
    this.changed(siteId);
    return true;
  }

  /** true if `socket` was the site's current connection (an older, replaced one does not count) */
  left(siteId: string, socket: SiteSocket): boolean {
    if (this.bySite.get(siteId)?.socket.id !== socket.id) return false;
    this.bySite.delete(siteId);
    this.changed(siteId);
    return true;
  }

  isOnline(siteId: string): boolean {
    return this.bySite.has(siteId);
  }

  status(siteId: string): SiteStatus {
    const e = this.bySite.get(siteId);
    return {
      siteId,
      online: !!e,
      ready: !!e?.ready,
      numExamples: e?.ready?.numExamples,
      newExamples: e?.ready?.newExamples,
      backend: e?.ready?.backend,
    };
  }

  disconnect(siteId: string): void {
    this.bySite.get(siteId)?.socket.disconnect(true);
  }

  available(): AvailableSite[] {
    const local = this.localReady();
    const here = new Set(local.map((s) => s.siteId));
    return [...local, ...this.remote.filter((s) => !here.has(s.siteId))].map((s) => ({
      siteId: s.siteId,
      numExamples: s.numExamples,
      ...(s.newExamples !== undefined ? { newExamples: s.newExamples } : {}),
      encodings: [...s.encodings],
    }));
  }

  async enrolledCount(): Promise<number> {
    // the sample stage asks this before every look at available(): in a cluster, the moment to ask the others
    if (this.cluster) this.remote = await this.cluster.remoteReady();
    return this.activeSites();
  }

  onAvailabilityChange(listener: () => void): () => void {
    this.listeners.push(listener);
    return () => (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  private socketOf(siteId: string): SiteSocket {
    const e = this.bySite.get(siteId);
    if (!e) throw new FedloraError('UNKNOWN_SITE', `site ${siteId} is not connected`);
    return e.socket;
  }

  private async ask(
    siteId: string,
    event: 'round:configure' | 'round:train' | 'round:evaluate' | SecAggAsk,
    unsigned: unknown,
    timeoutMs: number,
  ): Promise<unknown> {
    const msg = this.signed(event, unsigned);
    if (this.cluster) return this.askAnywhere(siteId, event, msg, timeoutMs);
    const socket = this.socketOf(siteId) as unknown as AckEmitter;
    try {
      return await socket.timeout(timeoutMs).emitWithAck(event, msg);
    } catch (err) {
      // socket.io's emitWithAck rejects only when the ack timer runs out; the round records the site as TIMEOUT
      throw new FedloraError('TIMEOUT', `${event}: no ack from ${siteId} within ${timeoutMs} ms`, {
        cause: err,
      });
    }
  }

  /** A send with ack to the site's room, on whichever process its socket is (cluster). */
  private async askAnywhere(siteId: string, event: string, msg: unknown, timeoutMs: number): Promise<unknown> {
    let replies: unknown[];
    try {
      const room = this.io.to(siteRoom(siteId)).timeout(timeoutMs) as unknown as {
        emitWithAck(event: string, payload: unknown): Promise<unknown[]>;
      };
      replies = await room.emitWithAck(event, msg);
    } catch (err) {
      throw new FedloraError('TIMEOUT', `${event}: no ack from ${siteId} within ${timeoutMs} ms`, { cause: err });
    }
    if (!Array.isArray(replies) || replies.length === 0)
      throw new FedloraError('UNKNOWN_SITE', `site ${siteId} is not connected to any coordinator`);
    return replies[0];
  }

  async configure(siteId: string, msg: ConfigureMessage, timeoutMs: number): Promise<boolean> {
    return parseServerReply('round:configure', await this.ask(siteId, 'round:configure', msg, timeoutMs))
      .accepted;
  }

  async train(siteId: string, msg: TrainMessage, timeoutMs: number): Promise<void> {
    parseServerReply('round:train', await this.ask(siteId, 'round:train', msg, timeoutMs));
  }

  /** federated evaluation: the site's aggregates or its decline, schema-checked (counts are checked by the evaluator) */
  async evaluate(siteId: string, msg: EvaluateMessage, timeoutMs: number): Promise<EvaluateReply> {
    return parseServerReply('round:evaluate', await this.ask(siteId, 'round:evaluate', msg, timeoutMs));
  }

  identityKey(siteId: string): Awaitable<Uint8Array | null> {
    return this.signingKey(siteId);
  }

  /** One SecAgg exchange: the body packed when it carries many binary fields, the packed reply opened and checked. */
  private async secagg<S extends z.ZodType>(
    event: SecAggAsk,
    siteId: string,
    msg: unknown,
    timeoutMs: number,
    replySchema: S,
  ): Promise<z.output<S>> {
    const reply = parseServerReply(event, await this.ask(siteId, event, msg, timeoutMs));
    return unpack(replySchema, reply, `${event} reply`);
  }

  secaggSetup(siteId: string, msg: ServerMessage<'secagg:setup'>, timeoutMs: number) {
    return this.secagg('secagg:setup', siteId, msg, timeoutMs, SecAggSetupReplySchema);
  }

  secaggShareKeys(siteId: string, msg: SecAggShareKeysMessage, timeoutMs: number) {
    return this.secagg('secagg:share-keys', siteId, pack(msg), timeoutMs, SecAggShareKeysReplySchema);
  }

  secaggSurvivors(siteId: string, msg: SecAggSurvivorsMessage, timeoutMs: number) {
    return this.secagg('secagg:survivors', siteId, pack(msg), timeoutMs, SecAggSurvivorsReplySchema);
  }

  secaggUnmask(siteId: string, msg: SecAggUnmaskMessage, timeoutMs: number) {
    return this.secagg('secagg:unmask', siteId, pack(msg), timeoutMs, SecAggUnmaskReplySchema);
  }

  closed(siteIds: readonly string[], unsigned: RoundClosedMessage): void {
    const msg = this.signed('round:closed', unsigned) as RoundClosedMessage;
    if (this.cluster) {
      if (siteIds.length) this.io.to(siteIds.map(siteRoom)).emit('round:closed', msg);
      return;
    }
    for (const id of siteIds) this.bySite.get(id)?.socket.emit('round:closed', msg);
  }

  published(unsigned: VersionPublishedMessage): void {
    const msg = this.signed('version:published', unsigned) as VersionPublishedMessage;
    if (this.cluster) {
      this.io.to(ALL_SITES).emit('version:published', msg);
      return;
    }
    for (const e of this.bySite.values()) e.socket.emit('version:published', msg);
  }
}
