// What the adapter registry records: immutable versions (one per aggregated round, plus version 0 = the initial
// adapter) and the history of rounds, and the AdapterStore interface the round loop and the API see.

import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { sha256Hex } from '@fedlora/shared/crypto/hash.ts';
import type { StrategyState } from '@fedlora/shared/aggregation/strategy.ts';
import type { RoundConfig } from '@fedlora/shared/protocol/messages.ts';

export interface ClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/** Held-out evaluation of one global adapter on the coordinator. */
export interface HeldoutMetrics {
  accuracy: number;
  macroF1: number;
  loss: number;
  examples: number;
  perClass: ClassMetrics[];
}

export interface VersionRecord {
  /** "v0", "v1", … in creation order */
  id: string;
  /** the version the round trained from (null for v0) */
  parent: string | null;
  /** the round that produced it (0 = initial adapter) */
  round: number;
  strategy: string;
  /** contributing sites (a count, not identities) */
  sites: number;
  /** Σ examples of the contributing sites */
  examples: number;
  /** held-out metrics (null if evaluation failed or timed out) */
  metrics: HeldoutMetrics | null;
  /** example-weighted mean of the sites' training metrics */
  trainMetrics: Record<string, number>;
  createdAt: string;
  /** SHA-256 of the native content (encodeAdapter bytes) */
  sha256: string;
  /** size of the native content */
  bytes: number;
  /** upload bytes (sealed envelopes) accepted in the round that produced it */
  uploadedBytes: number;
  /** how the round aggregated: 'secure' = SecAgg+, the coordinator held only the sum (absent before issue 17: plaintext) */
  mode?: AggregationMode;
}

export type AggregationMode = 'plaintext' | 'secure';

/** A secure-aggregation round's protocol figures: counts only, never which sites contributed. */
export interface RoundSecureAggregation {
  /** sites whose masked update is in the sum */
  contributors: number;
  /** sites that finished share-keys but did not upload (their masks were removed from their neighbours' shares) */
  dropped: number;
  /** neighbours per site on the round's graph, and the Shamir threshold t */
  degree: number;
  threshold: number;
  /** quantization: per-coordinate clip c, levels Q, and the largest weight a site could bring */
  clip: number;
  levels: number;
  maxWeight: number;
}

export type NewVersion = Omit<VersionRecord, 'id' | 'createdAt' | 'sha256' | 'bytes'>;

/** The record of version `id` whose native bytes are `native`: what every AdapterStore stores beside them. */
export async function versionRecord(v: NewVersion, id: string, native: Uint8Array): Promise<VersionRecord> {
  return { ...v, id, createdAt: new Date().toISOString(), sha256: await sha256Hex(native), bytes: native.byteLength };
}

export interface RoundFailureRecord {
  siteId: string;
  code: string;
}

export interface RoundRecord {
  round: number;
  roundId: string;
  startedAt: string;
  durationMs: number;
  /** aggregated = new version; kept = the old adapter stays; cancelled = stopped before sites were contacted */
  outcome: 'aggregated' | 'kept' | 'cancelled';
  /** why the round ended without a version, if it did */
  reason: string | null;
  /** the last stage reached */
  stage: string;
  strategy: string;
  baseVersionId: string | null;
  versionId: string | null;
  sampled: number;
  participants: number;
  updates: number;
  /** sampled sites that did not deliver, with the cause (TIMEOUT, DISCONNECTED, DECLINED, a reported or rejection code) */
  failures: RoundFailureRecord[];
  /** every rejected upload, even from a site that later delivered */
  rejections: RoundFailureRecord[];
  /** sealed bytes of the accepted uploads */
  uploadedBytes: number;
  /** accepted uploads' size per site (for the benchmarks: bytes per site per round) */
  bytesPerUpload: number[];
  /** the largest FedAvg weight (examples) one update carried; 1 with equal weights; null = no cap (absent before issue 23) */
  weightCap?: number | null;
  /** the L2 bound this round applied to update deltas (absent before issue 23) */
  deltaNormBound?: number;
  /** accepted updates whose delta was scaled down to deltaNormBound, with their norm as sent */
  clipped?: { siteId: string; norm: number }[];
  /** the local-training config the round's sites got, as the strategy set it (e.g. FedProx's proximalMu; absent before issue 16) */
  config?: RoundConfig;
  /** what client-level DP spent in this round (rounds/privacy-budget.ts); absent when the round ran without DP or released nothing */
  privacy?: RoundPrivacy;
  /** plaintext or secure aggregation (absent before issue 17: plaintext) */
  mode?: AggregationMode;
  /** a secure round's figures, once its setup ran (counts only) */
  secureAggregation?: RoundSecureAggregation;
  /** Multi-Krum: the sites whose updates the strategy averaged (plaintext rounds only) */
  selected?: string[];
}

/** One DP round's mechanism and its cost: enough to rebuild the accountant from the round history after a restart. */
export interface RoundPrivacy {
  /** q = sampled sites / enrolled sites */
  sampleRate: number;
  noiseMultiplier: number;
  clipNorm: number;
  /** m, the denominator of the noisy mean */
  expectedParticipants: number;
  /** z·S/m, the std of the noise added to each coordinate of the mean delta */
  noiseStd: number;
  delta: number;
  /** ε of this round alone, for δ */
  roundEpsilon: number;
  /** ε of every DP round so far, this one included, for δ */
  epsilon: number;
}

/** A value now or later: what a store's read returns, so that a database store can answer asynchronously. */
export type Awaitable<T> = T | Promise<T>;

/**
 * The round loop's and the API's view of the registry. Callers await every method: the file registry
 * (registry.ts) answers reads from its in-memory index at once, a database store (a later issue) with a query.
 */
export interface AdapterStore {
  list(): Awaitable<VersionRecord[]>;
  get(id: string): Awaitable<VersionRecord | undefined>;
  /** the promoted version rounds train from (null before v0 exists) */
  currentId(): Awaitable<string | null>;
  /** highest round number of any version or round record (0 if none) */
  lastRound(): Awaitable<number>;
  loadState(id: string): Promise<NamedTensors>;
  /** encodeAdapter() bytes, hash-checked */
  loadNative(id: string): Promise<Uint8Array>;
  loadStrategyState(id: string): Promise<StrategyState | null>;
  /** stores a new immutable version and makes it current */
  addVersion(v: NewVersion, state: NamedTensors, strategyState: StrategyState | null): Promise<VersionRecord>;
  /** makes an existing version current (promote, or roll back to an older one) */
  promote(id: string): Promise<VersionRecord>;
  rounds(): Awaitable<RoundRecord[]>;
  addRound(r: RoundRecord): Promise<void>;
}
