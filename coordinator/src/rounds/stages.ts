// The stages of one round as separate functions, run in ROUND_STAGES order by federation.ts, each under its own
// timeout: sample → configure → train → collect → aggregate → evaluate → version. A stage either lets the round go
// on or ends it (no new version). Each takes only the parts of the round it reads or sets: the plan fixed at the
// start, the round's inbox (inbox.ts: the sites' state and their updates), and what earlier stages produced. New
// stages slot in without touching the others: a secure round (secure-round.ts) adds setup and share-keys before
// train and unmask after collect, and its collect takes masked uploads (SECURE_ROUND_STAGES).

import { randomBytes } from 'node:crypto';
import { LIMITS } from '@fedlora/shared/protocol/limits.ts';
import { FedloraError, describeError } from '@fedlora/shared/errors.ts';
import { generateBoxKeyPair, type KeyPair } from '@fedlora/shared/crypto/keys.ts';
import type { RoundConfig, RoundStage } from '@fedlora/shared/protocol/messages.ts';
import type { AggregateOutcome, Strategy } from '@fedlora/shared/aggregation/strategy.ts';
import type { SecAggResult } from '@fedlora/shared/secagg/server.ts';
import { pack } from '@fedlora/shared/protocol/packed.ts';
import type { Logger } from '../log';
import type { AdapterStore, HeldoutMetrics, RoundRecord, TaskKind, VersionRecord } from '../registry/types';
import type { RoundInbox } from './inbox';
import type { Pulse } from './pulse';
import { sampleSize, type RoundSettings } from './settings';
import { siteWeightCap } from './update-bounds';
import { promotionDecision } from './promotion';
import type { Clock, Evaluator, RoundTransport } from './types';
import type { SecureRound } from './secure-round';
import type { RoundTrigger } from './schedule';

export interface RoundEnv {
  strategy: Strategy;
  transport: RoundTransport;
  evaluator: Evaluator;
  store: AdapterStore;
  clock: Clock;
  log: Logger;
  settings: RoundSettings;
  rng: () => number;
  /** aborts when the coordinator closes */
  signal: AbortSignal;
  /** false once the federation is paused: a round still sampling gives up */
  keepSampling: () => boolean;
  /** fires on availability changes and on pause */
  availability: Pulse;
  /** what the federation trains (default classification), recorded on each version */
  task?: TaskKind;
}

/** What a round is, fixed when it starts: its number and id, the version it trains from, the config, its key. */
export interface RoundPlan {
  round: number;
  roundId: string;
  startedAt: number;
  baseVersionId: string;
  /** the base adapter as sites get it (encodeAdapter bytes) and its SHA-256 */
  baseBytes: Uint8Array;
  baseSha256: string;
  config: RoundConfig;
  /** this round's X25519 key pair: sites seal their updates to the public half */
  key: KeyPair;
  /** why the round started (recorded with the round and its version) */
  trigger: RoundTrigger;
}

/** A round under way: its plan, its inbox, the stage it is in, and what each stage hands to the later ones. */
export interface RunningRound {
  readonly plan: RoundPlan;
  readonly inbox: RoundInbox;
  stage: RoundStage;
  /** when updates must have arrived: set by configure, which sends it to the sites */
  deadline: number;
  /** a secure round's protocol state (null: plaintext), and the unmasked sum its unmask stage produced */
  readonly secure: SecureRound | null;
  secureSum: SecAggResult | null;
  /** aggregate's new adapter, evaluate's held-out metrics, version's record */
  outcome: AggregateOutcome | null;
  metrics: HeldoutMetrics | null;
  version: VersionRecord | null;
}

/** The plan of round `round`: a fresh round id and X25519 key pair. */
export function newRoundPlan(a: Omit<RoundPlan, 'roundId' | 'key'>): RoundPlan {
  return { ...a, roundId: `r${a.round}-${randomBytes(4).toString('hex')}`, key: generateBoxKeyPair() };
}

export type StageResult = 'next' | StageEnd;
/** why a stage ended the round early (kept: no new version; cancelled: stopped while sampling) */
export type StageEnd = { end: 'kept' | 'cancelled'; reason: string };

