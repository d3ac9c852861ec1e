// Command line + environment → a validated coordinator configuration. Any bad value stops startup with a message
// naming the flag (CONFIG_INVALID). The admin token is required and never printed.

import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { FedloraError } from '@fedlora/shared/errors.ts';
import {
  isStrategyName,
  strategyFlagHelp,
  strategyFlagSpec,
  strategyNames,
  strategyOptionsFromFlags,
  type StrategyName,
} from '@fedlora/shared/aggregation/index.ts';
import { LORA_TARGETS, type LoraConfig, type LoraTarget } from '@fedlora/shared/lora/config.ts';
import { POOLINGS, type Pooling } from '@fedlora/shared/model/classifier.ts';
import { DEFAULT_MODEL_DIR, DEFAULT_MODEL_ID } from '@fedlora/shared/node/default-model.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import {
  DEFAULT_SETTINGS,
  DEFAULT_STOP,
  updateSettings,
  type RoundSettings,
  type StopRules,
} from './rounds/settings';
import { parseAllowedOrigin } from './http/origin-check';
import { DEFAULT_LOGIN_LIMITS, type LoginLimits } from './http/login-limits';
import { DEFAULT_CONNECTION_GATE, type ConnectionGateOptions } from './socket/connection-gate';
import { LOG_FORMATS, type LogFormat } from './log';
import type { OidcSettings } from './users/oidc';
import { TASK_KINDS, type TaskKind } from './registry/types';

