// `npm run simulate` flags → typed SimOptions (strict, shared/command-line); errors name the flag and what it expects.

import { parseCommandLine } from '@fedlora/shared/node/command-line.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';
import {
  isStrategyName,
  strategyFlagHelp,
  strategyFlagSpec,
  strategyNames,
  strategyOptionsFromFlags,
  type StrategyName,
} from '@fedlora/shared/aggregation/index.ts';
import { ENCODINGS, type TensorEncoding } from '@fedlora/shared/protocol/quantize.ts';
import type { BackendName } from '@fedlora/shared/node/backend.ts';
import { LORA_TARGETS, validateLoraConfig, type LoraConfig, type LoraTarget } from '@fedlora/shared/lora/config.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import type { ArmConfig } from './federation';
import { ATTACK_KINDS, chooseAttackers, isAttackKind, type AttackPlan } from './attacks';
import { resolveNoiseMultiplier, takesSummedInput, type DpPlan, type SecureAggregationPlan } from './privacy';

/** The usage, with the registered strategies and their option flags as their schemas declare them. */
export const simHelp = (): string => `npm run simulate -- [options]
  Runs a federation of in-process virtual sites with the production strategy, trainer, codec and crypto, plus the
  centralized and local-only baselines, and writes metrics.json, accuracy.png/.svg and summary.md to the run folder.

  --dataset NAME        default (embedded SpamAssassin) | banking77 | medical-abstracts | FILE.csv|.jsonl
  --sites N (10)        registered virtual sites        --sites-per-round N (min(sites, 10))
  --rounds N (10)       --alpha A|iid (1.0)  Dirichlet label skew   --quantity-skew A  Dirichlet site sizes instead
  --straggler-prob P (0)  a straggler trains only a random part of its step budget (Li et al. 2020, FedProx §5)
  --dropout-prob P (0)    a dropped site never answers: a round failure
  --attack ${ATTACK_KINDS.join('|')}  --attackers F (0)  a seed-chosen fraction F of the sites uploads −10× its delta,
                        100× it, or N(0, 1) noise (for --strategy median,trimmed-mean,multi-krum against fedavg)
  --strategy LIST (fedavg)  any of ${strategyNames().join(',')}; several = several arms on the same partition and seed
  --local-epochs N (1)  --max-steps N (12) cap per round   --batch-size N (16)   --lr X (0.002)
 strategy options (a flag sets that option of every strategy that has it):
${strategyFlagHelp(24).join('\n')}
  --encoding fp32|fp16|int8 (fp32)   upload encoding of the deltas
  --rank N (8)  --lora-alpha X (16)  --targets LIST (query,value)  the adapter: LoRA rank, scale alpha/r and the
                        adapted modules of every layer (any of ${LORA_TARGETS.join(', ')})
  --max-length N (64)   --heldout-limit N (500)  stratified subset of the held-out set   --limit N  of the training set
  --local-sites N (10)  local-only baseline: number of sites evaluated (a seeded sample when there are more)
  --no-baselines        federated arms only
  --arms LIST           instead of --strategy/--no-baselines: any of ${[...strategyNames(), 'centralized', 'local-only'].join(',')}
                        (one arm per process: results are identical to the same arm in a combined run)
  --seed N (0)          --backend NAME   --out DIR (runs/<timestamp>-<dataset>)   --json   --quiet
 privacy (issue 17; docs/PRIVACY.md, docs/SECAGG.md):
  --secure-aggregation  the sampled sites' deltas go through SecAgg+ (masked, quantized); the strategy sees only their
                        sum. Averaging strategies only (not median, trimmed-mean, multi-krum); needs --sites-per-round >= 3
  --drop-rate P (0)     secure aggregation: each site still in the round drops with probability P at every SecAgg stage
                        (seeded); a round that loses too many neighbours of a site aborts and keeps the adapter
  --secagg-degree K     secure aggregation: neighbours per site (default 2*ceil(log2 n)+1, SecAgg+'s graph default)
  --secagg-clip C       secure aggregation without DP: per-coordinate clip before quantizing (default: the most the
                        sites' AdamW can move one weight in a round, lr * sum of step bounds over --max-steps)
  --dp-clip S           client-level DP (DP-FedAvg): sites clip their delta to L2 norm S; needs one of:
  --dp-noise-multiplier Z   noise std Z*S/m on the mean (m = --sites-per-round)
  --dp-target-epsilon E     the smallest Z whose epsilon after --rounds rounds at q = sites-per-round/sites is <= E
  --dp-delta D (1e-5)   the delta of the reported (epsilon, delta)`;

