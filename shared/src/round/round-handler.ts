// A site's round protocol, the one implementation behind the Node agent (client-node/src/agent/site-agent.ts) and
// the browser site (client-web/src/site-client.ts): answer 'round:configure' (accept or decline), check
// 'round:train', then train → seal → upload, or report 'round:fail'; take note of 'round:closed' and
// 'version:published'. What differs between the clients sits behind small ports: the connection (RoundTransport,
// session.ts roundTransport), the local model and its encoded data (RoundModel, RoundData: localRoundModel and
// localRoundData over a LocalModel), what the site shows (report) and the clock. New site-side stages of a round
// (secure aggregation's) belong here, so that a site's round protocol stays in one place.

import { chooseTrainingShape, type DeviceBudget } from '../training/training-shape';
import { FedloraError } from '../errors';
import type { KeyPair } from '../crypto/keys';
import type { GlobalAdapter } from '../protocol/codec';
import {
  ackError,
  ackOk,
  parseServerMessage,
  withoutSignature,
  type Ack,
  type ClientReply,
  type ClientRequest,
  type ServerMessage,
  type ServerReply,
} from '../protocol/events';
import type { NamedTensors } from '../tensor';
import type { EncodedExample } from '../training/batches';
import { runLocalRound, type LocalRoundResult, type LocalTrainConfig } from '../training/local-round';
import type { StepProgress } from '../training/trainer';
import type { LocalModel } from '../model/local-model';
import { downloadAdapter } from '../connection/adapter-download';
import { siteEvaluation, type SiteEvaluation } from '../evaluation/federated-evaluation';
import { evaluateClassifier } from '../training/trainer';
import {
  acceptTrainMessage,
  checkAdapterShapes,
  openAdapter,
  buildUpload,
  failureFor,
  localRoundSeed,
  localTrainConfig,
  roundMaxLength,
  type ConfiguredRound,
} from './participant';
import type { EncodedDataCache } from '../data/site-data';
import type { MaskedUploadRequest } from '../secagg/messages';
import { isSecureRound, SecureParticipant } from './secure-participant';
import { sendWithBusyRetry } from './busy-retry';
import type { CoordinatorTrust } from '../crypto/coordinator-trust';
import type { SignedServerEvent } from '../protocol/signed-messages';
import { trustedTransport } from './trusted-transport';

// ---- ports ----

/** The coordinator's round events a site listens to; the first two wait for the site's ack. */
export interface RoundListeners {
  'round:configure': (raw: unknown, ack: (reply: Ack<ServerReply<'round:configure'>>) => void) => void;
  'round:train': (raw: unknown, ack: (reply: Ack<ServerReply<'round:train'>>) => void) => void;
  'round:closed': (raw: unknown) => void;
  'version:published': (raw: unknown) => void;
  /** federated evaluation: score a candidate on the held-out split, answer with aggregates only */
  'round:evaluate': (raw: unknown, ack: (reply: Ack<ServerReply<'round:evaluate'>>) => void) => void;
  /** secure rounds (secure-participant.ts): the key exchange and unmasking, each answered in the ack */
  'secagg:setup': (raw: unknown, ack: (reply: Ack<ServerReply<'secagg:setup'>>) => void) => void;
  'secagg:share-keys': (raw: unknown, ack: (reply: Ack<ServerReply<'secagg:share-keys'>>) => void) => void;
  'secagg:survivors': (raw: unknown, ack: (reply: Ack<ServerReply<'secagg:survivors'>>) => void) => void;
  'secagg:unmask': (raw: unknown, ack: (reply: Ack<ServerReply<'secagg:unmask'>>) => void) => void;
}

/** What a site sends during a round. */
/** 'adapter:chunk' fetches a global adapter too large to come with round:train (connection/adapter-download.ts) */
export type RoundRequestName = 'update:upload' | 'secagg:upload' | 'round:fail' | 'adapter:chunk';

/** One authenticated connection to the coordinator. */
export interface RoundTransport {
  on<E extends keyof RoundListeners>(event: E, listener: RoundListeners[E]): void;
  /** the coordinator's validated reply; fails as soon as the connection is lost (session.ts request) */
  request<E extends RoundRequestName>(event: E, payload: ClientRequest<E>): Promise<ClientReply<E>>;
  readonly connected: boolean;
}

