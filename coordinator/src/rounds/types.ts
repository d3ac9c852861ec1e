// The seams of the round loop: it sees only a Strategy (shared/aggregation), a RoundTransport (send to a site
// with a timeout), an Evaluator and an AdapterStore. Concrete socket.io, model and disk code plug in from app.ts;
// in-memory fakes (fakes.ts) plug in for unit tests.

import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import type { ServerMessage } from '@fedlora/shared/protocol/events.ts';
import type {
  SecAggSetupReply,
  SecAggShareKeysMessage,
  SecAggShareKeysReply,
  SecAggSurvivorsMessage,
  SecAggSurvivorsReply,
  SecAggUnmaskMessage,
  SecAggUnmaskReply,
  EvaluateReply,
} from '@fedlora/shared/protocol/messages.ts';
import type { TensorEncoding } from '@fedlora/shared/protocol/quantize.ts';
import type { Awaitable, HeldoutMetrics } from '../registry/types';

export type ConfigureMessage = ServerMessage<'round:configure'>;
export type TrainMessage = ServerMessage<'round:train'>;
export type RoundClosedMessage = ServerMessage<'round:closed'>;
export type VersionPublishedMessage = ServerMessage<'version:published'>;
export type EvaluateMessage = ServerMessage<'round:evaluate'>;
/** the secure-aggregation exchanges: each a message to one site and its validated ack */
export type SecAggAsk = 'secagg:setup' | 'secagg:share-keys' | 'secagg:survivors' | 'secagg:unmask';

/** An authenticated site that declared itself ready ('site:ready'). */
export interface AvailableSite {
  siteId: string;
  numExamples: number;
  /** of numExamples, those the site has not trained on in a round yet ('site:ready' / 'site:data'; absent: not reported) */
  newExamples?: number;
  encodings: TensorEncoding[];
}

export interface RoundTransport {
  /** online, authenticated, ready sites */
  available(): AvailableSite[];
  /** enrolled, not revoked sites (the sample stage stops waiting for more once all of them are available) */
  enrolledCount(): Awaitable<number>;
  /** calls `listener` whenever availability changes; returns the unsubscribe function */
  onAvailabilityChange(listener: () => void): () => void;
  /** 'round:configure' with ack; resolves to the site's accept flag, rejects on timeout/disconnect/bad reply */
  configure(siteId: string, msg: ConfigureMessage, timeoutMs: number): Promise<boolean>;
  /** 'round:train' with ack; rejects on timeout/disconnect/bad reply */
  train(siteId: string, msg: TrainMessage, timeoutMs: number): Promise<void>;
  /** the site's Ed25519 identity key as enrolled (null: unknown or revoked): secure rounds verify signatures with it */
  identityKey(siteId: string): Awaitable<Uint8Array | null>;
  /**
   * secure rounds: one SecAgg exchange with ack (bodies packed on the wire: protocol/packed.ts); resolves to the
   * validated reply, rejects on timeout/disconnect/bad reply like configure
   */
  secaggSetup(siteId: string, msg: ServerMessage<'secagg:setup'>, timeoutMs: number): Promise<SecAggSetupReply>;
  secaggShareKeys(siteId: string, msg: SecAggShareKeysMessage, timeoutMs: number): Promise<SecAggShareKeysReply>;
  secaggSurvivors(siteId: string, msg: SecAggSurvivorsMessage, timeoutMs: number): Promise<SecAggSurvivorsReply>;
  secaggUnmask(siteId: string, msg: SecAggUnmaskMessage, timeoutMs: number): Promise<SecAggUnmaskReply>;
  /**
   * 'round:evaluate' with ack (federated evaluation): resolves to the site's aggregates or its NO_HOLDOUT decline,
   * validated by schema; rejects on timeout/disconnect/bad reply
   */
  evaluate(siteId: string, msg: EvaluateMessage, timeoutMs: number): Promise<EvaluateReply>;
  /** 'round:closed' to the round's sites (no ack) */
  closed(siteIds: readonly string[], msg: RoundClosedMessage): void;
  /** 'version:published' to every authenticated site (no ack) */
  published(msg: VersionPublishedMessage): void;
}

/** Which round's candidate an evaluation is of (absent: version 0 at the federation's start). */
export interface EvaluationContext {
  round: number;
  roundId: string;
  /** the round's tokens per example: sites evaluating the candidate use it too */
  maxLength: number;
}

export interface Evaluator {
  /** held-out evaluation of a global adapter state */
  evaluate(state: NamedTensors, context?: EvaluationContext): Promise<HeldoutMetrics>;
}

/** Time, injectable so that tests drive deadlines without sleeping. */
export interface Clock {
  now(): number;
  /** resolves after `ms`; rejects with the signal's reason when it aborts first */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const t = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(t);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};