/** What a round leaves in the registry: its plan, how it ended (null: through every stage), what its inbox saw. */
export function roundRecord(
  r: RunningRound,
  end: StageEnd | null,
  strategy: string,
  now: number,
): RoundRecord {
  const { plan } = r;
  return {
    round: plan.round,
    roundId: plan.roundId,
    startedAt: new Date(plan.startedAt).toISOString(),
    durationMs: now - plan.startedAt,
    outcome: end ? end.end : 'aggregated',
    reason: end?.reason ?? null,
    stage: r.stage,
    strategy,
    baseVersionId: plan.baseVersionId,
    versionId: r.version?.id ?? null,
    ...r.inbox.report(),
    config: plan.config,
    mode: r.secure ? 'secure' : 'plaintext',
    ...(r.secure?.record() ? { secureAggregation: r.secure.record() } : {}),
    // Multi-Krum names the updates it averaged (a plaintext strategy: under secure aggregation none is selected)
    ...(r.outcome?.contributors ? { selected: r.outcome.contributors } : {}),
    trigger: plan.trigger,
  };
}

/** Races `p` with a clock timer; the timer is cancelled when `p` settles. */
export async function raceTimer<T>(
  env: Pick<RoundEnv, 'clock' | 'signal'>,
  ms: number,
  p: Promise<T>,
  onTimeout: () => T | Promise<T>,
): Promise<T> {
  // no time limit (the sample stage waits for sites): setTimeout would clamp Infinity to 1 ms
  if (!Number.isFinite(ms)) return p;
  // the timer stops when `p` settles or the run is aborted. Not AbortSignal.any([ac.signal, env.signal]): on Node 20
  // each call leaves a WeakRef in the long-lived run signal for good (8 per round in the soak, scripts/heap-diff.ts)
  const ac = new AbortController();
  const stop = () => ac.abort(env.signal.reason);
  if (env.signal.aborted) stop();
  else env.signal.addEventListener('abort', stop, { once: true });
  const timer = env.clock.sleep(ms, ac.signal).then(() => onTimeout());
  timer.catch(() => {});
  try {
    return await Promise.race([p, timer]);
  } finally {
    env.signal.removeEventListener('abort', stop);
    ac.abort();
  }
}

