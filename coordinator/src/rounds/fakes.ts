// In-memory stand-ins for the round loop's seams (tests and simulations): a manual clock, a transport whose
// sites are scripted callbacks, a fixed-metrics evaluator, and tiny adapters and sealed updates to feed them.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { generateSiteKeys, type SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { sealAndSign } from '@fedlora/shared/crypto/envelope.ts';
import { encodeUpdate, newMessageNonce } from '@fedlora/shared/protocol/codec.ts';
import type { TensorEncoding } from '@fedlora/shared/protocol/quantize.ts';
import { parseServerMessage, parseServerReply, type ClientRequest, type ServerMessage } from '@fedlora/shared/protocol/events.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { SecureParticipant, isSecureRound } from '@fedlora/shared/round/secure-participant.ts';
import { pack, unpack } from '@fedlora/shared/protocol/packed.ts';
import {
  SecAggSetupReplySchema,
  SecAggSharesBodySchema,
  SecAggShareKeysReplySchema,
  SecAggSurvivorsReplySchema,
  SecAggUnmaskReplySchema,
  type SecAggShareKeysMessage,
  type SecAggSurvivorsMessage,
  type SecAggUnmaskMessage,
  type EvaluateReply,
} from '@fedlora/shared/protocol/messages.ts';
import type { HeldoutMetrics } from '../registry/types';
import type {
  AvailableSite,
  Clock,
  ConfigureMessage,
  EvaluateMessage,
  Evaluator,
  RoundClosedMessage,
  RoundTransport,
  SecAggAsk,
  TrainMessage,
  VersionPublishedMessage,
} from './types';
import type { UploadRequest } from './upload';
import type { CoordinatorTask } from '../app';

/**
 * A base-model directory for a coordinator under test: three small files (not a loadable model; the fake task
 * never loads it), enough for the manifest's hashes and 'model:chunk' downloads. Returns its path.
 */
export function writeTinyModelDir(parent: string, weightBytes = 3000): string {
  const dir = join(parent, 'model');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), '{"hidden_size": 2}');
  writeFileSync(join(dir, 'vocab.txt'), '[PAD]\n[UNK]\nhello\n');
  writeFileSync(join(dir, 'model.safetensors'), new Uint8Array(weightBytes).map((_, i) => i % 251));
  return dir;
}

/** Time only moves when a test calls advance(). */
export class ManualClock implements Clock {
  private t = 1_700_000_000_000;
  private timers: { at: number; resolve: () => void }[] = [];

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = { at: this.t + ms, resolve };
      this.timers.push(timer);
      signal?.addEventListener(
        'abort',
        () => {
          this.timers = this.timers.filter((x) => x !== timer);
          reject(signal.reason);
        },
        { once: true },
      );
    });
  }

  advance(ms: number): void {
    this.t += ms;
    const due = this.timers.filter((x) => x.at <= this.t);
    this.timers = this.timers.filter((x) => x.at > this.t);
    for (const x of due) x.resolve();
  }
}

/** A tiny adapter: one LoRA pair and a 2-label head (12 + 12 + 4 + 2 floats). */
export function tinyAdapter(fill = 0): NamedTensors {
  const t = (shape: number[]) => ({
    shape,
    data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(fill),
  });
  return {
    'encoder.layer.0.attention.self.query.lora_A': t([2, 6]),
    'encoder.layer.0.attention.self.query.lora_B': t([6, 2]),
    'classifier.weight': t([2, 2]),
    'classifier.bias': t([2]),
  };
}

export interface FakeSiteBehavior {
  /** answer to round:configure (default true); 'hang' never answers */
  configure?: boolean | 'hang';
  /** called after round:train is acked */
  onTrain?: (cfg: ConfigureMessage, train: TrainMessage) => void;
  /** secure rounds: the exchange this site never answers (it has gone silent from there on) */
  secaggHang?: SecAggAsk;
  /**
   * federated evaluation: the site's raw ack data for 'round:evaluate' (checked by schema as Presence does), or
   * 'hang' (it never answers: the call times out); default: declines, as a site without a held-out split
   */
  evaluate?: (msg: EvaluateMessage) => unknown;
}

export class FakeTransport implements RoundTransport {
  readonly sites = new Map<string, AvailableSite & FakeSiteBehavior>();
  readonly closedMessages: RoundClosedMessage[] = [];
  readonly publishedMessages: VersionPublishedMessage[] = [];
  readonly configured = new Map<string, ConfigureMessage>();
  /** each fake site's Ed25519 identity, as if enrolled */
  readonly identities = new Map<string, SiteKeys>();
  /** secure rounds: each site's real SecAgg participant (shared/round/secure-participant.ts) */
  private readonly secure = new Map<string, SecureParticipant>();
  private listeners: (() => void)[] = [];
  enrolled = 0;

