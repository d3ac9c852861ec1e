// What the adapter registry records: immutable versions (one per aggregated round, plus version 0 = the initial
// adapter) and the history of rounds, and the AdapterStore interface the round loop and the API see.

import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { sha256Hex } from '@fedlora/shared/crypto/hash.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';
import type { StrategyState } from '@fedlora/shared/aggregation/strategy.ts';
import type { RoundConfig } from '@fedlora/shared/protocol/messages.ts';
import type { RoundTrigger } from '../rounds/schedule';

export interface ClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/** One site's evaluation of a version on its own held-out split (aggregates it returned, never an example). */
export interface SiteEvaluationMetrics {
  siteId: string;
  examples: number;
  accuracy: number;
  macroF1: number;
  loss: number;
}

/**
 * Federated evaluation of a version (eval/federated-evaluator.ts): the sites' confusion matrices and loss sums
 * combined, which equals one evaluation on the union of their held-out splits, plus each site's own figures.
 */
export interface FederatedMetrics {
  accuracy: number;
  macroF1: number;
  loss: number;
  examples: number;
  perClass: ClassMetrics[];
  /** the lowest site accuracy and its site: one badly served site is not hidden by the mean */
  worstSiteAccuracy: number;
  worstSite: string;
  sites: SiteEvaluationMetrics[];
  /** sites asked that returned nothing usable, and why (NO_HOLDOUT, TIMEOUT, BAD_MESSAGE, …) */
  missing: { siteId: string; code: string }[];
}

/**
 * Held-out evaluation of one global adapter: on the coordinator's held-out set, or, when it has none and federated
 * evaluation is on, the federated figures themselves (then `federated` holds the same numbers with the per-site rows).
 */
export interface HeldoutMetrics {
  /** absent: a classifier's figures; 'mlm' (a masked-LM federation, eval/mlm-task.ts): loss is the mean cross-entropy
   * per masked token of the held-out text, accuracy the masked-token accuracy, examples its sequences, no macroF1 */
  task?: 'mlm';
  accuracy: number;
  /** absent for a masked-LM version */
  macroF1?: number;
  loss: number;
  examples: number;
  perClass: ClassMetrics[];
  /** masked-LM: the masked tokens scored */
  maskedTokens?: number;
  /** where the figures above come from: 'central' (the default when absent) or 'federated' */
  source?: 'central' | 'federated';
  /** federated evaluation (--federated-eval), beside the central figures or as them */
  federated?: FederatedMetrics;
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
  /**
   * where the version stands in promotion (issue 20): 'candidate' = published, not (yet) made current; 'promoted' =
   * made current at least once (it may since have been replaced); 'rejected' = an admin rejected it. Absent before
   * issue 20: 'promoted' (every version became current then). Whether it is current now is the store's currentId().
   */
  status?: VersionStatus;
  /** every promotion decision about this version, oldest first (absent before issue 20: none) */
  decisions?: PromotionDecision[];
  /** why the round that made it started, and how many of its examples were new to the sites (absent before issue 20) */
  trigger?: RoundTrigger;
  newExamples?: number;
  /** what the federation trains (issue 24): absent = classification, 'mlm' = a masked-LM (domain adaptation) adapter */
  task?: TaskKind;
}

/** The federation task kinds: a classifier (LoRA + head) on labelled data, or masked-LM domain adaptation. */
export const TASK_KINDS = ['classification', 'mlm'] as const;
export type TaskKind = (typeof TASK_KINDS)[number];

export type VersionStatus = 'candidate' | 'promoted' | 'rejected';

/**
 * What was decided about a version: 'promote' (made current by the policy or an explicit promote), 'keep' (the
 * policy left it a candidate), 'wait' (manual policy: waits for an admin), 'approve' / 'reject' (an admin's verdict on
 * a candidate), 'restore' (early stopping made the best version current again).
 */
export type DecisionAction = 'promote' | 'keep' | 'wait' | 'approve' | 'reject' | 'restore';

