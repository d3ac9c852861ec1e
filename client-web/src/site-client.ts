// The browser site: the same protocol as the Node agent (client-node/src/agent/site-agent.ts) through the same shared
// code: enroll/authenticate (shared/src/connection/session.ts), model:chunk download with per-chunk and whole-file SHA-256 (connection/model-chunk.ts, model-download.ts),
// label mapping (data/site-data.ts) and the round handler (round/round-handler.ts). Only the socket, the IndexedDB
// store and the UI events are browser-specific. The data set stays in the tab: only sealed deltas leave.

import { io, type Socket } from 'socket.io-client';
import {
  asAckSocket,
  authenticate,
  Backoff,
  checkLabelMapping,
  DEFAULT_BACKOFF,
  describeError,
  EncodedDataCache,
  ENCODINGS,
  enroll,
  FedloraError,
  fetchModelFile,
  generateSiteKeys,
  isFedloraError,
  labelMapping,
  localModelFromFiles,
  localRoundData,
  localRoundModel,
  request,
  roundTransport,
  SiteRounds,
  type AckSocket,
  type ClientToServerEvents,
  type LabeledDataset,
  type LabelMapping,
  type LocalModel,
  type Manifest,
  type ModelFiles,
  type Pooling,
  type RoundEvent,
  type ServerToClientEvents,
  verifiedChunkSource,
} from '@fedlora/shared';
import { helloCoordinator } from '@fedlora/shared/connection/session.ts';
import { parseJoinToken } from '@fedlora/shared/protocol/join-token.ts';
import { holdoutSplit } from '@fedlora/shared/data/holdout.ts';
import type { SiteStore } from './store';
import { browserDeviceBudget, type WebBackendInfo } from './backend';

type SiteSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** What the page shows; never carries examples. */
export type SiteEvent =
  | { type: 'status'; text: string }
  | { type: 'enrolled'; siteId: string }
  | { type: 'mapping'; mapping: LabelMapping; labels: string[] }
  | { type: 'download'; path: string; done: number; total: number; cached: boolean }
  | { type: 'ready'; numExamples: number }
  | { type: 'step'; round: number; step: number; totalSteps: number; loss: number; samplesPerSecond: number }
  | { type: 'uploaded'; round: number; bytes: number; loss: number; samplesPerSecond: number }
  | { type: 'version'; versionId: string; round: number; accuracy?: number }
  | { type: 'evaluated'; versionId: string; numExamples: number; accuracy: number; loss: number }
  | { type: 'fatal'; code: string; message: string };

export interface BrowserSiteOptions {
  /** the coordinator's origin (the page's own when served at /site) */
  coordinator: string;
  /** one-time join token; only needed until this browser is enrolled */
  token: string | null;
  dataset: LabeledDataset;
  /**
   * keep this fraction of the data as a held-out split (shared data/holdout.ts, the same split as the Node agent's
   * --holdout), never trained on, to score candidate adapters on when the coordinator runs federated evaluation;
   * 0 or absent: no split, and 'round:evaluate' is declined
   */
  holdout?: number;
  store: SiteStore;
  backend: WebBackendInfo;
  on: (e: SiteEvent) => void;
}

/** Errors a retry cannot fix: the page shows them and stops (a revoked site is UNAUTHORIZED or UNKNOWN_SITE). */
const FATAL = new Set([
  'UNKNOWN_SITE',
  'BAD_SIGNATURE',
  'UNAUTHORIZED',
  'TOKEN_USED',
  'HASH_MISMATCH',
  'DATA_INVALID',
  'CONFIG_INVALID',
  'MODEL_INVALID',
]);

function openSocket(url: string): Promise<SiteSocket> {
  const socket: SiteSocket = io(url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: 10_000,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(
        new FedloraError('UNREACHABLE', `cannot reach the coordinator at ${url}: ${err.message}`, {
          cause: err,
        }),
      );
    });
  });
}

export class BrowserSite {
  private stopped = false;
  private socket: SiteSocket | null = null;
  private model: LocalModel | null = null;
  private modelKey = '';
  private readonly data: EncodedDataCache;
  /** the held-out split (options.holdout), tokenized like the training data; null: none */
  private readonly heldout: EncodedDataCache | null;
  /** the round protocol (shared with the Node agent), across this page's connections */
  private readonly rounds: SiteRounds;

  constructor(private readonly o: BrowserSiteOptions) {
    const fraction = o.holdout ?? 0;
    if (fraction > 0) {
      const split = holdoutSplit(o.dataset, fraction);
      this.data = new EncodedDataCache(split.train);
      this.heldout = new EncodedDataCache(split.heldout);
    } else {
      this.data = new EncodedDataCache(o.dataset);
      this.heldout = null;
    }
    this.rounds = new SiteRounds({ report: (e) => this.show(e), leaving: () => this.stopped });
  }

