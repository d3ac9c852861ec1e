// One round's inbox, the intake behind the trust boundary of upload.ts: which sites are sampled, pending,
// delivered or failed; each accepted update handed to the strategy's aggregator under the coordinator's weight cap
// and norm bound (update-bounds.ts); rejections and clips recorded; progress signalled to the collect stage.
// InboxRouter hands what a site sends to the running round's inbox and tells late senders the round closed.

import { FedloraError, describeError } from '@fedlora/shared/errors.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import type { ClientRequest } from '@fedlora/shared/protocol/events.ts';
import type { RoundStage } from '@fedlora/shared/protocol/messages.ts';
import type { AggregateOutcome, RoundAggregator } from '@fedlora/shared/aggregation/strategy.ts';
import type { SecAggResult } from '@fedlora/shared/secagg/server.ts';
import { withFields, type Logger } from '../log';
import type { RoundFailureRecord, RoundRecord } from '../registry/types';
import { Pulse } from './pulse';
import type { DeltaNormPolicy } from './settings';
import type { AvailableSite } from './types';
import { NonceLog, openUpload, type UploadRequest } from './upload';
import type { SecureRound } from './secure-round';

/** An upload as the console's live feed and the activity tracker see it. */
export interface UploadEvent {
  round: number;
  siteId: string;
  accepted: boolean;
  code?: string;
}

/** What every inbox shares: where rejections and acceptances are reported. */
interface InboxOutlets {
  log: Logger;
  onUpload: (e: UploadEvent) => void;
}

/** One round's intake policy, fixed when the round starts. */
export interface InboxOptions {
  round: number;
  roundId: string;
  /** this round's X25519 secret key: sites seal their updates to its public half */
  roundSecretKey: Uint8Array;
  /** the adapter the sites train from: a delta must have exactly its names and shapes */
  layout: NamedTensors;
  /** null: 2 × the adapter in fp32 + 64 KiB */
  maxUploadBytes: number | null;
  /** the most an honest site's optimizer can move the adapter this round (update-bounds.ts) */
  deltaNormCeiling: number;
  /** the L2 bound on an update's delta this round, and what happens to one over it */
  deltaNormBound: number;
  deltaNormPolicy: DeltaNormPolicy;
  /** the strategy's streaming aggregator: every accepted update goes straight in */
  aggregator: RoundAggregator;
  /** the round's current stage, for refusals and log lines */
  stage: () => RoundStage;
  /** a secure round: it takes masked uploads ('secagg:upload') and refuses sealed ones; null: plaintext */
  secure: SecureRound | null;
}

/** The part of a round record the inbox knows. */
export type InboxReport = Pick<
  RoundRecord,
  | 'sampled'
  | 'participants'
  | 'updates'
  | 'failures'
  | 'rejections'
  | 'uploadedBytes'
  | 'bytesPerUpload'
  | 'weightCap'
  | 'deltaNormBound'
  | 'clipped'
  | 'examples'
  | 'newExamples'
>;

function logRejection(o: InboxOutlets, round: number | undefined, siteId: string, err: unknown): string {
  const code = err instanceof FedloraError ? err.code : 'INTERNAL';
  o.log('upload.rejected', { round, site: siteId, code, reason: describeError(err) });
  o.onUpload({ round: round ?? 0, siteId, accepted: false, code });
  return code;
}

/**
 * One round's intake. The stages tell it whom they sampled, who accepted configure and who failed; sites' uploads,
 * failure reports and disconnects arrive here from the edge; `progress` fires on every delivery, failure and leave.
 * Updates are taken only between open() (train) and close() (the end of collect).
 */
