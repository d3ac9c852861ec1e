// Round settings and stop rules: one zod schema per field (its bounds and the message that names it), the defaults,
// and the one validator the command line, PUT /api/settings and the round loop share. Strategy options belong to the
// strategies (shared/aggregation): the settings keep every registered strategy's values under strategyOptions, and
// the round loop builds its strategy from them. The defaults are the federation recipe for CPUs (docs/fed-context):
// 64 tokens, batch 16, lr 2e-3, 1 local epoch capped at 12 steps, so that a round takes seconds per site on wasm.

import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import { z } from 'zod';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { ENCODINGS } from '@fedlora/shared/protocol/quantize.ts';
import {
  createStrategy,
  defaultStrategyOptions,
  isStrategyName,
  parseStrategyOptions,
  strategyDefinition,
  strategyNames,
  type Strategy,
  type StrategyName,
  type StrategyOptionValues,
} from '@fedlora/shared/aggregation/index.ts';
import { fieldErrors, parseFields } from '@fedlora/shared/schema-fields.ts';
import type { VersionRecord } from '../registry/types';
import { parseSchedule } from './schedule';

/** "0.5" = half of the available sites, "3" = three sites; a value < 1 or written with a "." is a fraction. */
export type SitesPerRound = { kind: 'fraction'; value: number } | { kind: 'count'; value: number };

export const DELTA_NORM_POLICIES = ['clip', 'reject'] as const;
export type DeltaNormPolicy = (typeof DELTA_NORM_POLICIES)[number];
export const SITE_WEIGHTS = ['examples', 'equal'] as const;
/** rounds/promotion.ts: what makes a new version current */
export const PROMOTION_POLICIES = ['always', 'auto', 'never-worse', 'manual'] as const;
export type PromotionPolicy = (typeof PROMOTION_POLICIES)[number];
/** held-out metrics a promotion compares (every version's HeldoutMetrics carries all three); loss: lower is better */
// fed_*: the federated evaluation's figures (--federated-eval), usable beside a central held-out set; without one
// the plain names are the federated figures too. fed_worst_site_accuracy promotes only what serves every site.
export const PROMOTION_METRICS = ['accuracy', 'macro_f1', 'loss', 'fed_accuracy', 'fed_macro_f1', 'fed_loss', 'fed_worst_site_accuracy'] as const;
export type PromotionMetric = (typeof PROMOTION_METRICS)[number];
export type SiteWeights = (typeof SITE_WEIGHTS)[number];

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

// ---- the field schemas: each message completes "<field> …" ----

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => {
  const error = `must be an integer in [${min}, ${max}]`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
};
const num = (min: number, max = Infinity, open = false) => {
  const error = `must be a number ${open ? '>' : '≥'} ${min}${max < Infinity ? ` and ≤ ${max}` : ''}`;
  const lower = open ? z.number({ error }).gt(min, { error }) : z.number({ error }).min(min, { error });
  return max < Infinity ? lower.max(max, { error }) : lower;
};
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `must be one of ${values.join(', ')}` });
/** null or "auto": the coordinator derives the value */
const auto = <S extends z.ZodType>(s: S) => z.preprocess((v) => (v === 'auto' ? null : v), s.nullable());

const SitesPerRoundSchema = z.unknown().transform((v, ctx): SitesPerRound => {
  try {
    if (typeof v === 'string' || typeof v === 'number') return parseSitesPerRound(String(v));
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message.replace(/^sitesPerRound /, '') });
    return z.NEVER;
  }
  const o = v as SitesPerRound | null;
  if (o && o.kind === 'fraction' && typeof o.value === 'number' && o.value > 0 && o.value <= 1)
    return { kind: o.kind, value: o.value };
  if (o && o.kind === 'count' && Number.isInteger(o.value) && o.value >= 1) return { kind: o.kind, value: o.value };
  ctx.addIssue({ code: 'custom', message: 'must be a fraction in (0, 1] or a count ≥ 1' });
  return z.NEVER;
});

/**
 * Options by strategy name, each checked by that strategy's own schema (shared/aggregation): a patch gives any options
 * of any registered strategies; the settings hold every registered strategy's complete options.
 */