  /** Connects, and reconnects with backoff until stop() or a fatal error (shown as a 'fatal' event). */
  async run(): Promise<void> {
    const backoff = new Backoff(DEFAULT_BACKOFF);
    while (!this.stopped) {
      let reason: string;
      try {
        reason = await this.session(() => backoff.reset());
      } catch (err) {
        if (isFedloraError(err) && FATAL.has(err.code)) {
          this.o.on({ type: 'fatal', code: err.code, message: err.message });
          return;
        }
        reason = describeError(err);
      }
      if (this.stopped) break;
      const delay = backoff.next();
      this.o.on({
        type: 'status',
        text: `disconnected (${reason}); reconnecting in ${(delay / 1000).toFixed(1)} s`,
      });
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  stop(): void {
    this.stopped = true;
    this.socket?.close();
    this.model?.dispose();
    this.model = null;
  }

  private async session(onAuthenticated: () => void): Promise<string> {
    const socket = await openSocket(this.o.coordinator);
    this.socket = socket;
    const ended = new Promise<string>((resolve) =>
      socket.on('disconnect', (r) => resolve(`connection lost: ${r}`)),
    );
    const ack = asAckSocket(socket);
    try {
      const siteId = await this.identity(ack);
      const stored = (await this.o.store.identity(this.o.coordinator))!;
      const { keys } = stored;
      let session;
      try {
        // a browser enrolled before pinning has no fingerprint yet: the key it first meets is kept from then on
        session = await authenticate(ack, siteId, keys, undefined, stored.coordinatorFingerprint ?? null);
        if (!stored.coordinatorFingerprint) await this.o.store.saveIdentity({ ...stored, coordinatorFingerprint: session.trust.fingerprint });
      } catch (err) {
        if (isFedloraError(err, 'UNAUTHORIZED') || isFedloraError(err, 'UNKNOWN_SITE'))
          throw new FedloraError(
            err.code,
            `the coordinator refused site ${siteId}: it was revoked or is unknown (${err.message})`,
            { cause: err },
          );
        throw err;
      }
      onAuthenticated();
      this.o.on({
        type: 'status',
        text: `authenticated as ${siteId}; global adapter ${session.manifest.versionId ?? '(none yet)'}`,
      });
      await this.prepare(session.manifest, ack);
      const model = this.model as LocalModel;
      this.rounds.attach({
        trust: session.trust,
        siteId,
        signing: keys.signing,
        transport: roundTransport(socket),
        model: localRoundModel(model, () => browserDeviceBudget(this.o.backend.name), (text) => this.o.on({ type: 'status', text })),
        data: localRoundData(this.data, model, session.manifest.labels),
        ...(this.heldout ? { heldout: localRoundData(this.heldout, model, session.manifest.labels) } : {}),
        maxSeqLength: session.manifest.maxSeqLength,
      });
      // the examples it trains on: a held-out split is not offered to rounds
      const numExamples = this.data.dataset.examples.length;
      await request(ack, 'site:ready', {
        numExamples,
        encodings: [...ENCODINGS],
        backend: this.o.backend.name,
      });
      this.o.on({ type: 'ready', numExamples });
      this.o.on({ type: 'status', text: 'ready: waiting for rounds' });
      return await ended;
    } finally {
      socket.close();
      if (this.socket === socket) this.socket = null;
    }
  }

  /** The enrolled site id; enrolls first (keys generated and stored before the token is spent) when needed. */
  private async identity(ack: AckSocket): Promise<string> {
    const store = this.o.store;
    let id = await store.identity(this.o.coordinator);
    if (id?.siteId) return id.siteId;
    if (!id) {
      id = { coordinator: this.o.coordinator, siteId: null, keys: generateSiteKeys() };
      await store.saveIdentity(id);
    }
    if (!this.o.token)
      throw new FedloraError(
        'CONFIG_INVALID',
        'this browser is not enrolled yet: paste the join token from the coordinator admin',
      );
    const token = parseJoinToken(this.o.token);
    if (!token.fingerprint)
      throw new FedloraError(
        'CONFIG_INVALID',
        'this join token carries no coordinator fingerprint (it is from before sites pinned the coordinator\'s key): ask the coordinator admin for a new one',
      );
    // the coordinator must prove the key the token pins before the token is sent (UNTRUSTED_COORDINATOR otherwise)
    await helloCoordinator(ack, token.fingerprint);
    const hex = [...id.keys.signing.publicKey.slice(0, 6)]
      .map((b) => b.toString(16).padStart(2, '0'))
      .join('');
    const siteId = await enroll(ack, token.secret, `web-${hex}`, id.keys);
    await store.saveIdentity({ ...id, siteId, coordinatorFingerprint: token.fingerprint });
    this.o.on({ type: 'enrolled', siteId });
    return siteId;
  }

  private async prepare(manifest: Manifest, ack: AckSocket): Promise<void> {
    // masked-LM federations (issue 24) train on the Node agent only: the browser site holds a classifier
    if (manifest.task)
      throw new FedloraError('CONFIG_INVALID', `this coordinator runs a ${manifest.task.kind} federation, which the browser site does not take part in (use fedlora-site run)`);
    const mapping = labelMapping(this.o.dataset, manifest.labels);
    this.o.on({ type: 'mapping', mapping, labels: manifest.labels });
    checkLabelMapping(mapping, this.o.dataset.name);
    const pooling = (manifest as { pooling?: Pooling }).pooling ?? 'mean';
    const key = JSON.stringify([manifest.baseModel.files, manifest.lora, manifest.labels, pooling]);
    if (!this.model || this.modelKey !== key) {
      const files: ModelFiles = {};
      // every chunk checked against its own sha256 as it arrives (the same check as the Node agent's)
      const source = verifiedChunkSource((req) => request(ack, 'model:chunk', req));
      for (const f of manifest.baseModel.files) {
        const cached = await this.o.store.modelFile(f);
        if (cached) {
          files[f.path] = cached;
          this.o.on({ type: 'download', path: f.path, done: f.bytes, total: f.bytes, cached: true });
          continue;
        }
        files[f.path] = await fetchModelFile(source, f, (done, total) =>
          this.o.on({ type: 'download', path: f.path, done, total, cached: false }),
        );
        await this.o.store.saveModelFile(f, files[f.path]);
      }
      this.model?.dispose();
      this.data.clear();
      this.heldout?.clear();
      this.model = localModelFromFiles(files, {
        lora: manifest.lora,
        labels: manifest.labels,
        pooling,
        seed: 0,
        source: manifest.baseModel.id,
      });
      this.modelKey = key;
    }
    const tok = this.model.tokenizer;
    this.data.get(
      tok,
      manifest.labels,
      Math.min(manifest.maxSeqLength, tok.maxLength, this.model.bert.config.maxPositions),
    );
  }

  /** What the page shows of a round; refused messages and the training → upload handover show nothing. */
  private show(e: RoundEvent): void {
    const on = this.o.on;
    switch (e.type) {
      case 'configured':
        return on({
          type: 'status',
          text: `round ${e.round.round}: ${e.accepted ? 'accepted' : 'declined'}`,
        });
      case 'step':
        return on({
          type: 'step',
          round: e.round.round,
          step: e.progress.step,
          totalSteps: e.progress.totalSteps,
          loss: e.progress.loss,
          samplesPerSecond: e.progress.samplesPerSecond,
        });
      case 'uploaded':
        return on({
          type: 'uploaded',
          round: e.round.round,
          bytes: e.payloadBytes,
          loss: e.result.metrics.loss,
          samplesPerSecond: e.result.metrics.samplesPerSecond,
        });
      case 'failed':
        return on({ type: 'status', text: `round ${e.round.round} failed: ${describeError(e.error)}` });
      case 'secagg-refused':
        return on({ type: 'status', text: `secure aggregation: ${e.event} refused: ${describeError(e.error)}` });
      case 'untrusted':
        return on({ type: 'status', text: `refusing ${e.event}: ${describeError(e.error)}` });
      case 'upload-retry':
        return on({ type: 'status', text: `round ${e.round.round}: the coordinator is busy (${describeError(e.error)}); sending the update again` });
      case 'closed':
        return on({
          type: 'status',
          text: `round ${e.message.round} closed: ${e.message.outcome} (${e.message.updates} updates)`,
        });
      case 'evaluated': {
        const v = e.evaluation;
        if (!v)
          return on({ type: 'status', text: `candidate ${e.message.versionId}: evaluation declined (no held-out split: set a held-out share before joining)` });
        const correct = v.confusion.reduce((n, row, i) => n + row[i], 0);
        return on({ type: 'evaluated', versionId: e.message.versionId, numExamples: v.n, accuracy: correct / v.n, loss: v.lossSum / v.n });
      }
      case 'evaluate-refused':
        return on({ type: 'status', text: `round:evaluate refused: ${describeError(e.error)}` });
      case 'version':
        return on({
          type: 'version',
          versionId: e.message.versionId,
          round: e.message.round,
          accuracy: e.message.metrics.accuracy,
        });
    }
  }
}