export class RoundInbox {
  readonly round: number;
  readonly roundId: string;
  /** the largest FedAvg weight an update carries this round (from the sample stage; update-bounds.ts) */
  private weightCap = Infinity;
  private phase: 'waiting' | 'open' | 'closed' = 'waiting';
  private readonly sampledSites = new Set<string>();
  private readonly declaredExamples = new Map<string, number>();
  /** sites that accepted configure and got the adapter */
  private readonly participantSites = new Set<string>();
  /** sampled sites that may still deliver */
  private readonly pendingSites = new Set<string>();
  private readonly deliveredSites = new Set<string>();
  /**
   * the message nonces of this round's uploads. Per round, not per coordinator: an upload of another round is refused
   * by its round id before its nonce matters (each round has its own id and key). Why: a nonce decoded by msgpackr is
   * a slice of the upload's header and keeps that string alive, so a coordinator-wide log of 100,000 nonces held
   * ~30 MB of headers (issue 18 soak, scripts/heap-diff.ts)
   */
  private readonly nonces = new NonceLog();
  private readonly failures = new Map<string, string>();
  private readonly rejections: RoundFailureRecord[] = [];
  private uploadedBytes = 0;
  /** Σ examples the accepted plaintext updates trained on (as the sites counted them, after the declared-count cap) */
  private examples = 0;
  /** Σ of those the sites had not trained on before (uploads that report it) */
  private newExamples = 0;
  private readonly bytesPerUpload: number[] = [];
  /** L2 norms of the accepted deltas as sent (at most the ceiling), for the adaptive bound of later rounds */
  private readonly norms: number[] = [];
  /** accepted updates that were scaled down to the bound, with their norm as sent */
  private readonly clipped: { siteId: string; norm: number }[] = [];
  /** per-site rejecters of in-flight sends, called when the site disconnects */
  private readonly leaving = new Map<string, (err: Error) => void>();
  /** fires when a site delivers, fails or leaves */
  readonly progress = new Pulse();

  private readonly maxUploadBytes: number;

  constructor(
    private readonly o: InboxOptions,
    private readonly out: InboxOutlets,
  ) {
    this.round = o.round;
    this.roundId = o.roundId;
    const fp32Bytes = Object.values(o.layout).reduce((n, t) => n + t.data.length * 4, 0);
    this.maxUploadBytes = o.maxUploadBytes ?? 2 * fp32Bytes + 64 * 1024;
  }

  get sampled(): ReadonlySet<string> {
    return this.sampledSites;
  }
  get participants(): ReadonlySet<string> {
    return this.participantSites;
  }
  get pending(): ReadonlySet<string> {
    return this.pendingSites;
  }
  get delivered(): ReadonlySet<string> {
    return this.deliveredSites;
  }
  /** the largest weight one update carries this round (Infinity: no cap) */
  get siteWeightCap(): number {
    return this.weightCap;
  }
  /** the norms of this round's accepted updates, for NormHistory */
  get acceptedNorms(): readonly number[] {
    return this.norms;
  }

  /** The sample stage's picks, with the example counts they declared when ready and the round's weight cap. */
  admit(sites: readonly AvailableSite[], weightCap: number): void {
    for (const a of sites) {
      this.sampledSites.add(a.siteId);
      this.pendingSites.add(a.siteId);
      this.declaredExamples.set(a.siteId, a.numExamples);
    }
    this.weightCap = weightCap;
  }

  /** A sampled site accepted configure. */
  joined(siteId: string): void {
    this.participantSites.add(siteId);
  }

  /** A pending site will not deliver (declined, timed out, reported a failure, left); a no-op for any other. */
  fail(siteId: string, code: string): void {
    if (!this.pendingSites.has(siteId)) return;
    this.pendingSites.delete(siteId);
    this.participantSites.delete(siteId);
    this.failures.set(siteId, code);
    this.progress.fire();
  }

  /** the failures so far, for the strategy's aggregate and the round record */
  failureList(): RoundFailureRecord[] {
    return [...this.failures].map(([siteId, code]) => ({ siteId, code }));
  }

  /**
   * The strategy's new adapter from every accepted update and the failures, or null to keep the old one. A secure
   * round hands over the unmasked sum instead: the strategy never sees one site's update.
   */
  aggregate(secureSum: SecAggResult | null = null): AggregateOutcome | null {
    const agg = this.o.aggregator;
    if (secureSum) {
      if (!agg.acceptSum) throw new FedloraError('CONFIG_INVALID', 'the strategy cannot aggregate a secure sum');
      agg.acceptSum(secureSum.sum, secureSum.totalWeight, secureSum.count);
    }
    return agg.finish(this.failureList());
  }

  open(): void {
    if (this.phase === 'waiting') this.phase = 'open';
  }

  close(): void {
    this.phase = 'closed';
  }