/** The usage, with the registered strategies and their option flags as their schemas declare them. */
export const coordinatorHelp = (): string => `fedlora-coordinator [options]
  Runs the federation coordinator: site enrollment, rounds, held-out evaluation and the adapter registry.
  fedlora-coordinator audit verify <data dir>: checks the audit trail's hash chain (docs/OPERATOR.md, "Audit trail").
  With no options but the admin token: the shipped fedlora-bert-mini, held-out = the 612-message SpamAssassin
  evaluation subset, FedAvg, rounds of all ready sites (at least 2), until stopped.

  --admin-token T        admin API token (or FEDLORA_ADMIN_TOKEN; required, ≥ 16 characters)
  --port N (8080)        --host H (127.0.0.1; 0.0.0.0 in containers)     port 0 = any free port
                         (or FEDLORA_PORT / FEDLORA_HOST, as docker-compose.yml sets them)
  --data-dir DIR         versions, rounds, sites (default .fedlora/coordinator, or FEDLORA_DATA_DIR)
                         more projects (federations with their own model, labels and sites) beside this one:
                         POST /api/projects, kept in DIR/projects.json (docs/OPERATOR.md, "Projects")
  --site-token NAME=T    create site NAME with join token T at startup if absent (repeatable; or
                         FEDLORA_SITE_TOKENS="name=T,name2=T2")
  --model DIR            Hugging Face BERT directory (default: the shipped fedlora-bert-mini)
  --model-id ID          base model id in the manifest (default: fedlora-bert-mini)
  --heldout FILE         held-out CSV/JSONL (default: embedded SpamAssassin evaluation subset); "none": the
                         coordinator holds no labelled data (needs --federated-eval and --labels)
  --federated-eval       every ready site started with --holdout scores each new version on its own held-out split
                         and returns only counts and a loss sum; the combined metrics (fed_accuracy, per site, worst
                         site) are recorded beside the central ones, or are the version's metrics with --heldout none
  --heldout-limit N      evaluate on a stratified subset of N held-out examples
  --labels a,b,…         label set (default: SpamAssassin's, or the sorted labels of --heldout)
  --text-column NAME     --label-column NAME    columns of --heldout (default: auto-detected)
  --rank N (8)  --alpha X (16)  --targets query,value  --pooling mean|cls|pooler (mean)  --seed N (0)
 masked-LM domain adaptation (docs/OPERATOR.md, "Domain adaptation (masked-LM federation)"):
  --task classification|mlm (classification)   mlm: sites train LoRA (every linear layer unless --targets) with the
                         masked-LM objective on the text column of their data; versions are scored by masked-LM loss
                         (promotion compares --promotion-metric loss unless given) and an admin merges one into a new
                         base with POST /api/versions/:id/merge (written to <data dir>/bases/<id>)
  --mlm-text FILE        held-out text for --task mlm, one document per line (required with it: the central
                         evaluation; federated evaluation does not score masked-LM versions)
  --head-transform       with --task mlm: train the MLM head's transform beside LoRA
 rounds:
  --strategy ${strategyNames().join('|')} (fedavg)
 strategy options (a flag sets that option of every strategy that has it; PUT /api/settings {strategyOptions} later):
${strategyFlagHelp().join('\n')}
  --sites-per-round X    fraction in (0, 1] ("1.0" = all ready sites) or a count ≥ 1 (default 1.0)
  --min-sites N (2)      --deadline-s S (300)   --sample-wait-s S (10)   --ack-timeout-s S (30)
  --local-epochs N (1)   --batch-size N (16)    --lr X (0.002)   --max-steps N (12)   --max-length N (64)
  --clip-norm X (1)      sites clip each local step's gradient to this global L2 norm (0 = off)
  --encoding fp32|fp16|int8 (fp32)    --max-upload-bytes N (auto)
 update bounds (docs/API.md, "Update policy"):
  --max-delta-norm X|auto (auto)       L2 bound on a delta; auto = what the sites' AdamW can move the adapter in
                                       --max-steps, then 3 × the median accepted norm of recent rounds
  --delta-norm-policy clip|reject (clip)   an update over the bound is scaled down to it, or refused
  --site-weights examples|equal (examples) FedAvg weight = the site's example count (capped), or 1 for every site
  --max-site-weight N|auto (auto)      cap on a site's weight; auto = 3 × the median count the round's sites declared
 client-level differential privacy (DP-FedAvg; docs/PRIVACY.md; size it first with npx fedlora-privacy):
  --dp-clip S            sites clip their delta to L2 norm S; the coordinator adds N(0, (z·S/m)²) to the mean
                         (m = sampled sites); off by default
  --dp-noise-multiplier Z              the noise multiplier z
  --dp-target-epsilon E                the ε budget: no round starts that would pass it; without
                                       --dp-noise-multiplier, z is found for --rounds rounds
  --dp-delta D (1e-5)                  the δ of (ε, δ); keep it below 1 / enrolled sites
 secure aggregation (SecAgg+; docs/SECAGG.md): the coordinator sees only the sum of the round's updates
  --secure-aggregation   every round masks the sites' updates; composes with --dp-*; needs an averaging strategy
  --secagg-degree K|auto (auto)        neighbours per site on the round's graph; auto = 2⌈log2 n⌉+1 (raise it, up
                                       to n−1, to survive more drops: docs/SECAGG.md)
  --secagg-threshold T|auto (auto)     shares that rebuild a secret, k/2 < T ≤ K; auto = ⌈K/2⌉+1 (also safe
                                       against one colluding site); lower survives more drops on a small graph
 several coordinator processes on one federation (docs/OPERATOR.md, "Scale-out"):
  --database-url URL     keep versions, rounds and sites in PostgreSQL (or FEDLORA_DATABASE_URL; migrations run at
                         start); default: files in --data-dir
  --redis-url URL        join the other processes through Redis (or FEDLORA_REDIS_URL; needs --database-url): sites
                         may connect to any process, and only the holder of the Postgres lease runs rounds
  --node-id ID (host-pid)              this process's name in logs
  --lease-s S (2)                      how often a follower tries to take over a leader that died
 promotion (docs/OPERATOR.md, "Promotion and approval"): each new version is a candidate until the policy decides
  --promotion always|auto|never-worse|manual (always)   always: every version becomes current; auto: when its metric
                                       ≥ the current's − tolerance; never-worse: when ≥ the current's; manual: an admin
                                       approves or rejects it (console, POST /api/versions/:id/approve|reject)
  --promotion-metric accuracy|macro_f1|loss (accuracy)  the held-out metric compared (loss: lower is better)
                         with --federated-eval also fed_accuracy|fed_macro_f1|fed_loss|fed_worst_site_accuracy
  --promotion-tolerance X (0)          how much worse than the current version auto still promotes
 continual re-training (docs/OPERATOR.md, "Continual re-training"): a triggered round runs once, whatever the stop
 rules say, never over a running round and never while paused (then it is skipped and logged)
  --schedule S           start a round on a timer: "every 6h" (s, m, h, d) or a cron expression of 5 fields
                         ("0 3 * * *" = 03:00 daily) or 6 (seconds first), in the coordinator's time zone
  --retrain-min-sites K  --retrain-min-new M   the data trigger: start a round once K ready sites report at least
                         M examples they have not trained on yet (both or neither)
 stopping (any that holds stops the rounds; the coordinator keeps serving):
  --rounds N             stop once N rounds made a version (counted across restarts; rounds without one do not count)
  --patience K           stop after K versions without a better held-out accuracy, and make the best version
                         that was ever current current again (recorded as an early-stop decision)
  --target-accuracy X    stop once a version reaches held-out accuracy X
  --paused               do not start rounds until POST /api/federation/start
  --exit-when-done       exit once a stop rule holds (default: keep serving the API)
  --backend NAME         tfjs backend for evaluation: tensorflow|webgpu|wasm|cpu (default: FEDLORA_BACKEND or auto)
 admin edge (the console's cookie and POST /api/login; Bearer requests are not affected):
  --allowed-origin URL   another origin whose cookie-authenticated writes are accepted, e.g. the public
                         https://host behind a reverse proxy (repeatable or comma list; or FEDLORA_ALLOWED_ORIGINS;
                         default: only the coordinator's own origin, Origin's host = Host)
  --login-attempts-per-minute N (10)   per client address, right or wrong
  --login-lockout-failures N (10)      consecutive wrong tokens that lock an address out
  --login-lockout-minutes M (15)       how long a locked-out address is refused
 site edge (docs/SECURITY.md):
  --max-unauthenticated-per-address N (32)  connections from one address that have not authenticated yet; behind a
                                       reverse proxy every site has the proxy's address: raise it to the sites that
                                       may connect at once
  --auth-deadline-s S (30)             a connection that has not authenticated (or enrolled and authenticated)
                                       within S seconds is closed
 TLS (docs/OPERATOR.md "TLS"; or terminate TLS at a reverse proxy, deploy/nginx.conf):
  --tls-cert FILE        serve HTTPS (the API, the console and the sites' socket) with this PEM certificate chain
  --tls-key FILE         and this PEM private key (both or neither; or FEDLORA_TLS_CERT / FEDLORA_TLS_KEY)
 console single sign-on with OpenID Connect (docs/OPERATOR.md "Single sign-on"; users must exist here, with a role):
  --oidc-issuer URL      the provider's issuer (https; http only on loopback) (or FEDLORA_OIDC_ISSUER); the client
                         secret comes from FEDLORA_OIDC_CLIENT_SECRET only (absent: a public client, PKCE)
  --oidc-client-id ID    this coordinator's client id at the provider (or FEDLORA_OIDC_CLIENT_ID)
  --oidc-redirect-url URL  the callback registered at the provider (default http(s)://HOST:PORT/auth/oidc/callback;
                         required behind a proxy or with --host 0.0.0.0)
  --oidc-username-claim NAME (preferred_username)  the claim that names the coordinator user
  --oidc-label TEXT      the console's sign-in button (default "Single sign-on")
 observability (docs/OBSERVABILITY.md):
  --metrics-token T      serve Prometheus metrics at /metrics for "Authorization: Bearer T" (or
                         FEDLORA_METRICS_TOKEN; ≥ 16 characters; never logged)
  --metrics-port N       serve /metrics on its own port (same --host; or FEDLORA_METRICS_PORT), for a scraper on a
                         private network; with a token as well, the token is needed there too
                         (neither flag: /metrics is not served at all)
  --log-format text|json (text)        stderr lines as "time event k=v" or one JSON object per line (pino; secrets
                                       redacted in both); or FEDLORA_LOG_FORMAT`;

