// Round settings and stop rules: defaults, and the one validator used by the command line and PUT /api/settings.
// The defaults are the federation recipe for CPUs (docs/fed-context): 64 tokens, batch 16, lr 2e-3, 1 local epoch
// capped at 12 steps, so that a round takes seconds per site on the wasm backend.

import { FedloraError } from '@fedlora/shared/errors.ts';
import { ENCODINGS, type TensorEncoding } from '@fedlora/shared/protocol/quantize.ts';
import type { VersionRecord } from '../registry/types';

/** "0.5" = half of the available sites, "3" = three sites; a value < 1 or written with a "." is a fraction. */
export type SitesPerRound = { kind: 'fraction'; value: number } | { kind: 'count'; value: number };

export interface RoundSettings {
  sitesPerRound: SitesPerRound;
  /** fewer sites available than this: the round waits; fewer updates: no new version */
  minSites: number;
  /** seconds from configure until uploads are refused */
  deadlineS: number;
  /** once minSites are available, seconds to wait for the other enrolled sites before sampling */
  sampleWaitS: number;
  /** seconds a site has to ack 'round:configure' / 'round:train' */
  ackTimeoutS: number;
  /** seconds the held-out evaluation of a new adapter may take */
  evaluateTimeoutS: number;
  localEpochs: number;
  batchSize: number;
  learningRate: number;
  maxSteps: number;
  maxLength: number;
  /** FedProx's mu (only the fedprox strategy sends it) */
  proximalMu: number;
  encoding: TensorEncoding;
  /**
   * bound on the L2 norm (over all tensors) of an update's delta; null = adaptive (update-bounds.ts): the most the
   * sites' AdamW can move the adapter in maxSteps steps, then 3 × the median accepted norm of recent rounds
   */
  maxDeltaNorm: number | null;
  /** an update over the bound: 'clip' scales its delta down to the bound, 'reject' refuses it (DELTA_INVALID) */
  deltaNormPolicy: DeltaNormPolicy;
  /** FedAvg weight of an update: 'examples' = its example count (capped), 'equal' = every site the same */
  siteWeights: SiteWeights;
  /** cap on an update's weight in examples; null = 3 × the median count declared by the round's sampled sites */
  maxSiteWeight: number | null;
  /** sealed upload size limit; null = 2 × the fp32 adapter + 64 KiB */
  maxUploadBytes: number | null;
}

export const DELTA_NORM_POLICIES = ['clip', 'reject'] as const;
export type DeltaNormPolicy = (typeof DELTA_NORM_POLICIES)[number];
export const SITE_WEIGHTS = ['examples', 'equal'] as const;
export type SiteWeights = (typeof SITE_WEIGHTS)[number];

export interface StopRules {
  /**
   * stop once this many rounds made a version (counted across restarts); a round that ends without one (no or too
   * few updates) does not count, so rounds nobody could join do not use up the run; null = no limit
   */
  rounds: number | null;
  /** stop after this many versions without a better held-out accuracy; null = off */
  patience: number | null;
  /** stop once a version reaches this held-out accuracy; null = off */
  targetAccuracy: number | null;
}

export const DEFAULT_SETTINGS: RoundSettings = {
  sitesPerRound: { kind: 'fraction', value: 1 },
  minSites: 2,
  deadlineS: 300,
  sampleWaitS: 10,
  ackTimeoutS: 30,
  evaluateTimeoutS: 900,
  localEpochs: 1,
  batchSize: 16,
  learningRate: 2e-3,
  maxSteps: 12,
  maxLength: 64,
  proximalMu: 0.01,
  encoding: 'fp32',
  // derived from the adapter and the learning rate each round, then from honest norms (update-bounds.ts)
  maxDeltaNorm: null,
  // clipping keeps an honest outlier's direction and holds a poisoned update to the bound
  deltaNormPolicy: 'clip',
  siteWeights: 'examples',
  maxSiteWeight: null,
  maxUploadBytes: null,
};

export const DEFAULT_STOP: StopRules = { rounds: null, patience: null, targetAccuracy: null };

export function parseSitesPerRound(s: string): SitesPerRound {
  const v = Number(s);
  if (!Number.isFinite(v) || v <= 0)
    throw bad('sitesPerRound', `must be a fraction in (0, 1] or a count ≥ 1, got "${s}"`);
  if (v < 1 || s.includes('.')) {
    if (v > 1) throw bad('sitesPerRound', `a fraction must be at most 1, got "${s}"`);
    return { kind: 'fraction', value: v };
  }
  return { kind: 'count', value: v };
}

function bad(field: string, why: string): FedloraError {
  return new FedloraError('CONFIG_INVALID', `${field} ${why}`);
}

/** A check returns the (normalized) value or throws a plain Error saying what is expected. */
type Check = (v: unknown) => unknown;
const fail = (why: string): never => {
  throw new Error(why);
};
const int =
  (min: number, max = Number.MAX_SAFE_INTEGER): Check =>
  (v) =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max
      ? v
      : fail(`must be an integer in [${min}, ${max}]`);
const num =
  (min: number, max = Infinity, open = false): Check =>
  (v) =>
    typeof v === 'number' && Number.isFinite(v) && (open ? v > min : v >= min) && v <= max
      ? v
      : fail(`must be a number ${open ? '>' : '≥'} ${min}${max < Infinity ? ` and ≤ ${max}` : ''}`);