  /** A send to one site that fails as soon as the site disconnects, not only at the ack timeout. */
  untilLeft<T>(siteId: string, p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.leaving.set(siteId, reject);
      p.then(resolve, reject).finally(() => this.leaving.delete(siteId));
    });
  }

  /** Validates and aggregates one upload; throws a peer-visible FedloraError on rejection (the round goes on). */
  upload(siteId: string, siteSigningKey: Uint8Array, req: UploadRequest): void {
    try {
      this.accept(siteId, siteSigningKey, req);
    } catch (err) {
      this.rejections.push({ siteId, code: logRejection(this.out, this.round, siteId, err) });
      throw err;
    }
  }

  /** Refuses an update unless the round takes updates now (between train and the end of collect). */
  private checkOpen(): void {
    if (this.phase === 'open') return;
    const stage = this.o.stage();
    throw new FedloraError(
      stage === 'configure' || stage === 'setup' || stage === 'share-keys' ? 'WRONG_ROUND' : 'ROUND_CLOSED',
      `round is in stage ${stage}`,
    );
  }

  /** A secure round's masked upload: kept for the sum, never decoded; the site counts as delivered. */
  maskedUpload(siteId: string, req: ClientRequest<'secagg:upload'>): void {
    try {
      const secure = this.o.secure;
      if (!secure)
        throw new FedloraError('BAD_MESSAGE', 'this round is not under secure aggregation: send update:upload');
      this.checkOpen();
      if (!this.pendingSites.has(siteId))
        throw new FedloraError(
          this.deliveredSites.has(siteId) ? 'REPLAY' : 'NOT_SAMPLED',
          this.deliveredSites.has(siteId) ? 'this site already uploaded in this round' : 'this site is not in this round',
        );
      const bytes = secure.receiveUpload(siteId, req);
      this.deliveredSites.add(siteId);
      this.pendingSites.delete(siteId);
      this.uploadedBytes += bytes;
      this.bytesPerUpload.push(bytes);
      this.progress.fire();
      this.out.log('upload.accepted', { round: this.round, site: siteId, bytes, encoding: 'secagg' });
      this.out.onUpload({ round: this.round, siteId, accepted: true });
    } catch (err) {
      this.rejections.push({ siteId, code: logRejection(this.out, this.round, siteId, err) });
      throw err;
    }
  }

  private accept(siteId: string, siteSigningKey: Uint8Array, req: UploadRequest): void {
    const o = this.o;
    if (o.secure)
      throw new FedloraError('BAD_MESSAGE', 'this round runs under secure aggregation: send the masked update (secagg:upload)');
    this.checkOpen();
    const opened = openUpload(req, {
      roundId: this.roundId,
      siteId,
      siteSigningKey,
      roundSecretKey: o.roundSecretKey,
      sampled: this.sampledSites,
      delivered: this.deliveredSites,
      nonces: this.nonces,
      layout: o.layout,
      maxUploadBytes: this.maxUploadBytes,
      maxDeltaNorm: o.deltaNormBound,
      deltaNormPolicy: o.deltaNormPolicy,
      declaredExamples: this.declaredExamples.get(siteId) ?? 0,
    });
    // the coordinator's weight policy, whatever the strategy: a site cannot make itself the whole average
    const claimed = opened.result.numExamples;
    const weight = Math.min(claimed, this.weightCap);
    try {
      o.aggregator.accumulate({ ...opened.result, numExamples: weight });
    } catch (err) {
      throw new FedloraError('DELTA_INVALID', describeError(err), { cause: err });
    }
    this.deliveredSites.add(siteId);
    this.pendingSites.delete(siteId);
    this.failures.delete(siteId);
    this.uploadedBytes += opened.bytes;
    this.bytesPerUpload.push(opened.bytes);
    this.examples += claimed;
    if (opened.newExamples !== null) this.newExamples += opened.newExamples;
    // as sent, so that honest norms can raise a bound that became too tight; at most the ceiling, so that no
    // upload raises it past what an honest optimizer can do
    this.norms.push(Math.min(opened.clippedFrom ?? opened.norm, o.deltaNormCeiling));
    if (opened.clippedFrom !== null) this.clipped.push({ siteId, norm: opened.clippedFrom });
    this.progress.fire();
    const log = this.out.log;
    if (opened.clippedFrom !== null)
      log('upload.clipped', {
        round: this.round,
        site: siteId,
        norm: opened.clippedFrom,
        bound: o.deltaNormBound,
      });
    log('upload.accepted', {
      round: this.round,
      site: siteId,
      bytes: opened.bytes,
      encoding: opened.encoding,
      examples: weight,
      claimedExamples: weight < claimed ? claimed : undefined,
      newExamples: opened.newExamples ?? undefined,
      norm: opened.norm,
    });
    this.out.onUpload({ round: this.round, siteId, accepted: true });
  }

  /** A site reports it cannot finish the round: it is not waited for. */
  reportFailure(siteId: string, code: string): void {
    if (!this.sampledSites.has(siteId))
      throw new FedloraError('NOT_SAMPLED', 'this site was not sampled for this round');
    this.out.log('site.failed', { round: this.round, site: siteId, code });
    this.fail(siteId, code);
  }

  /** A site's connection closed: it leaves the round (never blocking it), and its in-flight send fails now. */
  left(siteId: string): void {
    if (!this.pendingSites.has(siteId)) return;
    this.out.log('site.dropped', { round: this.round, site: siteId, stage: this.o.stage() });
    this.fail(siteId, 'DISCONNECTED');
    this.leaving.get(siteId)?.(new FedloraError('INTERNAL', 'site disconnected'));
  }

  report(): InboxReport {
    return {
      sampled: this.sampledSites.size,
      participants: this.participantSites.size,
      updates: this.deliveredSites.size,
      failures: this.failureList(),
      rejections: this.rejections,
      uploadedBytes: this.uploadedBytes,
      bytesPerUpload: this.bytesPerUpload,
      weightCap: Number.isFinite(this.weightCap) ? this.weightCap : null,
      deltaNormBound: this.o.deltaNormBound,
      clipped: this.clipped,
      examples: this.examples,
      newExamples: this.newExamples,
    };
  }
}