const StrategyOptionsSchema = z
  .record(z.string(), z.record(z.string(), z.unknown(), { error: 'must be an object of options' }), {
    error: 'must be an object {<strategy>: {<option>: value}}',
  })
  .superRefine((byName, ctx) => {
    for (const [name, options] of Object.entries(byName)) {
      if (!isStrategyName(name)) {
        ctx.addIssue({ code: 'custom', path: [name], message: `is not a strategy (known: ${strategyNames().join(', ')})` });
        continue;
      }
      const shape = strategyDefinition(name).options.shape;
      for (const [key, value] of Object.entries(options)) {
        const field = Object.hasOwn(shape, key) ? (shape[key] as z.ZodType) : null;
        if (!field) {
          const known = Object.keys(shape).join(', ') || 'none';
          ctx.addIssue({ code: 'custom', path: [name, key], message: `is not an option of ${name} (known: ${known})` });
          continue;
        }
        const r = field.safeParse(value, fieldErrors);
        for (const iss of r.error?.issues ?? [])
          ctx.addIssue({ code: 'custom', path: [name, key, ...iss.path], message: iss.message });
      }
    }
  });

const SETTINGS_FIELDS = {
  sitesPerRound: SitesPerRoundSchema,
  /** fewer sites available than this: the round waits; fewer updates: no new version */
  minSites: int(1, 10_000),
  /** seconds from configure until uploads are refused */
  deadlineS: num(0, 86_400, true),
  /** once minSites are available, seconds to wait for the other enrolled sites before sampling */
  sampleWaitS: num(0, 86_400),
  /** seconds a site has to ack 'round:configure' / 'round:train' */
  ackTimeoutS: num(0, 3_600, true),
  /** seconds the held-out evaluation of a new adapter may take */
  evaluateTimeoutS: num(0, 86_400, true),
  localEpochs: int(1, 1000),
  batchSize: int(1, 65_536),
  learningRate: num(0, 10, true),
  maxSteps: int(1, 1_000_000),
  /** sites clip each local step's gradient to this global L2 norm (0 = off); the recipe's 1.0 by default */
  clipNorm: num(0, 1e6),
  maxLength: int(8, 512),
  encoding: oneOf(ENCODINGS),
  /**
   * bound on the L2 norm (over all tensors) of an update's delta; null = adaptive (update-bounds.ts): the most the
   * sites' AdamW can move the adapter in maxSteps steps, then 3 × the median accepted norm of recent rounds
   */
  maxDeltaNorm: auto(num(0, Infinity, true)),
  /** an update over the bound: 'clip' scales its delta down to the bound, 'reject' refuses it (DELTA_INVALID) */
  deltaNormPolicy: oneOf(DELTA_NORM_POLICIES),
  /** FedAvg weight of an update: 'examples' = its example count (capped), 'equal' = every site the same */
  siteWeights: oneOf(SITE_WEIGHTS),
  /** cap on an update's weight in examples; null = 3 × the median count declared by the round's sampled sites */
  maxSiteWeight: auto(int(1, 1e9)),
  /** sealed upload size limit; null = 2 × the fp32 adapter + 64 KiB */
  maxUploadBytes: int(1024, 64 * 1024 * 1024).nullable(),
  /** each strategy's own options (FedProx's mu, FedAdam's and FedAvgM's server step); the running one uses its own */
  strategyOptions: StrategyOptionsSchema,
  /**
   * client-level differential privacy (DP-FedAvg, rounds/privacy-budget.ts): sites clip their delta to this L2 norm
   * and the coordinator adds Gaussian noise to the mean; null = off
   */
  dpClipNorm: num(0, Infinity, true).nullable(),
  /** the noise std over the clip norm; null = the smallest that keeps the rounds stop rule's rounds within dpTargetEpsilon */
  dpNoiseMultiplier: num(0, Infinity, true).nullable(),
  /** the ε budget: no round starts that would take the ε spent past it; null = no budget (then dpNoiseMultiplier is needed) */
  dpTargetEpsilon: num(0, Infinity, true).nullable(),
  /** the δ of the (ε, δ) guarantee; keep it below 1 / enrolled sites */
  dpDelta: z.number({ error: 'must be a number in (0, 1)' }).gt(0, { error: 'must be a number in (0, 1)' }).lt(1, { error: 'must be a number in (0, 1)' }),
  /** SecAgg+ (rounds/secure-round.ts): the coordinator sees only the sum of the round's masked updates */
  secureAggregation: z.boolean({ error: 'must be true or false' }),
  /** neighbours per site on a secure round's graph; null = 2⌈log2 n⌉+1 (shared/secagg/graph.ts) */
  secaggDegree: auto(int(2, 255)),
  /**
   * shares that reconstruct a secret (k/2 < t ≤ k); null = ⌈k/2⌉+1, which also holds if one neighbour colludes with
   * the coordinator. A lower t survives more drops on a small graph (4 sites: k = 3, t = 2 survives one drop).
   */
  secaggThreshold: auto(int(2, 255)),
  /**
   * what makes a new version current (rounds/promotion.ts): 'always' every version; 'auto' when its metric ≥ the
   * current's − promotionTolerance; 'never-worse' when its metric ≥ the current's; 'manual' an admin approves or rejects
   * it (POST /api/versions/:id/approve|reject). A version not promoted stays a candidate; rounds train from the current.
   */
  promotion: oneOf(PROMOTION_POLICIES),
  /** the held-out metric 'auto' and 'never-worse' compare */
  promotionMetric: oneOf(PROMOTION_METRICS),
  /** how much worse than the current version 'auto' still promotes (in the metric's units) */
  promotionTolerance: num(0, 1e6),
  /**
   * continual re-training (rounds/schedule.ts): start a round on this schedule — "every 6h" or a cron expression —
   * whenever none runs and the federation is not paused; null = no schedule
   */
  schedule: z
    .string({ error: 'must be "every N<s|m|h|d>", a cron expression or null' })
    .max(200, { error: 'must be at most 200 characters' })
    .superRefine((text, ctx) => {
      try {
        parseSchedule(text);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `is not valid: ${(err as Error).message}` });
      }
    })
    .nullable(),
  /** the data trigger: start a round once this many ready sites report ≥ retrainMinNew new examples; null = off */
  retrainMinSites: int(1, 10_000).nullable(),
  /** the data trigger's count of examples a site has not trained on yet; null = off */
  retrainMinNew: int(1, 1e9).nullable(),
};