function shuffle<T>(xs: T[], rng: () => number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

type SampleEnv = Pick<
  RoundEnv,
  'settings' | 'transport' | 'clock' | 'signal' | 'rng' | 'keepSampling' | 'availability'
>;

/** sample: wait for minSites ready sites (then up to sampleWaitS for the rest of the enrolled ones), pick some. */
async function sample(r: Pick<RunningRound, 'inbox'>, env: SampleEnv): Promise<StageResult> {
  const s = env.settings;
  let quorumSince: number | null = null;
  for (;;) {
    // taken before the count is awaited, so that a site coming or going meanwhile (or a pause) still wakes the loop
    const changed = env.availability.wait();
    const enrolled = await env.transport.enrolledCount();
    if (!env.keepSampling()) return { end: 'cancelled', reason: 'federation paused' };
    const avail = env.transport.available();
    if (avail.length >= s.minSites) {
      quorumSince ??= env.clock.now();
      const waited = env.clock.now() - quorumSince;
      if (avail.length >= enrolled || waited >= s.sampleWaitS * 1000) {
        const chosen = shuffle(avail, env.rng).slice(0, sampleSize(s, avail.length));
        const declared = chosen.map((a) => a.numExamples);
        r.inbox.admit(chosen, siteWeightCap(declared, s));
        return 'next';
      }
      await raceTimer(env, s.sampleWaitS * 1000 - waited, changed, () => undefined);
    } else {
      quorumSince = null;
      await raceTimer(env, 60_000, changed, () => undefined); // re-check now and then
    }
  }
}

/** why a send to a site failed, for the round record (the transport raises TIMEOUT when an ack does not come) */
function codeOf(err: unknown): string {
  return err instanceof FedloraError ? err.code : 'INTERNAL';
}

/** configure: set the deadline; send it, the hyper-parameters and the round key; who declines or is silent drops out. */
async function configure(
  r: Pick<RunningRound, 'plan' | 'inbox' | 'deadline' | 'secure'>,
  env: Pick<RoundEnv, 'settings' | 'transport' | 'clock'>,
): Promise<StageResult> {
  const { plan, inbox } = r;
  r.deadline = env.clock.now() + env.settings.deadlineS * 1000;
  // a secure round's quantization depends on how many sites were sampled and the weight cap
  const secureAggregation = r.secure?.begin(inbox.sampled.size, inbox.siteWeightCap);
  const timeout = env.settings.ackTimeoutS * 1000;
  await Promise.all(
    [...inbox.sampled].map(async (siteId) => {
      try {
        const accepted = await inbox.untilLeft(
          siteId,
          env.transport.configure(
            siteId,
            {
              roundId: plan.roundId,
              round: plan.round,
              config: plan.config,
              adapterVersionId: plan.baseVersionId,
              coordinatorBoxPublicKey: plan.key.publicKey,
              encoding: env.settings.encoding,
              deadline: r.deadline,
              ...(secureAggregation ? { secureAggregation } : {}),
            },
            timeout,
          ),
        );
        if (accepted) inbox.joined(siteId);
        else inbox.fail(siteId, 'DECLINED');
      } catch (err) {
        inbox.fail(siteId, codeOf(err)); // a no-op when the site already failed (left: DISCONNECTED)
      }
    }),
  );
  if (inbox.participants.size < env.settings.minSites)
    return {
      end: 'kept',
      reason: `${inbox.participants.size} site(s) accepted, fewer than minSites ${env.settings.minSites}`,
    };
  return 'next';
}

/** train: send the global adapter; from now on the inbox takes uploads. */
async function train(
  r: Pick<RunningRound, 'plan' | 'inbox' | 'secure'>,
  env: Pick<RoundEnv, 'settings' | 'transport'>,
): Promise<StageResult> {
  const { plan, inbox } = r;
  inbox.open();
  const timeout = env.settings.ackTimeoutS * 1000;
  await Promise.all(
    [...inbox.participants].map(async (siteId) => {
      try {
        await inbox.untilLeft(
          siteId,
          env.transport.train(
            siteId,
            {
              roundId: plan.roundId,
              // an adapter over the inline limit is named instead, and each site fetches it in hashed chunks
              ...(plan.baseBytes.byteLength > LIMITS.adapterInlineBytes
                ? { versionId: plan.baseVersionId, adapterBytes: plan.baseBytes.byteLength }
                : { adapter: plan.baseBytes }),
              adapterSha256: plan.baseSha256,
              // packed: one binary field per neighbour would pass socket.io's 10 attachments (protocol/packed.ts)
              ...(r.secure ? { secagg: pack(r.secure.sharesFor(siteId)) } : {}),
            },
            timeout,
          ),
        );
      } catch (err) {
        inbox.fail(siteId, codeOf(err)); // a no-op when the site already delivered or failed
      }
    }),
  );
  return 'next';
}

/** collect: until every participant delivered or failed, quorum became impossible, or the deadline passed. */
async function collect(
  r: Pick<RunningRound, 'inbox' | 'deadline'>,
  env: Pick<RoundEnv, 'settings' | 'clock' | 'signal'>,
): Promise<StageResult> {
  const { inbox } = r;
  const min = env.settings.minSites;
  try {
    while (inbox.pending.size > 0 && inbox.delivered.size + inbox.pending.size >= min) {
      const left = r.deadline - env.clock.now();
      if (left <= 0) break;
      await raceTimer(env, left, inbox.progress.wait(), () => undefined);
    }
  } finally {
    inbox.close();
  }
  for (const siteId of [...inbox.pending]) inbox.fail(siteId, 'TIMEOUT');
  if (inbox.delivered.size < min)
    return { end: 'kept', reason: `${inbox.delivered.size} update(s), fewer than minSites ${min}` };
  return 'next';
}

/** aggregate: the strategy's streaming aggregator already holds every accepted update. */
async function aggregate(r: Pick<RunningRound, 'inbox' | 'outcome' | 'secureSum'>): Promise<StageResult> {
  r.outcome = r.inbox.aggregate(r.secureSum);
  if (!r.outcome) return { end: 'kept', reason: 'the strategy kept the previous adapter' };
  return 'next';
}

/** evaluate: held-out metrics of the new adapter; a failure here still versions it, without metrics. */
async function evaluate(
  r: Pick<RunningRound, 'plan' | 'outcome' | 'metrics'>,
  env: Pick<RoundEnv, 'settings' | 'evaluator' | 'clock' | 'signal' | 'log'>,
): Promise<StageResult> {
  try {
    const ms = env.settings.evaluateTimeoutS * 1000;
    r.metrics = await raceTimer(
      env,
      ms,
      env.evaluator.evaluate((r.outcome as AggregateOutcome).adapter, {
        round: r.plan.round,
        roundId: r.plan.roundId,
        maxLength: env.settings.maxLength,
      }),
      () => {
        throw new FedloraError(
          'INTERNAL',
          `held-out evaluation took longer than ${env.settings.evaluateTimeoutS} s`,
        );
      },
    );
  } catch (err) {
    env.log('evaluate.failed', { round: r.plan.round, error: describeError(err) });
  }
  return 'next';
}

/**
 * version: store the adapter as a new immutable candidate, let the promotion policy decide (promotion.ts) and record
 * the decision; when it is promoted, tell every site. A candidate that is kept (or waits for an admin) leaves the
 * current version in place, and the next round trains from that.
 */
async function version(
  r: Pick<RunningRound, 'plan' | 'inbox' | 'outcome' | 'metrics' | 'version' | 'secure'>,
  env: Pick<RoundEnv, 'store' | 'strategy' | 'transport' | 'settings' | 'log' | 'task'>,
): Promise<StageResult> {
  const o = r.outcome as AggregateOutcome;
  const candidate = await env.store.addVersion(
    {
      parent: r.plan.baseVersionId,
      round: r.plan.round,
      strategy: env.strategy.name,
      sites: o.numResults,
      examples: o.numExamples,
      metrics: r.metrics,
      trainMetrics: o.metrics,
      uploadedBytes: r.inbox.report().uploadedBytes,
      mode: r.secure ? 'secure' : 'plaintext',
      trigger: r.plan.trigger,
      // a secure round's sites report their new examples in 'site:data' only: the masked upload carries no counts
      ...(r.secure ? {} : { newExamples: r.inbox.report().newExamples }),
      ...(env.task === 'mlm' ? { task: 'mlm' as const } : {}),
    },
    o.adapter,
    env.strategy.getState(),
    { candidate: true },
  );
  const currentId = await env.store.currentId();
  const current = currentId ? ((await env.store.get(currentId)) ?? null) : null;
  const decision = promotionDecision(env.settings, candidate, current);
  r.version = await env.store.decide(candidate.id, decision);
  env.log('version.decision', {
    id: candidate.id,
    action: decision.action,
    policy: decision.policy,
    metric: decision.metric,
    value: decision.value ?? undefined,
    current: decision.currentId ?? undefined,
    currentValue: decision.currentValue ?? undefined,
  });
  if (decision.action === 'promote') publish(env, r.version);
  return 'next';
}

/** Tells every site that `v` is the current version now. */
export function publish(env: Pick<RoundEnv, 'transport'>, v: VersionRecord): void {
  const m = v.metrics;
  env.transport.published({
    versionId: v.id,
    round: v.round,
    metrics: m ? { accuracy: m.accuracy, ...(m.macroF1 === undefined ? {} : { macroF1: m.macroF1 }), loss: m.loss } : {},
    adapterSha256: v.sha256,
  });
}

/** Each stage with the timeout it runs under (collect is bounded by the round deadline itself). */
export const STAGES: Record<
  RoundStage,
  { timeoutMs(s: RoundSettings): number; run(r: RunningRound, env: RoundEnv): Promise<StageResult> }
> = {
  sample: { timeoutMs: () => Infinity, run: sample },
  configure: { timeoutMs: (s) => s.ackTimeoutS * 1000 + 5_000, run: configure },
  setup: { timeoutMs: (s) => s.ackTimeoutS * 1000 + 5_000, run: (r, env) => secureOnly(r).setup(r, env) },
  'share-keys': { timeoutMs: (s) => s.ackTimeoutS * 1000 + 5_000, run: (r, env) => secureOnly(r).shareKeys(r, env) },
  train: { timeoutMs: (s) => s.ackTimeoutS * 1000 + 5_000, run: train },
  collect: { timeoutMs: (s) => s.deadlineS * 1000 + 5_000, run: collect },
  // two acks in a row (sign the survivor list, then reveal shares), and the unmasking itself
  unmask: { timeoutMs: (s) => 2 * s.ackTimeoutS * 1000 + 60_000, run: (r, env) => secureOnly(r).unmask(r, env) },
  aggregate: { timeoutMs: () => 120_000, run: (r) => aggregate(r) },
  evaluate: { timeoutMs: (s) => s.evaluateTimeoutS * 1000 + 5_000, run: evaluate },
  version: { timeoutMs: () => 120_000, run: version },
};

function secureOnly(r: RunningRound): SecureRound {
  if (!r.secure) throw new FedloraError('INTERNAL', 'a secure-aggregation stage ran in a plaintext round');
  return r.secure;
}