/** How a round's local training is seeded, followed and stopped (training/local-round.ts runLocalRound). */
export interface RoundTrainControl {
  seed: number;
  onStep: (p: StepProgress) => void;
  /** asked between steps: the site is leaving, the connection is gone or the round has closed */
  shouldStop: () => boolean;
  /** the round's tokens per example (participant.ts roundMaxLength): a masked-LM round packs its documents to it */
  maxLength?: number;
}

/** The local model that trains a round. */
export interface RoundModel {
  /** names and shapes of the trainable tensors: a global adapter must have exactly these */
  trainableShapes(): Record<string, number[]>;
  /** the most tokens per example the model takes (tokenizer and position embeddings) */
  readonly maxLength: number;
  /** trains from `global` on `examples` and returns delta = trained − global with the example count */
  train(
    examples: EncodedExample[],
    global: NamedTensors,
    config: LocalTrainConfig,
    control: RoundTrainControl,
  ): Promise<LocalRoundResult>;
  /** scores `adapter` on `examples` (forward passes only): the confusion matrix and loss sum, nothing per example */
  evaluate(examples: EncodedExample[], adapter: NamedTensors): Promise<SiteEvaluation>;
}

/** The site's labelled data, encoded for the model. Never sent: only deltas computed from it leave. */
export interface RoundData {
  examples(maxLength: number): EncodedExample[];
  /**
   * continual re-training (a site whose data grows): the examples a round trains on, how many of them this site has
   * not trained on before (reported with the upload), and `trained`, called once the upload is in, after which they
   * no longer count as new. Absent: the upload reports no new-example count.
   */
  snapshot?(maxLength: number): RoundDataSnapshot;
}

export interface RoundDataSnapshot {
  examples: EncodedExample[];
  newExamples: number;
  trained(): void;
}

export interface Clock {
  /** epoch milliseconds, as the coordinator's deadlines are */
  now(): number;
}

const SYSTEM_CLOCK: Clock = { now: () => Date.now() };

/** What the handler tells its site; each client turns these into its own log lines, progress and page events. */
export type RoundEvent =
  | { type: 'configured'; round: ConfiguredRound; accepted: boolean }
  /** a round event the site did not take: acked with the error */
  | { type: 'rejected'; event: 'round:configure' | 'round:train'; error: unknown }
  /** a secure round's exchange the site refused or could not answer (a forged list, a request for both shares…) */
  | { type: 'secagg-refused'; event: SecAggEvent; error: unknown }
  /** a malformed broadcast: it changes nothing */
  | { type: 'ignored'; event: 'round:closed' | 'version:published'; error: unknown }
  | { type: 'step'; round: ConfiguredRound; progress: StepProgress; stepsPerEpoch: number }
  | { type: 'trained'; round: ConfiguredRound; result: LocalRoundResult }
  | { type: 'uploaded'; round: ConfiguredRound; result: LocalRoundResult; payloadBytes: number; newExamples?: number }
  | { type: 'failed'; round: ConfiguredRound; failure: ClientRequest<'round:fail'>; error: unknown }
  | { type: 'fail-undelivered'; round: ConfiguredRound; error: unknown }
  /** the coordinator answered the upload BUSY; it is sent again after a backoff */
  | { type: 'upload-retry'; round: ConfiguredRound; attempt: number; error: unknown }
  | { type: 'closed'; message: ServerMessage<'round:closed'> }
  /** a candidate scored on the held-out split (or declined: the site keeps none) */
  | { type: 'evaluated'; message: ServerMessage<'round:evaluate'>; evaluation: SiteEvaluation | null }
  | { type: 'evaluate-refused'; error: unknown }
  | { type: 'version'; message: ServerMessage<'version:published'> }
  /** a round message without the pinned coordinator's valid signature: never handled (trusted-transport.ts) */
  | { type: 'untrusted'; event: SignedServerEvent; error: unknown };

export interface SiteRoundsOptions {
  report: (e: RoundEvent) => void;
  /** true once the site is leaving: it declines rounds, stops training between steps and reports no failure */
  leaving: () => boolean;
  clock?: Clock;
  /** take part in one round only; `over` runs when that round is over for this site (it closed, or failed here) */
  once?: { over: () => void };
}

/** What one authenticated connection brings: who the site is, its transport, and the model and data prepared for
 * this connection's manifest. */
export interface RoundConnection {
  siteId: string;
  /** the site's Ed25519 keypair: signs every upload */
  signing: KeyPair;
  transport: RoundTransport;
  model: RoundModel;
  data: RoundData;
  /** the manifest's cap on tokens per example; a round may lower it (participant.ts roundMaxLength) */
  maxSeqLength: number;
  /** the site's held-out split (data/holdout.ts), never trained on; absent: 'round:evaluate' is declined */
  heldout?: RoundData;
  /**
   * the coordinator's checked signing key (session.ts authenticate): signed round messages are verified with it and
   * refused without a valid signature. Both sites always pass it; absent only in tests of the protocol itself.
   */
  trust?: CoordinatorTrust;
}