const STOP_FIELDS = {
  /**
   * stop once this many rounds made a version (counted across restarts); a round that ends without one (no or too
   * few updates) does not count, so rounds nobody could join do not use up the run; null = no limit
   */
  rounds: int(0).nullable(),
  /** stop after this many versions without a better held-out accuracy; null = off */
  patience: int(1).nullable(),
  /** stop once a version reaches this held-out accuracy; null = off */
  targetAccuracy: num(0, 1).nullable(),
};

export const RoundSettingsSchema = z.object(SETTINGS_FIELDS).strict();
export type RoundSettings = z.output<typeof RoundSettingsSchema>;
export const StopRulesSchema = z.object(STOP_FIELDS).strict();
export type StopRules = z.output<typeof StopRulesSchema>;

/**
 * PUT /api/settings: any subset of the settings and stop rules, and the strategy to run from the next round. Strategy
 * options go under strategyOptions.<strategy>, so that one name never means two things (FedAdam's and FedAvgM's eta).
 */
export const SettingsPatchSchema = z
  .object({
    ...SETTINGS_FIELDS,
    ...STOP_FIELDS,
    strategy: z
      .string({ error: () => `must be one of ${strategyNames().join(', ')}` })
      .refine(isStrategyName, { error: () => `must be one of ${strategyNames().join(', ')}` }),
  })
  .partial()
  .strict();
export type SettingsPatch = z.output<typeof SettingsPatchSchema>;

const PATCH_KEYS = Object.keys(SettingsPatchSchema.shape);

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
  clipNorm: DEFAULT_RECIPE.clipNorm,
  maxLength: 64,
  encoding: 'fp32',
  // derived from the adapter and the learning rate each round, then from honest norms (update-bounds.ts)
  maxDeltaNorm: null,
  // clipping keeps an honest outlier's direction and holds a poisoned update to the bound
  deltaNormPolicy: 'clip',
  siteWeights: 'examples',
  maxSiteWeight: null,
  maxUploadBytes: null,
  // each strategy's schema holds its defaults (FedProx mu 0.01, FedAdam eta 1e-2, FedAvgM momentum 0.9, …)
  strategyOptions: defaultStrategyOptions(),
  dpClipNorm: null,
  dpNoiseMultiplier: null,
  dpTargetEpsilon: null,
  // the customary 1e-5: below 1 / sites for any federation of up to 100,000 sites
  dpDelta: 1e-5,
  secureAggregation: false,
  secaggDegree: null,
  secaggThreshold: null,
  // 'always' keeps what `npm start` did before promotion policies existed (every version becomes current, and the
  // patience stop rule restores the best one): with the default small held-out set a version's accuracy is noisy, so
  // a strict policy out of the box would stall a demo federation on one lucky early version. Operators who need a
  // gate choose auto, never-worse or manual (docs/OPERATOR.md, "Promotion and approval").
  promotion: 'always',
  promotionMetric: 'accuracy',
  promotionTolerance: 0,
  schedule: null,
  retrainMinSites: null,
  retrainMinNew: null,
};

