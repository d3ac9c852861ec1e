// The long-running site agent behind `fedlora-site run`: connect, authenticate, check (or fetch) the base model
// against the manifest, announce availability, then take part in rounds until stopped. The round protocol
// (configure → train → upload) is the one the browser site runs too, shared/src/round/round-handler.ts; this file
// gives it the socket, the model and data, and shows its events (round-log.ts). When the coordinator goes away it
// reconnects with capped, jittered exponential backoff (shared/src/connection/backoff.ts).
// Usable in-process (tests, simulations): new SiteAgent(opts).run(), stop() from anywhere.

import { FedloraError, describeError, isFedloraError } from '@fedlora/shared/errors.ts';
import { initNodeBackend, type BackendInfo, type BackendName } from '@fedlora/shared/node/backend.ts';
import { deviceBudget } from '@fedlora/shared/node/training/device-budget.ts';
import type { SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import type { Manifest, ManifestTask } from '@fedlora/shared/protocol/manifest.ts';
import type { BertCheckpoint } from '@fedlora/shared/model/checkpoint.ts';
import type { Tokenizer } from '@fedlora/shared/tokenizer/tokenizer.ts';
import { loadBertCheckpoint } from '@fedlora/shared/node/model/load.ts';
import { loadTokenizer } from '@fedlora/shared/node/tokenizer/load.ts';
import { mlmRoundModel } from '@fedlora/shared/round/mlm-round-model.ts';
import { ENCODINGS } from '@fedlora/shared/protocol/quantize.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import { loadLocalModel, type LocalModel } from '@fedlora/shared/node/model/local-model.ts';
import type { Pooling } from '@fedlora/shared/model/classifier.ts';
import { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from '@fedlora/shared/connection/backoff.ts';
import { localRoundModel, SiteRounds } from '@fedlora/shared/round/round-handler.ts';
import { roundTransport } from '@fedlora/shared/connection/session.ts';
import {
  checkLabelMapping,
  EncodedDataCache,
  formatLabelMapping,
  labelMapping,
} from '@fedlora/shared/data/site-data.ts';
import { authenticate, openSocket, request, DEFAULT_REQUEST_TIMEOUT_MS, type SiteSocket } from './connection';
import { chunkSource, resolveBaseModelDir } from './base-model';
import { roundLog } from './round-log';
import { SiteDataWatch } from './data-watch';
import { ExampleLedger, TRAINED_EXAMPLES_FILE } from './example-ledger';
import { join } from 'node:path';
import type { RoundConnection, RoundData } from '@fedlora/shared/round/round-handler.ts';
import { holdoutSplit } from '@fedlora/shared/data/holdout.ts';
import type { LabeledDataset } from '@fedlora/shared/data/dataset.ts';
import { loadKeys, loadSiteConfig, pinnedFingerprint, type SiteConfig } from './state';

export interface SiteAgentOptions {
  stateDir: string;
  /** the base model the site holds (default: the shipped one); checked against the manifest's hashes */
  modelDir?: string;
  backend?: BackendName;
  /** leave after the first round this site took part in has closed */
  once?: boolean;
  /** fetch the base model from the coordinator when no local copy matches (default true) */
  download?: boolean;
  /** no progress bars */
  quiet?: boolean;
  log?: (line: string) => void;
  onEvent?: (e: AgentEvent) => void;
  backoff?: BackoffOptions;
  requestTimeoutMs?: number;
  /** give up after this many connection attempts in a row that never authenticated (default: never) */
  maxAttempts?: number;
  /**
   * keep this fraction of the data as a held-out split (data/holdout.ts), never trained on, to score candidates on
   * when the coordinator asks ('round:evaluate', federated evaluation); default 0: no split, such requests declined
   */
  holdout?: number;
  /**
   * watch the data and reload it when it changes, so the next round trains on the current data (default true;
   * data-watch.ts); pollMs: how often the files' size and mtime are compared besides fs.watch (default 2 s)
   */
  watchData?: boolean | { pollMs?: number };
}

/** What the agent reports to an embedding program (tests, `run --json`); never carries data. */
export type AgentEvent =
  | { type: 'backend'; name: string; detail: string }
  | { type: 'authenticated'; siteId: string; coordinatorId: string; versionId: string | null }
  | { type: 'ready'; numExamples: number; newExamples: number }
  /** the data was reloaded (or a round trained on what was new): examples now, and those not trained on yet */
  | { type: 'data'; numExamples: number; newExamples: number }
  | { type: 'configured'; roundId: string; round: number; accepted: boolean }
  | {
      type: 'uploaded';
      roundId: string;
      round: number;
      payloadBytes: number;
      numExamples: number;
      loss: number;
      seconds: number;
    }
  | { type: 'failed'; roundId: string; code: string; message: string }
  | { type: 'closed'; roundId: string; outcome: string }
  | { type: 'version'; versionId: string; round: number; metrics: Record<string, number> }
  /** a candidate scored on the site's held-out split (aggregates only go back) */
  | { type: 'evaluated'; versionId: string; numExamples: number; accuracy: number }
  | { type: 'disconnected'; reason: string; retryInMs: number | null };

/** Errors a retry cannot fix: stop and tell the operator. */
const FATAL = new Set([
  'UNKNOWN_SITE',
  'BAD_SIGNATURE',
  'UNAUTHORIZED',
  'HASH_MISMATCH',
  'DATA_INVALID',
  'CONFIG_INVALID',
  'FILE_NOT_FOUND',
  'FILE_UNREADABLE',
  'FILE_CORRUPT',
  'BACKEND_UNAVAILABLE',
  'MODEL_INVALID',
  // not the coordinator the join token pinned, or a message its key did not sign: retrying would not change that
  'UNTRUSTED_COORDINATOR',
]);

export class SiteAgent {
  private readonly log: (line: string) => void;
  private stopping = false;
  private done = false;
  private wake: (() => void) | null = null;
  private socket: SiteSocket | null = null;
  private model: LocalModel | null = null;
  private modelKey = '';
  private data: EncodedDataCache | null = null;
  /** the held-out split (--holdout), tokenized like the training data; null: none */
  private heldout: EncodedDataCache | null = null;
  private backend: BackendInfo | null = null;
  /** the data as it is now (reloaded on change), and which of its examples a round of this site trained on */
  private watch: SiteDataWatch | null = null;
  private ledger: ExampleLedger | null = null;
  /** the federation's labels, once a manifest named them: a reloaded dataset must fit them too */
  private labels: readonly string[] | null = null;
  /** the connection that declared this site ready: data changes are reported on it ('site:data') */
  private readySocket: SiteSocket | null = null;
  /** the round protocol (shared with the browser site), across this agent's connections */
  private readonly rounds: SiteRounds;
  private readonly verified = new Map<string, string>();
  /** a masked-LM federation's base checkpoint and tokenizer, for the manifest `key` */
  private mlm: { key: string; ckpt: BertCheckpoint; tokenizer: Tokenizer } | null = null;

  constructor(private readonly opts: SiteAgentOptions) {
    this.log = opts.log ?? ((line) => process.stderr.write(line + '\n'));
    this.rounds = new SiteRounds({
      report: roundLog({ log: this.log, emit: (e) => this.emit(e), quiet: opts.quiet }),
      leaving: () => this.stopping,
      once: opts.once ? { over: () => this.finish() } : undefined,
    });
  }

  private emit(e: AgentEvent): void {
    this.opts.onEvent?.(e);
  }

  /** Runs until stop() (or, with `once`, one round). Rejects on a fatal error (unknown site, model mismatch, bad data). */
  async run(): Promise<void> {
    const cfg = loadSiteConfig(this.opts.stateDir);
    pinnedFingerprint(cfg, this.opts.stateDir); // a state dir from before pinning stops here, saying how to fix it
    const keys = loadKeys(this.opts.stateDir);
    this.backend = await initNodeBackend({ force: this.opts.backend, log: this.log });
    this.log(`tfjs backend: ${this.backend.name} (${this.backend.detail})`);
    this.emit({ type: 'backend', name: this.backend.name, detail: this.backend.detail });
    this.ledger = new ExampleLedger(join(this.opts.stateDir, TRAINED_EXAMPLES_FILE), this.log);
    this.watch = new SiteDataWatch({
      loc: cfg,
      check: (ds) => {
        if (this.labels) checkLabelMapping(labelMapping(ds, this.labels), cfg.data);
      },
      onChange: (ds, previous) => this.dataChanged(ds, previous),
      log: this.log,
      pollMs: typeof this.opts.watchData === 'object' ? this.opts.watchData.pollMs : undefined,
    });
    this.useData(this.watch.dataset);
    this.log(
      `site ${cfg.siteId}: ${this.data?.dataset.examples.length} examples in ${cfg.data} (${this.newExamples()} not trained on yet)`,
    );
    if (this.opts.watchData !== false) this.watch.start();
    const backoff = new Backoff(this.opts.backoff ?? DEFAULT_BACKOFF);
    try {
      while (!this.stopping && !this.done) {
        let reason: string;
        try {
          reason = await this.session(cfg, keys, () => backoff.reset());
        } catch (err) {
          if (isFedloraError(err) && FATAL.has(err.code)) throw err;
          reason = describeError(err);
        }
        // --once: the round this site trained in is over for it once the connection is gone
        if (this.rounds.onceDone) this.done = true;
        if (this.stopping || this.done) break;
        if (this.opts.maxAttempts !== undefined && backoff.attempts + 1 >= this.opts.maxAttempts)
          throw new FedloraError('UNREACHABLE', `gave up after ${backoff.attempts + 1} attempts: ${reason}`);
        const delay = backoff.next();
        this.log(`disconnected (${reason}); reconnecting in ${(delay / 1000).toFixed(1)} s`);
        this.emit({ type: 'disconnected', reason, retryInMs: delay });
        await this.sleep(delay);
      }
    } finally {
      this.watch?.stop();
      this.socket?.close();
      this.model?.dispose();
      this.model = null;
    }
  }

  /** examples of the training data that no uploaded round of this site trained on */
  private newExamples(): number {
    return this.data && this.ledger ? this.ledger.newCount(this.data.dataset) : 0;
  }

  /** The data file changed and reloaded: the next round trains on it; the coordinator hears the new counts. */
  private dataChanged(ds: LabeledDataset, previous: LabeledDataset): void {
    const removed = this.ledger?.removedCount(previous, ds) ?? 0;
    this.useData(ds);
    this.log(
      `data reloaded: ${this.data?.dataset.examples.length} examples, ${this.newExamples()} not trained on yet` +
        (removed ? ` (${removed} row(s) removed)` : ''),
    );
    this.reportData();
  }

  /** 'data' event, and 'site:data' to the coordinator when this site is ready on a connection */
  private reportData(): void {
    const numExamples = this.data?.dataset.examples.length ?? 0;
    const newExamples = this.newExamples();
    this.emit({ type: 'data', numExamples, newExamples });
    const socket = this.readySocket;
    if (socket?.connected)
      request(socket, 'site:data', { numExamples, newExamples }, this.opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS).catch(
        (err: unknown) => this.log(`site:data not delivered: ${describeError(err)}`),
      );
  }

  /**
   * The round port over the data as it is when a round starts (a reload between rounds is used by the next one):
   * the encoded examples, how many are new, and marking them trained once the upload is in.
   */
  private roundData(model: LocalModel, labels: readonly string[]): RoundData {
    const cache = () => this.data as EncodedDataCache;
    return {
      examples: (maxLength) => cache().get(model.tokenizer, labels, maxLength),
      snapshot: (maxLength) => {
        const data = cache();
        const ledger = this.ledger as ExampleLedger;
        return {
          examples: data.get(model.tokenizer, labels, maxLength),
          newExamples: ledger.newCount(data.dataset),
          trained: () => {
            ledger.markTrained(ledger.keys(data.dataset));
            this.reportData();
          },
        };
      },
    };
  }

  /** The site's data: with --holdout, its held-out split is set apart here and only ever evaluated on. */
  private useData(ds: LabeledDataset): void {
    const fraction = this.opts.holdout ?? 0;
    if (fraction <= 0) {
      this.data = new EncodedDataCache(ds);
      this.heldout = null;
      return;
    }
    const split = holdoutSplit(ds, fraction);
    this.data = new EncodedDataCache(split.train);
    this.heldout = new EncodedDataCache(split.heldout);
    this.log(`held-out split (--holdout ${fraction}): ${split.heldout.examples.length} examples, never trained on`);
  }

  /** Asks the agent to leave: training stops between steps, the socket closes, run() resolves. */
  stop(): void {
    this.stopping = true;
    this.socket?.close();
    this.wake?.();
  }

  private finish(): void {
    this.done = true;
    this.wake?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  /** One connection: returns the reason it ended (disconnect, stop, done). */
  private async session(cfg: SiteConfig, keys: SiteKeys, onAuthenticated: () => void): Promise<string> {
    const timeout = this.opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const socket = await openSocket(cfg.coordinator, { caFile: cfg.caFile, project: cfg.project });
    this.socket = socket;
    const ended = new Promise<string>((resolve) => {
      socket.on('disconnect', (reason) => resolve(`connection lost: ${reason}`));
      this.wake = () => resolve(this.stopping ? 'stopped' : 'done');
    });
    try {
      if (this.stopping) return 'stopped';
      const { manifest, coordinatorId, trust } = await authenticate(socket, cfg.siteId, keys, pinnedFingerprint(cfg, this.opts.stateDir), timeout);
      onAuthenticated();
      this.log(
        `authenticated as ${cfg.siteId} with coordinator ${coordinatorId}; global adapter ${manifest.versionId ?? '(none yet)'}`,
      );
      this.emit({ type: 'authenticated', siteId: cfg.siteId, coordinatorId, versionId: manifest.versionId });
      const ports = await this.prepare(manifest, socket, cfg);
      this.rounds.attach({
        trust,
        siteId: cfg.siteId,
        signing: keys.signing,
        transport: roundTransport(socket, timeout),
        ...ports,
        maxSeqLength: manifest.maxSeqLength,
      });
      const numExamples = (this.data as EncodedDataCache).dataset.examples.length;
      const newExamples = this.newExamples();
      await request(
        socket,
        'site:ready',
        { numExamples, newExamples, encodings: [...ENCODINGS], backend: (this.backend as BackendInfo).name },
        timeout,
      );
      this.readySocket = socket;
      this.emit({ type: 'ready', numExamples, newExamples });
      this.log('ready: waiting for rounds');
      return await ended;
    } finally {
      socket.close();
      if (this.socket === socket) this.socket = null;
      if (this.readySocket === socket) this.readySocket = null;
    }
  }

  // ---- model ----

  private baseModelDir(manifest: Manifest, socket: SiteSocket): Promise<string> {
    return resolveBaseModelDir(manifest, {
      modelDir: this.opts.modelDir,
      stateDir: this.opts.stateDir,
      download: this.opts.download === false ? null : chunkSource(socket, this.opts.requestTimeoutMs),
      quiet: this.opts.quiet,
      log: this.log,
      verified: this.verified,
    });
  }

  /** The round ports for this manifest: a classification model over the labelled data, or a masked-LM one. */
  private async prepare(manifest: Manifest, socket: SiteSocket, cfg: SiteConfig): Promise<Pick<RoundConnection, 'model' | 'data' | 'heldout'>> {
    const modelDir = await this.baseModelDir(manifest, socket);
    if (manifest.task?.kind === 'mlm') return this.prepareMlm(manifest, manifest.task, modelDir);
    const pooling = (manifest as { pooling?: Pooling }).pooling ?? DEFAULT_RECIPE.pooling;
    const key = JSON.stringify([modelDir, manifest.baseModel.files, manifest.lora, manifest.labels, pooling]);
    const data = this.data as EncodedDataCache;
    if (!this.model || this.modelKey !== key) {
      const mapping = labelMapping(data.dataset, manifest.labels);
      checkLabelMapping(mapping, cfg.data);
      this.labels = manifest.labels;
      this.log(formatLabelMapping(mapping));
      this.model?.dispose();
      this.mlm = null;
      data.clear();
      this.heldout?.clear();
      this.model = loadLocalModel({
        modelDir,
        lora: manifest.lora,
        labels: manifest.labels,
        pooling,
        seed: 0,
      });
      this.modelKey = key;
    }
    // tokenize now, not in the first round's time budget
    const model = this.model;
    const tok = model.tokenizer;
    data.get(
      tok,
      manifest.labels,
      Math.min(manifest.maxSeqLength, tok.maxLength, model.bert.config.maxPositions),
    );
    return {
      model: localRoundModel(model, () => deviceBudget(this.backend as BackendInfo), this.log),
      data: this.roundData(model, manifest.labels),
      // read when asked: a data reload replaces the held-out split too
      ...(this.heldout ? { heldout: { examples: (n: number) => (this.heldout as EncodedDataCache).get(tok, manifest.labels, n) } } : {}),
    };
  }

  /**
   * A masked-LM federation (issue 24): the site's documents are the text column of its data (labels unused, never
   * checked against the federation's, which has none); each round trains mlmLocalRound on them as they are then.
   */
  private prepareMlm(manifest: Manifest, task: ManifestTask, modelDir: string): Pick<RoundConnection, 'model' | 'data'> {
    const key = JSON.stringify([modelDir, manifest.baseModel.files, manifest.lora, task]);
    if (!this.mlm || this.mlm.key !== key) {
      this.model?.dispose();
      this.model = null;
      this.modelKey = '';
      this.mlm = { key, ckpt: loadBertCheckpoint(modelDir), tokenizer: loadTokenizer(modelDir) };
      this.log(`masked-LM federation: training LoRA (${manifest.lora.targetModules.join(',')})${task.headTransform ? ' and the MLM head transform' : ''} on the text of ${this.data?.dataset.name}`);
    }
    const { ckpt, tokenizer } = this.mlm;
    return {
      model: mlmRoundModel({
        ckpt,
        tokenizer,
        lora: manifest.lora,
        headTransform: task.headTransform,
        docs: () => (this.data as EncodedDataCache).dataset.examples.map((e) => e.text),
      }),
      // the documents are read by the model port; the labelled examples are not used
      data: { examples: () => [] },
    };
  }
}