export interface CoordinatorConfig {
  adminToken: string;
  port: number;
  host: string;
  dataDir: string;
  presetSites: { name: string; token: string }[];
  modelDir: string;
  modelId: string;
  /** what the federation trains (--task); 'mlm' needs mlmText */
  task: TaskKind;
  /** --task mlm: the held-out documents file, and whether the MLM head's transform trains too */
  mlmText?: string;
  headTransform: boolean;
  heldout?: string;
  heldoutLimit?: number;
  /** federated evaluation on the sites' held-out splits (eval/federated-evaluator.ts) */
  federatedEval: boolean;
  labels?: string[];
  textColumn?: string;
  labelColumn?: string;
  lora: LoraConfig;
  pooling: Pooling;
  seed: number;
  strategy: StrategyName;
  /** round settings, with every strategy's options (settings.strategyOptions) */
  settings: RoundSettings;
  stop: StopRules;
  paused: boolean;
  exitWhenDone: boolean;
  backend?: string;
  /** normalized origins (scheme://host[:port]) allowed besides the coordinator's own */
  allowedOrigins: string[];
  loginLimits: LoginLimits;
  /** unauthenticated socket connections: per-address cap and authentication deadline */
  connections: ConnectionGateOptions;
  /** /metrics behind this bearer token on the main port (and on metricsPort when both are set) */
  metricsToken?: string;
  /** /metrics on its own port */
  metricsPort?: number;
  /** serve HTTPS with these PEM files (main.ts reads them) */
  tls?: { certFile: string; keyFile: string };
  /** console sign-in through an OpenID provider (the client secret is never logged) */
  oidc?: OidcSettings;
  logFormat: LogFormat;
  /** PostgreSQL stores instead of files (never logged: it may hold a password) */
  databaseUrl?: string;
  /** cluster mode through Redis (never logged) */
  redisUrl?: string;
  nodeId: string;
  leaseMs: number;
}