export const DEFAULT_STOP: StopRules = { rounds: null, patience: null, targetAccuracy: null };

/** A patch of the settings, checked (unknown or bad field: CONFIG_INVALID naming it). */
export function parseSettingsPatch(patch: unknown): SettingsPatch {
  return parseFields(SettingsPatchSchema, patch, {
    root: 'settings',
    unknown: (k) => `${k} is not a setting (known: ${PATCH_KEYS.join(', ')})`,
  });
}

/**
 * Every registered strategy's complete options: `current`'s values with `patch`'s on top, the schemas' defaults for
 * the rest (a strategy registered after the settings were made gets its defaults).
 */
export function mergeStrategyOptions(
  current: Readonly<Record<StrategyName, StrategyOptionValues>>,
  patch: Readonly<Record<StrategyName, StrategyOptionValues>> = {},
): Record<StrategyName, StrategyOptionValues> {
  return Object.fromEntries(
    strategyNames().map((n) => [
      n,
      parseStrategyOptions(n, {
        ...(Object.hasOwn(current, n) ? current[n] : {}),
        ...(Object.hasOwn(patch, n) ? patch[n] : {}),
      }),
    ]),
  );
}

/** `s` with every registered strategy's options complete. */
export function withStrategyDefaults(s: RoundSettings): RoundSettings {
  return { ...s, strategyOptions: mergeStrategyOptions(s.strategyOptions) };
}

/** Applies a checked patch (its `strategy` is the round loop's to act on): the new settings and stop rules. */
export function applySettingsPatch(
  current: { settings: RoundSettings; stop: StopRules },
  patch: SettingsPatch,
): { settings: RoundSettings; stop: StopRules } {
  const { strategy: _strategy, strategyOptions, ...fields } = patch;
  const settings: Record<string, unknown> = { ...current.settings };
  const stop: Record<string, unknown> = { ...current.stop };
  for (const [k, v] of Object.entries(fields)) (Object.hasOwn(STOP_FIELDS, k) ? stop : settings)[k] = v;
  settings.strategyOptions = mergeStrategyOptions(current.settings.strategyOptions, strategyOptions);
  const next = { settings: settings as RoundSettings, stop: stop as StopRules };
  const spr = next.settings.sitesPerRound;
  if (spr.kind === 'count' && spr.value < next.settings.minSites)
    throw bad('sitesPerRound', `(${spr.value}) must be at least minSites (${next.settings.minSites})`);
  checkDpSettings(next.settings, next.stop);
  if ((next.settings.retrainMinSites === null) !== (next.settings.retrainMinNew === null))
    throw bad(
      next.settings.retrainMinSites === null ? 'retrainMinSites' : 'retrainMinNew',
      'is needed too: the data trigger is "retrainMinSites sites with >= retrainMinNew new examples"',
    );
  if (next.settings.secureAggregation && next.settings.minSites < 3)
    throw bad('minSites', `(${next.settings.minSites}) must be at least 3 under secure aggregation: the sum of two updates reveals each to the other site`);
  return next;
}

/** The DP settings that make sense together: noise needs a clip norm, and a clip norm needs noise or a budget. */
function checkDpSettings(s: RoundSettings, stop: StopRules): void {
  if (s.dpClipNorm === null) {
    if (s.dpNoiseMultiplier !== null || s.dpTargetEpsilon !== null)
      throw bad('dpClipNorm', 'is needed for client-level DP (dpNoiseMultiplier or dpTargetEpsilon is set)');
    return;
  }
  if (s.dpNoiseMultiplier === null && s.dpTargetEpsilon === null)
    throw bad('dpNoiseMultiplier', 'or dpTargetEpsilon is needed with dpClipNorm');
  if (s.dpNoiseMultiplier === null && stop.rounds === null)
    throw bad('dpTargetEpsilon', 'without dpNoiseMultiplier needs the rounds stop rule: the noise is found for that many rounds');
}