/** What every federated arm shares (ArmConfig, less its strategy), plus the data, the baselines and the output. */
export interface SimOptions extends Omit<ArmConfig, 'strategy'> {
  dataset: string;
  sites: number;
  /** null = IID */
  alpha: number | null;
  quantitySkew: number | null;
  strategies: StrategyName[];
  /** the adapter every arm trains (the product's recipe unless --rank/--lora-alpha/--targets) */
  lora: LoraConfig;
  maxLength: number;
  heldoutLimit: number | null;
  limit: number | null;
  localSites: number;
  /** run the centralized baseline (budget: the federation's planned samples per round) */
  centralized: boolean;
  /** run the local-only baseline */
  localOnly: boolean;
  seed: number;
  backend?: BackendName;
  out?: string;
  json: boolean;
  quiet: boolean;
}

export const DEFAULT_SIM_OPTIONS: SimOptions = {
  dataset: 'default',
  sites: 10,
  sitesPerRound: 10,
  rounds: 10,
  alpha: 1,
  quantitySkew: null,
  stragglerProb: 0,
  dropoutProb: 0,
  attack: null,
  secureAggregation: null,
  dp: null,
  strategies: ['fedavg'],
  localEpochs: 1,
  maxSteps: 12,
  batchSize: 16,
  learningRate: 2e-3,
  // each strategy's schema holds its defaults (FedProx mu 0.01, FedAdam eta 0.01, FedAvgM eta 1 and momentum 0.9)
  strategyOptions: {},
  encoding: 'fp32',
  lora: DEFAULT_RECIPE.lora,
  maxLength: 64,
  heldoutLimit: 500,
  limit: null,
  localSites: 10,
  centralized: true,
  localOnly: true,
  seed: 0,
  json: false,
  quiet: false,
};

const bad = (flag: string, why: string, got: unknown) =>
  new FedloraError('CONFIG_INVALID', `--${flag} ${why}, got "${String(got)}"`);

function int(v: unknown, flag: string, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw bad(flag, `must be an integer >= ${min}`, v);
  return n;
}

function num(v: unknown, flag: string, fallback: number, lo = 0, hi = Infinity): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < lo || n > hi) throw bad(flag, `must be a number in [${lo}, ${hi}]`, v);
  return n;
}

/**
 * --attack and --attackers together: an attack without a fraction, or a fraction without an attack, is refused (either
 * alone would run an honest federation that looks like an attacked one); --attackers 0 is an explicit honest run.
 */
function parseAttack(kind: unknown, fraction: unknown, sites: number, seed: number): AttackPlan | null {
  if (kind === undefined && fraction === undefined) return null;
  if (kind === undefined) throw bad('attackers', `needs --attack ${ATTACK_KINDS.join('|')}`, fraction);
  if (!isAttackKind(kind)) throw bad('attack', `must be one of ${ATTACK_KINDS.join(', ')}`, kind);
  if (fraction === undefined) throw bad('attack', 'needs --attackers F, the fraction of sites that attack', kind);
  const f = num(fraction, 'attackers', 0, 0, 0.999999);
  if (f === 0) return null;
  chooseAttackers(seed, sites, f); // refuses a fraction that names no site, at parse time
  return { kind, fraction: f };
}

type Flags = Record<string, string | boolean | undefined>;

/** --secure-aggregation and its settings; a setting without the flag is refused (it would do nothing). */
function parseSecureAggregation(f: Flags, sitesPerRound: number): SecureAggregationPlan | null {
  if (!f['secure-aggregation']) {
    for (const k of ['drop-rate', 'secagg-degree', 'secagg-clip'])
      if (f[k] !== undefined) throw bad(k, 'needs --secure-aggregation', f[k]);
    return null;
  }
  // SecAgg+ needs 3 sites: with 2, each learns the other's delta from the sum and its own
  if (sitesPerRound < 3) throw bad('secure-aggregation', 'needs --sites-per-round >= 3', sitesPerRound);
  return {
    dropRate: num(f['drop-rate'], 'drop-rate', 0, 0, 0.999999),
    degree: f['secagg-degree'] === undefined ? null : int(f['secagg-degree'], 'secagg-degree', 0, 2),
    clip: f['secagg-clip'] === undefined ? null : num(f['secagg-clip'], 'secagg-clip', 0, 1e-12),
  };
}