export interface PromotionDecision {
  action: DecisionAction;
  /** who decided: 'policy' (the round loop's promotion policy), 'early-stop', 'system', or the admin ('admin (token)', 'admin (session <hash prefix>)') — never a secret */
  actor: string;
  /** why, in words (an admin's reason as given) */
  reason: string;
  /** the promotion policy in force, the metric compared and the values compared (null: not evaluated) */
  policy?: string;
  metric?: string;
  value?: number | null;
  /** the version that was current when the decision was taken, and its value of the metric */
  currentId?: string | null;
  currentValue?: number | null;
  /** ISO time */
  at: string;
}

/** actions that make the version current */
export const PROMOTING_ACTIONS: readonly DecisionAction[] = ['promote', 'approve', 'restore'];

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

export type NewVersion = Omit<VersionRecord, 'id' | 'createdAt' | 'sha256' | 'bytes' | 'status' | 'decisions'>;

/** The record of version `id` whose native bytes are `native`: what every AdapterStore stores beside them. */
export async function versionRecord(
  v: NewVersion,
  id: string,
  native: Uint8Array,
  o: { candidate?: boolean } = {},
): Promise<VersionRecord> {
  return {
    ...v,
    id,
    createdAt: new Date().toISOString(),
    sha256: await sha256Hex(native),
    bytes: native.byteLength,
    status: o.candidate ? 'candidate' : 'promoted',
    decisions: [],
  };
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
  /** why the round started (rounds/schedule.ts; absent before issue 20) */
  trigger?: RoundTrigger;
  /** Σ examples of the accepted plaintext updates, and of those the sites had not trained on before (absent before issue 20) */
  examples?: number;
  newExamples?: number;
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
 * A settings change made while the coordinator runs (PUT /settings), kept beside the versions so that a restart, or a
 * cluster's next leader, applies it again over the command line's settings (rounds/federation.ts init).
 */
export interface SettingsChange {
  /** ISO 8601 */
  at: string;
  /** the patch as PUT /settings received it: validated when it was made, and again when it is applied at start */
  patch: Record<string, unknown>;
}

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
  /**
   * stores a new immutable version: current (status 'promoted') unless `o.candidate`, then a candidate for the
   * promotion policy or an admin to decide on (the current pointer does not move)
   */
  addVersion(
    v: NewVersion,
    state: NamedTensors,
    strategyState: StrategyState | null,
    o?: { candidate?: boolean },
  ): Promise<VersionRecord>;
  /**
   * makes an existing version current (promote, or roll back to an older one), whatever its status (a rejected
   * version too: an explicit promote is the only way back for it); records `decision` when given
   */
  promote(id: string, decision?: PromotionDecision): Promise<VersionRecord>;
  /**
   * records a decision about version `id`, atomically with what it does: promote/approve/restore make it current
   * (approve only a candidate), reject marks a candidate rejected, keep/wait only record. CONFLICT when the version is
   * not a candidate for approve/reject; NOT_FOUND for an unknown id.
   */
  decide(id: string, decision: PromotionDecision): Promise<VersionRecord>;
  rounds(): Awaitable<RoundRecord[]>;
  addRound(r: RoundRecord): Promise<void>;
  /** the run-time settings changes, oldest first */
  settingsChanges(): Awaitable<SettingsChange[]>;
  /** appends one; resolves once it is durable */
  addSettingsChange(c: SettingsChange): Promise<void>;
}

/**
 * The version record after `d` (shared by every store so that they agree): its new status, and whether it becomes
 * current. Throws CONFLICT when the decision does not apply to the version's status.
 */
export function applyDecision(v: VersionRecord, d: PromotionDecision, currentId: string | null): { record: VersionRecord; current: boolean } {
  const status = v.status ?? 'promoted';
  if ((d.action === 'approve' || d.action === 'reject') && status !== 'candidate')
    throw new FedloraError(
      'CONFLICT',
      `${v.id} is ${status === 'promoted' && v.id === currentId ? 'current' : status}, not a candidate: only a candidate can be ${d.action === 'approve' ? 'approved' : 'rejected'}${status === 'rejected' && d.action === 'approve' ? ' (promote it explicitly to use it after all)' : ''}`,
    );
  const current = PROMOTING_ACTIONS.includes(d.action);
  const next: VersionStatus = current ? 'promoted' : d.action === 'reject' ? 'rejected' : status;
  return { record: { ...v, status: next, decisions: [...(v.decisions ?? []), d] }, current };
}