const bad = (why: string) => new FedloraError('CONFIG_INVALID', why);

/** --oidc-*: all or nothing (an issuer needs a client id, and a client id an issuer). */
function oidcSettings(
  s: (name: string) => string | undefined,
  env: NodeJS.ProcessEnv,
  listen: { tls: boolean; host: string; port: string },
): { oidc?: OidcSettings } {
  const issuer = s('oidc-issuer') ?? env.FEDLORA_OIDC_ISSUER;
  const clientId = s('oidc-client-id') ?? env.FEDLORA_OIDC_CLIENT_ID;
  if (issuer === undefined && clientId === undefined) {
    for (const flag of ['oidc-redirect-url', 'oidc-username-claim', 'oidc-label'])
      if (s(flag) !== undefined) throw bad(`--${flag} needs --oidc-issuer and --oidc-client-id`);
    return {};
  }
  if (!issuer || !clientId) throw bad('OpenID Connect sign-in needs both --oidc-issuer URL and --oidc-client-id ID');
  let redirectUrl = s('oidc-redirect-url');
  if (redirectUrl === undefined) {
    if (['0.0.0.0', '::', '[::]'].includes(listen.host))
      throw bad(`--oidc-redirect-url is required with --host ${listen.host}: the callback URL the provider knows cannot be guessed`);
    const host = listen.host.includes(':') && !listen.host.startsWith('[') ? `[${listen.host}]` : listen.host;
    redirectUrl = `${listen.tls ? 'https' : 'http'}://${host}:${listen.port}/auth/oidc/callback`;
  }
  const secret = env.FEDLORA_OIDC_CLIENT_SECRET;
  return {
    oidc: {
      issuer,
      clientId,
      ...(secret ? { clientSecret: secret } : {}),
      redirectUrl,
      usernameClaim: s('oidc-username-claim') ?? 'preferred_username',
      label: s('oidc-label') ?? 'Single sign-on',
    },
  };
}