const nullable =
  (c: Check): Check =>
  (v) =>
    v === null ? null : c(v);
/** null or "auto": the coordinator derives the value */
const auto =
  (c: Check): Check =>
  (v) =>
    v === null || v === 'auto' ? null : c(v);
const oneOf =
  (values: readonly string[]): Check =>
  (v) =>
    values.includes(v as string) ? v : fail(`must be one of ${values.join(', ')}`);

const SETTINGS_CHECKS: { [K in keyof RoundSettings]: Check } = {
  sitesPerRound: (v) => {
    if (typeof v === 'string' || typeof v === 'number') return parseSitesPerRound(String(v));
    const o = v as SitesPerRound | null;
    if (o && o.kind === 'fraction' && typeof o.value === 'number' && o.value > 0 && o.value <= 1)
      return { ...o };
    if (o && o.kind === 'count' && Number.isInteger(o.value) && o.value >= 1) return { ...o };
    return fail('must be a fraction in (0, 1] or a count ≥ 1');
  },
  minSites: int(1, 10_000),
  deadlineS: num(0, 86_400, true),
  sampleWaitS: num(0, 86_400),
  ackTimeoutS: num(0, 3_600, true),
  evaluateTimeoutS: num(0, 86_400, true),
  localEpochs: int(1, 1000),
  batchSize: int(1, 65_536),
  learningRate: num(0, 10, true),
  maxSteps: int(1, 1_000_000),
  maxLength: int(8, 512),
  proximalMu: num(0, 1e6),
  encoding: oneOf(ENCODINGS),
  maxDeltaNorm: auto(num(0, Infinity, true)),
  deltaNormPolicy: oneOf(DELTA_NORM_POLICIES),
  siteWeights: oneOf(SITE_WEIGHTS),
  maxSiteWeight: auto(int(1, 1e9)),
  maxUploadBytes: nullable(int(1024, 64 * 1024 * 1024)),
};

const STOP_CHECKS: { [K in keyof StopRules]: Check } = {
  rounds: nullable(int(0)),
  patience: nullable(int(1)),
  targetAccuracy: nullable(num(0, 1)),
};

function applyChecks<T extends object>(
  base: T,
  patch: Record<string, unknown>,
  checks: Record<string, Check>,
): T {
  const out = { ...base } as Record<string, unknown>;
  for (const [k, v] of Object.entries(patch)) {
    if (!Object.hasOwn(checks, k))
      throw bad(k, `is not a setting (known: ${Object.keys(checks).join(', ')})`);
    try {
      out[k] = checks[k](v);
    } catch (err) {
      throw bad(k, (err as Error).message.replace(/^sitesPerRound /, ''));
    }
  }
  return out as T;
}

/** Validates a partial update of the settings and stop rules (unknown or bad field: CONFIG_INVALID naming it). */
export function updateSettings(
  current: { settings: RoundSettings; stop: StopRules },
  patch: Record<string, unknown>,
): { settings: RoundSettings; stop: StopRules } {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch))
    throw bad('settings', 'must be an object');
  const sPatch: Record<string, unknown> = {};
  const stopPatch: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(patch)) (Object.hasOwn(STOP_CHECKS, k) ? stopPatch : sPatch)[k] = v;
  const settings = applyChecks(current.settings, sPatch, SETTINGS_CHECKS);
  const stop = applyChecks(current.stop, stopPatch, STOP_CHECKS);
  if (settings.sitesPerRound.kind === 'count' && settings.sitesPerRound.value < settings.minSites)
    throw bad(
      'sitesPerRound',
      `(${settings.sitesPerRound.value}) must be at least minSites (${settings.minSites})`,
    );
  return { settings, stop };
}

/** How many of `available` sites to sample. */
export function sampleSize(s: RoundSettings, available: number): number {
  const want =
    s.sitesPerRound.kind === 'count' ? s.sitesPerRound.value : Math.ceil(s.sitesPerRound.value * available);
  return Math.min(available, Math.max(want, s.minSites));
}

/** Which stop rule holds for these versions (in creation order), or null. */
export function stopRuleHolding(stop: StopRules, allVersions: readonly VersionRecord[]): string | null {
  const { rounds, patience, targetAccuracy } = stop;
  // rounds that made a version: version 0 is the initial adapter, not a round
  const versionedRounds = allVersions.filter((v) => v.round > 0).length;
  if (rounds !== null && versionedRounds >= rounds) return `${rounds} round(s) made a version`;
  const versions = allVersions.filter((v) => v.metrics);
  const acc = (i: number) => versions[i].metrics?.accuracy ?? 0;
  const last = versions.length - 1;
  if (targetAccuracy !== null && last >= 0 && versions[last].round > 0 && acc(last) >= targetAccuracy)
    return `accuracy ${acc(last).toFixed(4)} reached the target ${targetAccuracy}`;
  if (patience !== null && last >= 0) {
    let best = 0;
    for (let i = 1; i <= last; i++) if (acc(i) > acc(best)) best = i;
    if (last - best >= patience)
      return `no better accuracy in ${last - best} version(s) (patience ${patience})`;
  }
  return null;
}