/** The round a connection accepted in 'round:configure' and has not trained yet; forgotten with the connection. */
interface Offer {
  round: ConfiguredRound | null;
  /** the accepted secure round's protocol state, kept until the round closes (unmasking follows the upload) */
  secure: SecureParticipant | null;
}

type SecAggEvent = 'secagg:setup' | 'secagg:share-keys' | 'secagg:survivors' | 'secagg:unmask';

// ---- the handler ----

/** A site's rounds across its connections: one trains at a time, and a closed round is never trained or reported. */
export class SiteRounds {
  private trainingRound: string | null = null;
  /** true while a candidate is scored: the model's weights are in use, so a round offered meanwhile is declined */
  private evaluating = false;
  /** with `once`: the round this site trained in */
  private onceRound: string | null = null;
  private readonly closedRounds = new Set<string>();
  private readonly clock: Clock;

  constructor(private readonly o: SiteRoundsOptions) {
    this.clock = o.clock ?? SYSTEM_CLOCK;
  }

  /** true while a round trains, uploads or reports its failure */
  get training(): boolean {
    return this.trainingRound !== null;
  }

  /** with `once`: this site trained in its round and is done with it, so a lost connection leaves nothing to do */
  get onceDone(): boolean {
    return this.onceRound !== null && this.trainingRound === null;
  }

  /** Takes part in rounds over `c` until it closes. */
  attach(connection: RoundConnection): void {
    const trust = connection.trust;
    const c: RoundConnection = trust
      ? { ...connection, transport: trustedTransport(connection.transport, trust, (event, error) => this.o.report({ type: 'untrusted', event, error })) }
      : connection;
    const offer: Offer = { round: null, secure: null };
    c.transport.on('round:configure', (raw, ack) => this.configure(c, offer, raw, ack));
    const secure = <E extends SecAggEvent>(event: E, run: (p: SecureParticipant, raw: unknown) => Promise<ServerReply<E>> | ServerReply<E>) =>
      c.transport.on(event, ((raw: unknown, ack: (r: Ack<ServerReply<E>>) => void) => {
        void (async () => {
          try {
            if (!offer.secure) throw new FedloraError('WRONG_ROUND', 'this site is in no secure round');
            // the transport checked the coordinator's signature; the exchange's schemas describe the body without it
            ack(ackOk(await run(offer.secure, withoutSignature(raw))));
          } catch (err) {
            this.o.report({ type: 'secagg-refused', event, error: err });
            ack(ackError(err));
          }
        })();
      }) as RoundListeners[E]);
    secure('secagg:setup', (p, raw) => p.setup(raw));
    secure('secagg:share-keys', (p, raw) => p.shareKeys(raw));
    secure('secagg:survivors', (p, raw) => p.signSurvivors(raw));
    secure('secagg:unmask', (p, raw) => p.unmask(raw));
    c.transport.on('round:train', (raw, ack) => void this.train(c, offer, raw, ack));
    c.transport.on('round:closed', (raw) => this.closed(offer, raw));
    c.transport.on('version:published', (raw) => this.published(raw));
    c.transport.on('round:evaluate', (raw, ack) => void this.evaluate(c, raw, ack));
  }

  /** 'round:evaluate': the candidate (carried, or fetched in chunks) scored on the held-out split. */
  private async evaluate(c: RoundConnection, raw: unknown, ack: (r: Ack<ServerReply<'round:evaluate'>>) => void): Promise<void> {
    try {
      const msg = parseServerMessage('round:evaluate', raw);
      const maxLength = Math.min(msg.maxLength, c.maxSeqLength, c.model.maxLength);
      const examples = c.heldout?.examples(maxLength) ?? [];
      if (examples.length === 0) {
        this.o.report({ type: 'evaluated', message: msg, evaluation: null });
        ack(ackOk({ declined: 'NO_HOLDOUT' as const }));
        return;
      }
      if (this.trainingRound !== null || this.evaluating)
        throw new FedloraError('BUSY', 'the model is training a round or scoring another candidate');
      this.evaluating = true;
      try {
        const bytes =
          msg.adapter ??
          (
            await downloadAdapter((req) => c.transport.request('adapter:chunk', req), msg.versionId, {
              totalBytes: msg.adapterBytes as number,
              adapterSha256: msg.adapterSha256,
            })
          ).bytes;
        const adapter = await openAdapter(bytes, msg.adapterSha256, msg.versionId);
        checkAdapterShapes(adapter.adapter, c.model.trainableShapes());
        const evaluation = await c.model.evaluate(examples, adapter.adapter);
        this.o.report({ type: 'evaluated', message: msg, evaluation });
        ack(ackOk({ numExamples: evaluation.n, lossSum: evaluation.lossSum, confusion: evaluation.confusion }));
      } finally {
        this.evaluating = false;
      }
    } catch (err) {
      this.o.report({ type: 'evaluate-refused', error: err });
      ack(ackError(err));
    }
  }