/** --dp-clip with --dp-noise-multiplier or --dp-target-epsilon (one of them), and --dp-delta. */
function parseDp(f: Flags, o: { sites: number; sitesPerRound: number; rounds: number }): DpPlan | null {
  const z = f['dp-noise-multiplier'];
  const target = f['dp-target-epsilon'];
  if (z === undefined && target === undefined) {
    for (const k of ['dp-clip', 'dp-delta'])
      if (f[k] !== undefined) throw bad(k, 'needs --dp-noise-multiplier Z or --dp-target-epsilon E (clipping alone guarantees nothing)', f[k]);
    return null;
  }
  if (z !== undefined && target !== undefined) throw bad('dp-noise-multiplier', 'and --dp-target-epsilon exclude each other: give one', z);
  if (f['dp-clip'] === undefined) throw bad('dp-clip', 'is needed with client-level DP (the L2 clip norm S of a site\'s delta)', undefined);
  const clipNorm = num(f['dp-clip'], 'dp-clip', 0, 1e-12);
  const delta = num(f['dp-delta'], 'dp-delta', 1e-5, 1e-300, 0.999999);
  const sampleRate = o.sitesPerRound / o.sites;
  const targetEpsilon = target === undefined ? null : num(target, 'dp-target-epsilon', 0, 1e-9);
  const noiseMultiplier =
    targetEpsilon === null ? num(z, 'dp-noise-multiplier', 0, 0) : resolveNoiseMultiplier(targetEpsilon, sampleRate, o.rounds, delta);
  return { clipNorm, noiseMultiplier, targetEpsilon, delta, sampleRate };
}