/**
 * `{proximalMu: 0.5}` while FedProx runs means `{strategyOptions: {fedprox: {proximalMu: 0.5}}}`: an option of the
 * strategy the patch is about (its `strategy`, else the running one) may be given flat, as the flags give it. Names
 * of settings win; anything else stays where it is, for the schema to refuse with the known fields.
 */
export function expandStrategyShorthand(patch: unknown, running: StrategyName): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const p = patch as Record<string, unknown>;
  const target = typeof p.strategy === 'string' && isStrategyName(p.strategy) ? p.strategy : running;
  if (!isStrategyName(target)) return patch;
  const optionNames = Object.keys(strategyDefinition(target).options.shape);
  const flat = Object.keys(p).filter((k) => !PATCH_KEYS.includes(k) && optionNames.includes(k));
  if (flat.length === 0) return patch;
  const rest = Object.fromEntries(Object.entries(p).filter(([k]) => !flat.includes(k)));
  const given = (p.strategyOptions ?? {}) as Record<string, Record<string, unknown>>;
  if (typeof given !== 'object' || given === null) return patch;
  return {
    ...rest,
    strategyOptions: {
      ...given,
      [target]: { ...(Object.hasOwn(given, target) ? given[target] : {}), ...Object.fromEntries(flat.map((k) => [k, p[k]])) },
    },
  };
}

/** Validates a partial update of the settings and stop rules (unknown or bad field: CONFIG_INVALID naming it). */
export function updateSettings(
  current: { settings: RoundSettings; stop: StopRules },
  patch: unknown,
): { settings: RoundSettings; stop: StopRules } {
  return applySettingsPatch(current, parseSettingsPatch(patch));
}

/** The strategy `name` as these settings configure it: its options, and minResults = minSites. */
export function strategyFromSettings(name: StrategyName, s: RoundSettings): Strategy {
  const options = Object.hasOwn(s.strategyOptions, name) ? s.strategyOptions[name] : {};
  return createStrategy(name, { ...options, minResults: s.minSites });
}

/** How many of `available` sites to sample. */
export function sampleSize(s: RoundSettings, available: number): number {
  const want =
    s.sitesPerRound.kind === 'count' ? s.sitesPerRound.value : Math.ceil(s.sitesPerRound.value * available);
  return Math.min(available, Math.max(want, s.minSites));
}

/** Which stop rule holds for these versions (in creation order), or null. */
export function stopRuleHolding(stop: StopRules, allVersions: readonly VersionRecord[]): string | null {
  return stopRule(stop, allVersions)?.reason ?? null;
}

/** The stop rule that holds for these versions (in creation order) and why, or null. */
export function stopRule(
  stop: StopRules,
  allVersions: readonly VersionRecord[],
): { rule: 'rounds' | 'targetAccuracy' | 'patience'; reason: string } | null {
  const { rounds, patience, targetAccuracy } = stop;
  // rounds that made a version: version 0 is the initial adapter, not a round
  const versionedRounds = allVersions.filter((v) => v.round > 0).length;
  if (rounds !== null && versionedRounds >= rounds) return { rule: 'rounds', reason: `${rounds} round(s) made a version` };
  const versions = allVersions.filter((v) => v.metrics);
  const acc = (i: number) => versions[i].metrics?.accuracy ?? 0;
  const last = versions.length - 1;
  if (targetAccuracy !== null && last >= 0 && versions[last].round > 0 && acc(last) >= targetAccuracy)
    return { rule: 'targetAccuracy', reason: `accuracy ${acc(last).toFixed(4)} reached the target ${targetAccuracy}` };
  if (patience !== null && last >= 0) {
    let best = 0;
    for (let i = 1; i <= last; i++) if (acc(i) > acc(best)) best = i;
    if (last - best >= patience)
      return { rule: 'patience', reason: `no better accuracy in ${last - best} version(s) (patience ${patience})` };
  }
  return null;
}