  private configure(
    c: RoundConnection,
    offer: Offer,
    raw: unknown,
    ack: (r: Ack<ServerReply<'round:configure'>>) => void,
  ): void {
    try {
      const msg = parseServerMessage('round:configure', raw);
      const accepted =
        !this.o.leaving() &&
        this.trainingRound === null &&
        !this.evaluating &&
        msg.deadline > this.clock.now() &&
        !(this.o.once && this.onceRound !== null);
      if (accepted) {
        offer.round = msg;
        // fresh keys and seeds for every secure round (never reused across rounds or attempts)
        offer.secure = isSecureRound(msg) ? new SecureParticipant(msg, c.siteId, c.signing, c.model.trainableShapes()) : null;
      }
      this.o.report({ type: 'configured', round: msg, accepted });
      ack(ackOk({ accepted }));
    } catch (err) {
      this.o.report({ type: 'rejected', event: 'round:configure', error: err });
      ack(ackError(err));
    }
  }

  private async train(
    c: RoundConnection,
    offer: Offer,
    raw: unknown,
    ack: (r: Ack<ServerReply<'round:train'>>) => void,
  ): Promise<void> {
    let round: ConfiguredRound;
    let adapter: GlobalAdapter;
    let shares: MaskedUploadRequest | null;
    try {
      ({ round, adapter, secagg: shares } = await acceptTrainMessage(raw, offer.round, c.model.trainableShapes(), (req) =>
        c.transport.request('adapter:chunk', req),
      ));
    } catch (err) {
      this.o.report({ type: 'rejected', event: 'round:train', error: err });
      ack(ackError(err));
      return;
    }
    offer.round = null;
    this.trainingRound = round.roundId;
    if (this.o.once) this.onceRound = round.roundId;
    ack(ackOk({ started: true as const }));
    let failed = false;
    try {
      await this.trainAndUpload(c, round, adapter, shares && offer.secure ? { shares, participant: offer.secure } : null);
    } catch (err) {
      failed = true;
      await this.reportFailure(c, round, err);
    } finally {
      this.trainingRound = null;
    }
    // --once: a failed round is over here; an uploaded one once it has closed (now, or later in closed())
    if (this.onceRound === round.roundId && (failed || this.closedRounds.has(round.roundId)))
      this.o.once?.over();
  }

  /** train → seal → upload; in a secure round: train → clip → mask → upload */
  private async trainAndUpload(
    c: RoundConnection,
    round: ConfiguredRound,
    adapter: GlobalAdapter,
    secure: { shares: MaskedUploadRequest; participant: SecureParticipant } | null,
  ): Promise<void> {
    const config = localTrainConfig(round.config);
    const maxLength = roundMaxLength(round.config, c.maxSeqLength, c.model.maxLength);
    const snapshot = c.data.snapshot?.(maxLength) ?? null;
    const examples = snapshot?.examples ?? c.data.examples(maxLength);
    const stepsPerEpoch = Math.ceil(examples.length / config.batchSize);
    const result = await c.model.train(examples, adapter.adapter, config, {
      seed: localRoundSeed(round.round),
      maxLength,
      onStep: (progress) => this.o.report({ type: 'step', round, progress, stepsPerEpoch }),
      shouldStop: () => this.o.leaving() || !c.transport.connected || this.closedRounds.has(round.roundId),
    });
    this.o.report({ type: 'trained', round, result });
    if (secure) {
      const masked = await secure.participant.upload(secure.shares, result.delta, result.numExamples);
      await this.sendUpload(c, round, () => c.transport.request('secagg:upload', masked));
      snapshot?.trained();
      this.o.report({ type: 'uploaded', round, result, payloadBytes: masked.upload.masked.length });
      return;
    }
    const upload = buildUpload({
      roundId: round.roundId,
      siteId: c.siteId,
      delta: result.delta,
      numExamples: result.numExamples,
      ...(snapshot ? { newExamples: snapshot.newExamples } : {}),
      metrics: result.metrics,
      encoding: round.encoding,
      recipientBoxPublicKey: round.coordinatorBoxPublicKey,
      signing: c.signing,
    });
    await this.sendUpload(c, round, () => c.transport.request('update:upload', upload.request));
    snapshot?.trained();
    this.o.report({ type: 'uploaded', round, result, payloadBytes: upload.payload.length, newExamples: snapshot?.newExamples });
  }