export function parseSimArgs(argv: string[]): SimOptions | 'help' {
  const s = { type: 'string' } as const;
  const fixed = {
    dataset: s, sites: s, 'sites-per-round': s, rounds: s, alpha: s, 'quantity-skew': s,
    'straggler-prob': s, 'dropout-prob': s, attack: s, attackers: s, strategy: s, 'local-epochs': s, 'max-steps': s,
    'batch-size': s, lr: s, encoding: s, rank: s, 'lora-alpha': s, targets: s, 'max-length': s, 'heldout-limit': s,
    'secure-aggregation': { type: 'boolean' }, 'drop-rate': s, 'secagg-degree': s, 'secagg-clip': s,
    'dp-clip': s, 'dp-noise-multiplier': s, 'dp-target-epsilon': s, 'dp-delta': s,
    limit: s, 'local-sites': s, 'no-baselines': { type: 'boolean' }, arms: s, seed: s, backend: s, out: s,
    json: { type: 'boolean' }, quiet: { type: 'boolean' }, help: { type: 'boolean' },
  } as const;
  // each strategy's options are flags as its schema declares them (--mu, --server-lr, --server-momentum, …)
  const f: Record<string, string | boolean | undefined> = parseCommandLine(argv, {
    ...fixed,
    ...strategyFlagSpec(fixed),
  }).values;
  if (f.help) return 'help';
  const d = DEFAULT_SIM_OPTIONS;
  const sites = int(f.sites, 'sites', d.sites);
  const sitesPerRound = int(f['sites-per-round'], 'sites-per-round', Math.min(sites, 10));
  if (sitesPerRound > sites) throw bad('sites-per-round', `must be <= --sites (${sites})`, sitesPerRound);
  const alphaRaw = f.alpha as string | undefined;
  const alpha = alphaRaw === 'iid' ? null : num(alphaRaw, 'alpha', d.alpha as number, 1e-6);
  let strategies: string[];
  let centralized = !f['no-baselines'];
  let localOnly = !f['no-baselines'];
  if (f.arms !== undefined) {
    if (f.strategy !== undefined || f['no-baselines']) throw bad('arms', 'replaces --strategy and --no-baselines: give one of them', f.arms);
    const arms = String(f.arms).split(',').map((x) => x.trim());
    const known = [...strategyNames(), 'centralized', 'local-only'];
    for (const a of arms) if (!known.includes(a)) throw bad('arms', `must be a comma list of ${known.join(', ')}`, a);
    if (new Set(arms).size !== arms.length) throw bad('arms', 'lists an arm twice', f.arms);
    strategies = arms.filter(isStrategyName);
    centralized = arms.includes('centralized');
    localOnly = arms.includes('local-only');
  } else {
    strategies = ((f.strategy as string | undefined) ?? 'fedavg').split(',').map((x) => x.trim());
    for (const st of strategies)
      if (!isStrategyName(st)) throw bad('strategy', `must be a comma list of ${strategyNames().join(', ')}`, st);
    if (new Set(strategies).size !== strategies.length) throw bad('strategy', 'lists a strategy twice', f.strategy);
  }
  const attack = parseAttack(f.attack, f.attackers, sites, int(f.seed, 'seed', d.seed, 0));
  const rounds = int(f.rounds, 'rounds', d.rounds);
  const secureAggregation = parseSecureAggregation(f, sitesPerRound);
  const dp = parseDp(f, { sites, sitesPerRound, rounds });
  for (const st of strategies)
    if ((secureAggregation || dp) && !takesSummedInput(st))
      throw bad(
        'strategy',
        `${st} needs the single updates, which ${secureAggregation ? '--secure-aggregation hides' : 'client-level DP does not noise'}: ` +
          'use an averaging strategy (fedavg, fedprox, fedadam, fedavgm) with it',
        st,
      );
  const encoding = ((f.encoding as string | undefined) ?? d.encoding) as TensorEncoding;
  if (!ENCODINGS.includes(encoding)) throw bad('encoding', `must be one of ${ENCODINGS.join(', ')}`, encoding);
  const targets = f.targets === undefined ? d.lora.targetModules : String(f.targets).split(',').map((x) => x.trim());
  for (const t of targets)
    if (!(LORA_TARGETS as readonly string[]).includes(t)) throw bad('targets', `must be a comma list of ${LORA_TARGETS.join(', ')}`, t);
  const lora = validateLoraConfig({
    ...d.lora,
    r: int(f.rank, 'rank', d.lora.r),
    alpha: num(f['lora-alpha'], 'lora-alpha', d.lora.alpha, 1e-9),
    targetModules: targets as LoraTarget[],
  });
  return {
    dataset: (f.dataset as string | undefined) ?? d.dataset,
    sites,
    sitesPerRound,
    rounds,
    alpha,
    quantitySkew: f['quantity-skew'] === undefined ? null : num(f['quantity-skew'], 'quantity-skew', 1, 1e-6),
    stragglerProb: num(f['straggler-prob'], 'straggler-prob', 0, 0, 1),
    dropoutProb: num(f['dropout-prob'], 'dropout-prob', 0, 0, 1),
    attack,
    secureAggregation,
    dp,
    strategies: strategies as StrategyName[],
    localEpochs: int(f['local-epochs'], 'local-epochs', d.localEpochs),
    maxSteps: int(f['max-steps'], 'max-steps', d.maxSteps),
    batchSize: int(f['batch-size'], 'batch-size', d.batchSize),
    learningRate: num(f.lr, 'lr', d.learningRate, 1e-9),
    strategyOptions: strategyOptionsFromFlags(f),
    encoding,
    lora,
    maxLength: int(f['max-length'], 'max-length', d.maxLength, 3),
    heldoutLimit: f['heldout-limit'] === undefined ? d.heldoutLimit : int(f['heldout-limit'], 'heldout-limit', 0),
    limit: f.limit === undefined ? null : int(f.limit, 'limit', 0),
    localSites: int(f['local-sites'], 'local-sites', d.localSites),
    centralized,
    localOnly,
    seed: int(f.seed, 'seed', d.seed, 0),
    backend: f.backend as BackendName | undefined,
    out: f.out as string | undefined,
    json: Boolean(f.json),
    quiet: Boolean(f.quiet),
  };
}