  /** @param shapes the trainable tensors' shapes the sites hold (secure rounds lay the masked vector out by them) */
  constructor(private readonly shapes: Record<string, number[]> = shapesOf(tinyAdapter())) {}

  addSite(siteId: string, behavior: FakeSiteBehavior = {}, numExamples = 10): void {
    this.sites.set(siteId, { siteId, numExamples, encodings: ['fp32', 'fp16', 'int8'], ...behavior });
    if (!this.identities.has(siteId)) this.identities.set(siteId, generateSiteKeys());
    this.enrolled = Math.max(this.enrolled, this.sites.size);
    for (const l of this.listeners) l();
  }

  removeSite(siteId: string): void {
    this.sites.delete(siteId);
    for (const l of this.listeners) l();
  }

  available(): AvailableSite[] {
    return [...this.sites.values()].map(({ siteId, numExamples, newExamples, encodings }) => ({
      siteId,
      numExamples,
      ...(newExamples !== undefined ? { newExamples } : {}),
      encodings,
    }));
  }

  /** a site's 'site:data': its example counts changed (continual re-training) */
  setData(siteId: string, numExamples: number, newExamples: number): void {
    const s = this.sites.get(siteId);
    if (!s) throw new Error(`no site ${siteId}`);
    Object.assign(s, { numExamples, newExamples });
    for (const l of this.listeners) l();
  }

  enrolledCount(): number {
    return this.enrolled;
  }

  onAvailabilityChange(listener: () => void): () => void {
    this.listeners.push(listener);
    return () => (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  async configure(siteId: string, msg: ConfigureMessage): Promise<boolean> {
    const s = this.sites.get(siteId);
    if (!s) throw new Error('site gone');
    if (s.configure === 'hang') return new Promise(() => {});
    // what a real site would refuse at its edge, a fake one refuses too
    parseServerMessage('round:configure', msg);
    this.configured.set(siteId, msg);
    const accepted = s.configure ?? true;
    if (accepted && isSecureRound(msg))
      this.secure.set(siteId, new SecureParticipant(msg, siteId, this.identities.get(siteId)!.signing, this.shapes));
    return accepted;
  }

  identityKey(siteId: string): Uint8Array | null {
    return this.identities.get(siteId)?.signing.publicKey ?? null;
  }

  private participant(siteId: string, stage: SecAggAsk): Promise<SecureParticipant> {
    const s = this.sites.get(siteId);
    const p = this.secure.get(siteId);
    if (!s || !p) return Promise.reject(new Error('site gone or not in a secure round'));
    if (s.secaggHang === stage) return new Promise(() => {});
    return Promise.resolve(p);
  }

  // each exchange packed and unpacked as on the wire (Presence does the same with a socket between); bytes arrive as
  // Node Buffers, as socket.io delivers them
  async secaggSetup(siteId: string, msg: ServerMessage<'secagg:setup'>) {
    const reply = (await this.participant(siteId, 'secagg:setup')).setup(msg);
    return unpack(SecAggSetupReplySchema, onWire(reply), 'secagg:setup reply');
  }

  async secaggShareKeys(siteId: string, msg: SecAggShareKeysMessage) {
    const reply = await (await this.participant(siteId, 'secagg:share-keys')).shareKeys(onWire(pack(msg)));
    return unpack(SecAggShareKeysReplySchema, onWire(reply), 'secagg:share-keys reply');
  }

  async secaggSurvivors(siteId: string, msg: SecAggSurvivorsMessage) {
    const reply = (await this.participant(siteId, 'secagg:survivors')).signSurvivors(onWire(pack(msg)));
    return unpack(SecAggSurvivorsReplySchema, onWire(reply), 'secagg:survivors reply');
  }

  async secaggUnmask(siteId: string, msg: SecAggUnmaskMessage) {
    const reply = await (await this.participant(siteId, 'secagg:unmask')).unmask(onWire(pack(msg)));
    return unpack(SecAggUnmaskReplySchema, onWire(reply), 'secagg:unmask reply');
  }

  /** A secure round's masked upload of `delta` by `siteId`, with the shares its train message carried. */
  maskedUpload(
    siteId: string,
    train: TrainMessage,
    delta: NamedTensors,
    numExamples = 10,
  ): Promise<ClientRequest<'secagg:upload'>> {
    const p = this.secure.get(siteId);
    if (!p || !train.secagg) throw new Error(`${siteId} is not in a secure round`);
    return p.upload(unpack(SecAggSharesBodySchema, train.secagg, 'round:train secagg'), delta, numExamples);
  }

  async train(siteId: string, msg: TrainMessage): Promise<void> {
    const s = this.sites.get(siteId);
    if (!s) throw new Error('site gone');
    parseServerMessage('round:train', msg);
    const cfg = this.configured.get(siteId) as ConfigureMessage;
    // after the ack, as a real site would: the upload arrives while the loop is already waiting
    if (s.onTrain) queueMicrotask(() => s.onTrain?.(cfg, msg));
  }

  readonly evaluateMessages: { siteId: string; msg: EvaluateMessage }[] = [];

  async evaluate(siteId: string, msg: EvaluateMessage, timeoutMs: number): Promise<EvaluateReply> {
    const s = this.sites.get(siteId);
    if (!s) throw new Error('site gone');
    parseServerMessage('round:evaluate', msg);
    this.evaluateMessages.push({ siteId, msg });
    const data = s.evaluate ? s.evaluate(msg) : { declined: 'NO_HOLDOUT' };
    if (data === 'hang')
      return new Promise((_, reject) =>
        setTimeout(() => reject(new FedloraError('TIMEOUT', `round:evaluate: no ack from ${siteId} within ${timeoutMs} ms`)), timeoutMs),
      );
    return parseServerReply('round:evaluate', { ok: true, data });
  }

  closed(_ids: readonly string[], msg: RoundClosedMessage): void {
    this.closedMessages.push(msg);
  }

  published(msg: VersionPublishedMessage): void {
    this.publishedMessages.push(msg);
  }
}

/** A packed message as the peer gets it: its bytes in a Node Buffer. */
function onWire(p: { packed: Uint8Array }): { packed: Uint8Array } {
  return { packed: Buffer.from(p.packed) };
}

function shapesOf(t: NamedTensors): Record<string, number[]> {
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, [...v.shape]]));
}