  /** An upload, sent again while the coordinator answers BUSY and the round is still open (busy-retry.ts). */
  private async sendUpload(c: RoundConnection, round: ConfiguredRound, send: () => Promise<unknown>): Promise<void> {
    await sendWithBusyRetry(send, {
      stillWanted: () => c.transport.connected && !this.closedRounds.has(round.roundId) && !this.o.leaving(),
      onRetry: (attempt, error) => this.o.report({ type: 'upload-retry', round, attempt, error }),
    });
  }

  private async reportFailure(c: RoundConnection, round: ConfiguredRound, err: unknown): Promise<void> {
    const failure = failureFor(round.roundId, err);
    this.o.report({ type: 'failed', round, failure, error: err });
    // a closed round or a lost connection needs no report: the coordinator has already moved on
    if (c.transport.connected && !this.closedRounds.has(round.roundId) && !this.o.leaving())
      await c.transport
        .request('round:fail', failure)
        .catch((error: unknown) => this.o.report({ type: 'fail-undelivered', round, error }));
  }

  private closed(offer: Offer, raw: unknown): void {
    const msg = this.parseBroadcast('round:closed', raw);
    if (!msg) return;
    this.closedRounds.add(msg.roundId);
    if (offer.round?.roundId === msg.roundId) offer.round = null;
    if (offer.secure?.roundId === msg.roundId) offer.secure = null;
    this.o.report({ type: 'closed', message: msg });
    if (this.onceRound === msg.roundId && this.trainingRound === null) this.o.once?.over();
  }

  private published(raw: unknown): void {
    const msg = this.parseBroadcast('version:published', raw);
    if (msg) this.o.report({ type: 'version', message: msg });
  }

  /** The broadcast, or null when it is malformed: then it changes nothing and is only reported. */
  private parseBroadcast<E extends 'round:closed' | 'version:published'>(
    event: E,
    raw: unknown,
  ): ServerMessage<E> | null {
    try {
      return parseServerMessage(event, raw);
    } catch (err) {
      this.o.report({ type: 'ignored', event, error: err });
      return null;
    }
  }
}

// ---- the model and data ports over a LocalModel, as both clients hold one ----

/**
 * `passBudget`: the backend's memory (Node: node/training/device-budget.ts); with it, each round's batch is cut into
 * micro-batches that fit (training/training-shape.ts: the same step, less memory per pass) and `logShape` hears why.
 */
export function localRoundModel(model: LocalModel, passBudget?: () => DeviceBudget, logShape?: (line: string) => void): RoundModel {
  return {
    trainableShapes: () => model.classifier.trainableShapes(),
    maxLength: Math.min(model.tokenizer.maxLength, model.bert.config.maxPositions),
    train: (examples, global, config, control) => {
      // batches are padded to their longest example, so the longest one the site has sizes the passes
      const longest = examples.reduce((m, e) => Math.max(m, e.inputIds.length), 1);
      const shape = passBudget ? chooseTrainingShape(model.bert.config, passBudget(), config.batchSize, longest) : null;
      if (shape) logShape?.(shape.reason);
      return runLocalRound(model.classifier, examples, model.tokenizer.special.pad, global, config, { ...control, microBatch: shape?.microBatch });
    },
    evaluate: async (examples, adapter) => {
      model.classifier.setTrainableState(adapter);
      const r = await evaluateClassifier(model.classifier, examples, model.tokenizer.special.pad);
      return siteEvaluation(examples.map((e) => e.label), r.predictions, model.classifier.numLabels, r.loss);
    },
  };
}

/** The site's data tokenized by `model` against the federation's labels, once per max length. */
export function localRoundData(
  cache: EncodedDataCache,
  model: LocalModel,
  labels: readonly string[],
): RoundData {
  return { examples: (maxLength) => cache.get(model.tokenizer, labels, maxLength) };
}