function tlsFiles(certFile: string | undefined, keyFile: string | undefined): { tls?: { certFile: string; keyFile: string } } {
  if (!certFile && !keyFile) return {};
  if (!certFile || !keyFile) throw bad('HTTPS needs both --tls-cert FILE and --tls-key FILE');
  return { tls: { certFile, keyFile } };
}

function int(
  v: string | undefined,
  flag: string,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw bad(`--${flag} must be an integer in [${min}, ${max}], got "${v}"`);
  return n;
}

function num(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || v.trim() === '') throw bad(`--${flag} must be a number, got "${v}"`);
  return n;
}

function parsePresets(items: string[]): { name: string; token: string }[] {
  return items.map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0 || eq === item.length - 1)
      throw bad('--site-token / FEDLORA_SITE_TOKENS entries must be NAME=TOKEN');
    const token = item.slice(eq + 1);
    if (token.length < 16)
      throw bad(`the join token for site "${item.slice(0, eq)}" must be at least 16 characters`);
    return { name: item.slice(0, eq), token };
  });
}

export function parseConfig(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): CoordinatorConfig | 'help' {
  const S = { type: 'string' } as const;
  let f: Record<string, string | boolean | string[] | undefined>;
  const fixed = {
    help: { type: 'boolean', short: 'h' },
    paused: { type: 'boolean' },
    'federated-eval': { type: 'boolean' },
    'head-transform': { type: 'boolean' },
    task: S,
    'mlm-text': S,
    'exit-when-done': { type: 'boolean' },
    'secure-aggregation': { type: 'boolean' },
    'site-token': { type: 'string', multiple: true },
    'allowed-origin': { type: 'string', multiple: true },
    'login-attempts-per-minute': S,
    'login-lockout-failures': S,
    'login-lockout-minutes': S,
    'max-unauthenticated-per-address': S,
    'auth-deadline-s': S,
    'metrics-token': S,
    'metrics-port': S,
    'tls-cert': S,
    'tls-key': S,
    'oidc-issuer': S,
    'oidc-client-id': S,
    'oidc-redirect-url': S,
    'oidc-username-claim': S,
    'oidc-label': S,
    'log-format': S,
    'database-url': S,
    'redis-url': S,
    'node-id': S,
    'lease-s': S,
    'admin-token': S,
    port: S,
    host: S,
    'data-dir': S,
    model: S,
    'model-id': S,
    heldout: S,
    'heldout-limit': S,
    labels: S,
    'text-column': S,
    'label-column': S,
    rank: S,
    alpha: S,
    targets: S,
    pooling: S,
    seed: S,
    strategy: S,
    'sites-per-round': S,
    'min-sites': S,
    'deadline-s': S,
    'sample-wait-s': S,
    'ack-timeout-s': S,
    'local-epochs': S,
    'batch-size': S,
    lr: S,
    'max-steps': S,
    'clip-norm': S,
    'max-length': S,
    encoding: S,
    'max-delta-norm': S,
    'delta-norm-policy': S,
    'site-weights': S,
    'max-site-weight': S,
    'max-upload-bytes': S,
    'dp-clip': S,
    'dp-noise-multiplier': S,
    'dp-target-epsilon': S,
    'dp-delta': S,
    'secagg-degree': S,
    'secagg-threshold': S,
    rounds: S,
    patience: S,
    'target-accuracy': S,
    promotion: S,
    'promotion-metric': S,
    'promotion-tolerance': S,
    schedule: S,
    'retrain-min-sites': S,
    'retrain-min-new': S,
    backend: S,
  } as const;
  try {
    f = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      // each strategy's options are flags as its schema declares them (--mu, --server-lr, …)
      options: { ...fixed, ...strategyFlagSpec(fixed) },
    }).values;
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (f.help) return 'help';
  const s = (k: string) => f[k] as string | undefined;

  const adminToken = s('admin-token') ?? env.FEDLORA_ADMIN_TOKEN;
  if (!adminToken) throw bad('an admin token is required: --admin-token or FEDLORA_ADMIN_TOKEN');
  if (adminToken.length < 16) throw bad('the admin token must be at least 16 characters');

  const strategy = s('strategy') ?? 'fedavg';
  if (!isStrategyName(strategy))
    throw bad(`--strategy must be one of ${strategyNames().join(', ')}, got "${strategy}"`);
  const pooling = (s('pooling') ?? DEFAULT_RECIPE.pooling) as Pooling;
  if (!POOLINGS.includes(pooling)) throw bad(`--pooling must be one of ${POOLINGS.join(', ')}`);
  const task = s('task') ?? 'classification';
  if (!(TASK_KINDS as readonly string[]).includes(task)) throw bad(`--task must be one of ${TASK_KINDS.join(', ')}, got "${task}"`);
  const mlm = task === 'mlm';
  if (mlm) {
    if (!s('mlm-text')) throw bad('--task mlm needs --mlm-text FILE: held-out text (one document per line) to score versions by masked-LM loss');
    for (const flag of ['heldout', 'heldout-limit', 'labels', 'text-column', 'label-column', 'pooling'])
      if (s(flag) !== undefined) throw bad(`--${flag} does not apply to --task mlm (no labels; held-out text comes from --mlm-text)`);
    if (f['federated-eval']) throw bad('--federated-eval does not apply to --task mlm: sites score classifiers; masked-LM versions are scored on --mlm-text');
  } else {
    for (const flag of ['mlm-text', 'head-transform'])
      if (f[flag] !== undefined) throw bad(`--${flag} needs --task mlm`);
  }
  // domain adaptation adapts every linear layer by default (pretrain --lora's default)
  const targets = (s('targets')?.split(',') ?? (mlm ? [...LORA_TARGETS] : DEFAULT_RECIPE.lora.targetModules)) as LoraTarget[];
  for (const t of targets)
    if (!LORA_TARGETS.includes(t))
      throw bad(`--targets: unknown module "${t}" (known: ${LORA_TARGETS.join(', ')})`);

  // round settings go through the same validator as PUT /api/settings; flag names are mapped to its fields
  const patch: Record<string, unknown> = {};
  // 'num|auto': a number, or "auto" (null: the coordinator derives it)
  const map: [string, string, 'num' | 'str' | 'num|auto'][] = [
    ['sites-per-round', 'sitesPerRound', 'str'],
    ['min-sites', 'minSites', 'num'],
    ['deadline-s', 'deadlineS', 'num'],
    ['sample-wait-s', 'sampleWaitS', 'num'],
    ['ack-timeout-s', 'ackTimeoutS', 'num'],
    ['local-epochs', 'localEpochs', 'num'],
    ['batch-size', 'batchSize', 'num'],
    ['lr', 'learningRate', 'num'],
    ['max-steps', 'maxSteps', 'num'],
    ['clip-norm', 'clipNorm', 'num'],
    ['max-length', 'maxLength', 'num'],
    ['encoding', 'encoding', 'str'],
    ['max-delta-norm', 'maxDeltaNorm', 'num|auto'],
    ['delta-norm-policy', 'deltaNormPolicy', 'str'],
    ['site-weights', 'siteWeights', 'str'],
    ['max-site-weight', 'maxSiteWeight', 'num|auto'],
    ['max-upload-bytes', 'maxUploadBytes', 'num'],
    ['dp-clip', 'dpClipNorm', 'num'],
    ['dp-noise-multiplier', 'dpNoiseMultiplier', 'num'],
    ['dp-target-epsilon', 'dpTargetEpsilon', 'num'],
    ['dp-delta', 'dpDelta', 'num'],
    ['secagg-degree', 'secaggDegree', 'num|auto'],
    ['secagg-threshold', 'secaggThreshold', 'num|auto'],
    ['rounds', 'rounds', 'num'],
    ['patience', 'patience', 'num'],
    ['target-accuracy', 'targetAccuracy', 'num'],
    ['promotion', 'promotion', 'str'],
    ['promotion-metric', 'promotionMetric', 'str'],
    ['promotion-tolerance', 'promotionTolerance', 'num'],
    ['schedule', 'schedule', 'str'],
    ['retrain-min-sites', 'retrainMinSites', 'num'],
    ['retrain-min-new', 'retrainMinNew', 'num'],
  ];
  // a masked-LM version's accuracy is masked-token accuracy; its loss is what domain adaptation lowers
  if (mlm && s('promotion-metric') === undefined) patch.promotionMetric = 'loss';
  for (const [flag, field, kind] of map)
    if (s(flag) !== undefined)
      patch[field] =
        kind === 'str' || (kind === 'num|auto' && s(flag) === 'auto') ? s(flag) : num(s(flag), flag);
  if (f['secure-aggregation']) patch.secureAggregation = true;
  // checked here for every strategy that has the option, so a bad value fails at startup whichever strategy runs first
  patch.strategyOptions = strategyOptionsFromFlags(f);
  let rs: { settings: RoundSettings; stop: StopRules };
  try {
    rs = updateSettings({ settings: DEFAULT_SETTINGS, stop: DEFAULT_STOP }, patch);
  } catch (err) {
    const field = /^(\w+)/.exec((err as Error).message)?.[1];
    const flag = map.find(([, fl]) => fl === field)?.[0];
    throw bad(
      flag
        ? `--${flag}: ${(err as Error).message.slice((field as string).length + 1)}`
        : (err as Error).message,
    );
  }

  if (f['exit-when-done'] && (rs.settings.schedule !== null || rs.settings.retrainMinSites !== null))
    throw bad('--exit-when-done cannot be combined with --schedule or --retrain-min-*: triggered rounds need the coordinator to keep running');

  if (s('heldout') === 'none' && !(f['federated-eval'] && s('labels')))
    throw bad('--heldout none needs --federated-eval (the sites evaluate) and --labels (the coordinator has no data to read them from)');

  const siteItems = [
    ...((f['site-token'] as string[] | undefined) ?? []),
    ...(env.FEDLORA_SITE_TOKENS?.split(',').filter(Boolean) ?? []),
  ];
  const allowedOrigins = [
    ...((f['allowed-origin'] as string[] | undefined) ?? []),
    ...(env.FEDLORA_ALLOWED_ORIGINS === undefined ? [] : [env.FEDLORA_ALLOWED_ORIGINS]),
  ]
    .flatMap((x) => x.split(','))
    .map((x) => x.trim())
    .filter(Boolean)
    .map(parseAllowedOrigin);
  const metricsToken = s('metrics-token') ?? env.FEDLORA_METRICS_TOKEN;
  if (metricsToken !== undefined && metricsToken.length < 16)
    throw bad('the metrics token must be at least 16 characters');
  const metricsPort = s('metrics-port') ?? env.FEDLORA_METRICS_PORT;
  const logFormat = s('log-format') ?? env.FEDLORA_LOG_FORMAT ?? 'text';
  if (!(LOG_FORMATS as readonly string[]).includes(logFormat))
    throw bad(`--log-format must be one of ${LOG_FORMATS.join(', ')}, got "${logFormat}"`);
  const databaseUrl = s('database-url') ?? env.FEDLORA_DATABASE_URL;
  const redisUrl = s('redis-url') ?? env.FEDLORA_REDIS_URL;
  if (redisUrl && !databaseUrl)
    throw bad('--redis-url needs --database-url: the processes of a cluster share their stores and leader lease in PostgreSQL');
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) throw bad('--database-url must be a postgres:// URL');
  if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) throw bad('--redis-url must be a redis:// or rediss:// URL');
  return {
    databaseUrl,
    redisUrl,
    nodeId: s('node-id') ?? `${hostname()}-${process.pid}`,
    leaseMs: Math.round((num(s('lease-s'), 'lease-s') ?? 2) * 1000),
    adminToken,
    port: int(s('port') ?? env.FEDLORA_PORT, 'port', 8080, 0, 65535),
    host: s('host') ?? env.FEDLORA_HOST ?? '127.0.0.1',
    dataDir: s('data-dir') ?? env.FEDLORA_DATA_DIR ?? '.fedlora/coordinator',
    presetSites: parsePresets(siteItems.map((x) => x.trim())),
    modelDir: s('model') ?? DEFAULT_MODEL_DIR,
    modelId: s('model-id') ?? DEFAULT_MODEL_ID,
    heldout: s('heldout'),
    task: task as TaskKind,
    ...(mlm ? { mlmText: s('mlm-text') } : {}),
    headTransform: Boolean(f['head-transform']),
    federatedEval: Boolean(f['federated-eval']),
    heldoutLimit:
      s('heldout-limit') === undefined ? undefined : int(s('heldout-limit'), 'heldout-limit', 0, 2),
    labels: s('labels')
      ?.split(',')
      .map((x) => x.trim()),
    textColumn: s('text-column'),
    labelColumn: s('label-column'),
    lora: {
      r: int(s('rank'), 'rank', DEFAULT_RECIPE.lora.r, 1, 1024),
      alpha: num(s('alpha'), 'alpha') ?? DEFAULT_RECIPE.lora.alpha,
      dropout: 0,
      targetModules: targets,
      layers: null,
    },
    pooling,
    seed: int(s('seed'), 'seed', 0),
    strategy,
    settings: rs.settings,
    stop: rs.stop,
    paused: Boolean(f.paused),
    exitWhenDone: Boolean(f['exit-when-done']),
    backend: s('backend'),
    allowedOrigins: [...new Set(allowedOrigins)],
    loginLimits: {
      attemptsPerWindow: int(
        s('login-attempts-per-minute'),
        'login-attempts-per-minute',
        DEFAULT_LOGIN_LIMITS.attemptsPerWindow,
        1,
        10_000,
      ),
      windowMs: 60_000, // the flag counts per minute
      maxFailures: int(
        s('login-lockout-failures'),
        'login-lockout-failures',
        DEFAULT_LOGIN_LIMITS.maxFailures,
        1,
        10_000,
      ),
      lockoutMs:
        int(
          s('login-lockout-minutes'),
          'login-lockout-minutes',
          DEFAULT_LOGIN_LIMITS.lockoutMs / 60_000,
          1,
          24 * 60,
        ) * 60_000,
    },
    connections: {
      maxPerAddress: int(
        s('max-unauthenticated-per-address'),
        'max-unauthenticated-per-address',
        DEFAULT_CONNECTION_GATE.maxPerAddress,
        1,
        1_000_000,
      ),
      authDeadlineMs:
        int(s('auth-deadline-s'), 'auth-deadline-s', DEFAULT_CONNECTION_GATE.authDeadlineMs / 1000, 1, 3600) * 1000,
    },
    metricsToken,
    metricsPort: metricsPort === undefined ? undefined : int(metricsPort, 'metrics-port', 0, 0, 65535),
    ...tlsFiles(s('tls-cert') ?? env.FEDLORA_TLS_CERT, s('tls-key') ?? env.FEDLORA_TLS_KEY),
    ...oidcSettings(s, env, { tls: (s('tls-cert') ?? env.FEDLORA_TLS_CERT) !== undefined, host: s('host') ?? env.FEDLORA_HOST ?? '127.0.0.1', port: s('port') ?? env.FEDLORA_PORT ?? '8080' }),
    logFormat: logFormat as LogFormat,
  };
}