/** The running round's inbox for the edge, and the ids of closed rounds (a late upload is told ROUND_CLOSED). */
export class InboxRouter {
  private current: RoundInbox | null = null;
  private readonly closedRounds = new Set<string>();
  private readonly out: InboxOutlets;

  constructor(log: Logger, onUpload: (e: UploadEvent) => void) {
    this.out = { log, onUpload };
  }

  /** The inbox of a round that starts now; it takes what sites send until close(). */
  open(o: InboxOptions): RoundInbox {
    // every line of this round's intake names the round (roundId) as well as its number
    this.current = new RoundInbox(o, { ...this.out, log: withFields(this.out.log, { roundId: o.roundId }) });
    return this.current;
  }

  close(inbox: RoundInbox): void {
    inbox.close();
    if (this.current === inbox) this.current = null;
    this.closedRounds.add(inbox.roundId);
  }

  private route(roundId: string): RoundInbox {
    const inbox = this.current;
    if (inbox && inbox.roundId === roundId) return inbox;
    // a late or stale sender is told where the federation is now, so it can tell a lost round from a wrong one
    const now = inbox ? `the current round is ${inbox.round} (${inbox.roundId})` : 'no round is running now';
    if (this.closedRounds.has(roundId)) throw new FedloraError('ROUND_CLOSED', `round ${roundId} is closed; ${now}`);
    throw new FedloraError('WRONG_ROUND', `round ${roundId} is not running; ${now}`);
  }

  /** The inbox of an upload's round; an unknown or closed round is refused (and logged) without touching any round. */
  private routeUpload(siteId: string, roundId: string): RoundInbox {
    try {
      return this.route(roundId);
    } catch (err) {
      logRejection(this.out, undefined, siteId, err);
      throw err;
    }
  }

  /** An upload for the round it names. */
  upload(siteId: string, siteSigningKey: Uint8Array, req: UploadRequest): void {
    this.routeUpload(siteId, req.roundId).upload(siteId, siteSigningKey, req);
  }

  reportFailure(siteId: string, req: ClientRequest<'round:fail'>): void {
    this.route(req.roundId).reportFailure(siteId, req.code);
  }

  /** A masked upload for the secure round it names. */
  maskedUpload(siteId: string, req: ClientRequest<'secagg:upload'>): void {
    this.routeUpload(siteId, req.roundId).maskedUpload(siteId, req);
  }

  siteLeft(siteId: string): void {
    this.current?.left(siteId);
  }
}