/** Accuracy = 0.5 + the mean of classifier.bias (clamped), so tests can steer it through the deltas. */
export class FakeEvaluator implements Evaluator {
  calls = 0;
  async evaluate(state: NamedTensors): Promise<HeldoutMetrics> {
    this.calls++;
    const b = state['classifier.bias']?.data ?? new Float32Array([0]);
    const mean = b.reduce((a, x) => a + x, 0) / b.length;
    const accuracy = Math.min(1, Math.max(0, 0.5 + mean));
    return { accuracy, macroF1: accuracy, loss: 1 - accuracy, examples: 10, perClass: [] };
  }
}

/** A site identity and a sealed upload for a configured round. */
export function makeUpload(
  keys: SiteKeys,
  siteId: string,
  cfg: Pick<ConfigureMessage, 'roundId' | 'coordinatorBoxPublicKey'>,
  delta: NamedTensors,
  opts: {
    numExamples?: number;
    newExamples?: number;
    encoding?: TensorEncoding;
    nonce?: string;
    roundIdInside?: string;
    siteIdInside?: string;
  } = {},
): UploadRequest {
  const payload = encodeUpdate(
    {
      roundId: opts.roundIdInside ?? cfg.roundId,
      siteId: opts.siteIdInside ?? siteId,
      nonce: opts.nonce ?? newMessageNonce(),
      numExamples: opts.numExamples ?? 10,
      ...(opts.newExamples !== undefined ? { newExamples: opts.newExamples } : {}),
      metrics: { loss: 0.5 },
      delta,
    },
    opts.encoding ?? 'fp32',
  );
  const envelope = sealAndSign(payload, {
    roundId: cfg.roundId,
    recipientBoxPublicKey: cfg.coordinatorBoxPublicKey,
    signing: keys.signing,
  });
  return { roundId: cfg.roundId, envelope };
}

export { generateSiteKeys };

/** A coordinator task for tests: a fake model id and files, a tiny 2-label adapter, the fixed-metrics evaluator. */
export function tinyFakeTask(modelFiles: CoordinatorTask['modelFiles'] = []): CoordinatorTask {
  return {
    modelId: 'tiny-fake',
    modelFiles,
    lora: { r: 2, alpha: 4, dropout: 0, targetModules: ['query'], layers: null },
    labels: ['ham', 'spam'],
    pooling: 'mean',
    initialState: () => tinyAdapter(0),
    evaluator: new FakeEvaluator(),
  };
}
