// The stages of one round as separate functions, run in ROUND_STAGES order by federation.ts, each under its own
// timeout: sample → configure → train → collect → aggregate → evaluate → version. A stage either lets the round go
// on or ends it (no new version). New stages (SecAgg key exchange, unmasking) slot in without touching the others.

import { randomBytes } from 'node:crypto';
import { FedloraError, describeError } from '@fedlora/shared/errors.ts';
import { generateBoxKeyPair } from '@fedlora/shared/crypto/keys.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import type { KeyPair } from '@fedlora/shared/crypto/keys.ts';
import type { RoundStage } from '@fedlora/shared/protocol/messages.ts';
import type {
  AggregateOutcome,
  RoundAggregator,
  RoundConfig,
  Strategy,
} from '@fedlora/shared/aggregation/strategy.ts';
import type { Logger } from '../log';
import type { AdapterStore, HeldoutMetrics, RoundFailureRecord, VersionRecord } from '../registry/types';
import { sampleSize, type DeltaNormPolicy, type RoundSettings } from './settings';
import { siteWeightCap } from './update-bounds';
import type { Clock, Evaluator, RoundTransport } from './types';
import { NonceLog } from './upload';

/** Wakes every waiter; used for "a site reported / left / became available". */
export class Pulse {
  private waiters: (() => void)[] = [];
  wait(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }
  fire(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }
}

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
  nonces: NonceLog;
}

export interface RoundContext {
  round: number;
  roundId: string;
  startedAt: number;
  stage: RoundStage;
  baseVersionId: string;
  base: NamedTensors;
  baseBytes: Uint8Array;
  baseSha256: string;
  config: RoundConfig;
  key: KeyPair;
  deadline: number;
  maxUploadBytes: number;
  sampled: Set<string>;
  declaredExamples: Map<string, number>;
  /** the largest FedAvg weight an update carries this round (set when sampling; update-bounds.ts) */
  weightCap: number;
  /** the most an honest site's optimizer can move the adapter this round (update-bounds.ts) */
  deltaNormCeiling: number;
  /** the L2 bound on an update's delta this round, and what happens to one over it */
  deltaNormBound: number;
  deltaNormPolicy: DeltaNormPolicy;
  /** L2 norms of the accepted deltas as sent (at most the ceiling), for the adaptive bound of later rounds */
  acceptedNorms: number[];
  /** accepted updates that were scaled down to deltaNormBound, with their norm as sent */
  clipped: { siteId: string; norm: number }[];
  /** sites that accepted configure and got the adapter */
  participants: Set<string>;
  /** sampled sites that may still deliver */
  pending: Set<string>;
  delivered: Set<string>;
  failures: Map<string, string>;
  rejections: RoundFailureRecord[];
  /** true from train until collect ends: uploads are taken only then */
  accepting: boolean;
  aggregator: RoundAggregator;
  uploadedBytes: number;
  bytesPerUpload: number[];
  outcome: AggregateOutcome | null;
  metrics: HeldoutMetrics | null;
  version: VersionRecord | null;
  /** fires when a site delivers, fails or leaves */
  progress: Pulse;
  /** per-site rejecters for in-flight sends, called when the site disconnects */
  leaving: Map<string, (err: Error) => void>;
}

/** A fresh context for round `round`: new round id and X25519 key, nothing sampled yet. */
export function newRoundContext(a: {
  round: number;
  now: number;
  baseVersionId: string;
  base: NamedTensors;
  baseBytes: Uint8Array;
  baseSha256: string;
  config: RoundConfig;
  aggregator: RoundAggregator;
  /** null: 2 × the fp32 adapter + 64 KiB */
  maxUploadBytes: number | null;
  deltaNormCeiling: number;
  deltaNormBound: number;
  deltaNormPolicy: DeltaNormPolicy;
}): RoundContext {
  const fp32Bytes = Object.values(a.base).reduce((n, t) => n + t.data.length * 4, 0);
  return {
    round: a.round,
    roundId: `r${a.round}-${randomBytes(4).toString('hex')}`,
    startedAt: a.now,
    stage: 'sample',
    baseVersionId: a.baseVersionId,
    base: a.base,
    baseBytes: a.baseBytes,
    baseSha256: a.baseSha256,
    config: a.config,
    key: generateBoxKeyPair(),
    deadline: 0,
    maxUploadBytes: a.maxUploadBytes ?? 2 * fp32Bytes + 64 * 1024,
    sampled: new Set(),
    declaredExamples: new Map(),
    weightCap: Infinity,
    deltaNormCeiling: a.deltaNormCeiling,
    deltaNormBound: a.deltaNormBound,
    deltaNormPolicy: a.deltaNormPolicy,
    acceptedNorms: [],
    clipped: [],
    participants: new Set(),
    pending: new Set(),
    delivered: new Set(),
    failures: new Map(),
    rejections: [],
    accepting: false,
    aggregator: a.aggregator,
    uploadedBytes: 0,
    bytesPerUpload: [],
    outcome: null,
    metrics: null,
    version: null,
    progress: new Pulse(),
    leaving: new Map(),
  };
}

export type StageResult = 'next' | { end: 'kept' | 'cancelled'; reason: string };

/** Races `p` with a clock timer; the timer is cancelled when `p` settles. */
export async function raceTimer<T>(
  env: Pick<RoundEnv, 'clock' | 'signal'>,
  ms: number,
  p: Promise<T>,
  onTimeout: () => T | Promise<T>,
): Promise<T> {
  // no time limit (the sample stage waits for sites): setTimeout would clamp Infinity to 1 ms
  if (!Number.isFinite(ms)) return p;
  const ac = new AbortController();
  const timer = env.clock.sleep(ms, AbortSignal.any([ac.signal, env.signal])).then(() => onTimeout());
  timer.catch(() => {});
  try {
    return await Promise.race([p, timer]);
  } finally {
    ac.abort();
  }
}

/** A send to one site that fails as soon as the site disconnects, not only at the ack timeout. */
function untilLeft<T>(ctx: RoundContext, siteId: string, p: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    ctx.leaving.set(siteId, reject);
    p.then(resolve, reject).finally(() => ctx.leaving.delete(siteId));
  });
}

function fail(ctx: RoundContext, siteId: string, code: string): void {
  if (!ctx.pending.has(siteId)) return;
  ctx.pending.delete(siteId);
  ctx.participants.delete(siteId);
  ctx.failures.set(siteId, code);
  ctx.progress.fire();
}

function shuffle<T>(xs: T[], rng: () => number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** sample: wait for minSites ready sites (then up to sampleWaitS for the rest of the enrolled ones), pick some. */
async function sample(ctx: RoundContext, env: RoundEnv): Promise<StageResult> {
  const s = env.settings;
  let quorumSince: number | null = null;
  for (;;) {
    if (!env.keepSampling()) return { end: 'cancelled', reason: 'federation paused' };
    const avail = env.transport.available();
    if (avail.length >= s.minSites) {
      quorumSince ??= env.clock.now();
      const waited = env.clock.now() - quorumSince;
      if (avail.length >= env.transport.enrolledCount() || waited >= s.sampleWaitS * 1000) {
        const chosen = shuffle(avail, env.rng).slice(0, sampleSize(s, avail.length));
        for (const a of chosen) {
          ctx.sampled.add(a.siteId);
          ctx.pending.add(a.siteId);
          ctx.declaredExamples.set(a.siteId, a.numExamples);
        }
        ctx.weightCap = siteWeightCap([...ctx.declaredExamples.values()], s);
        return 'next';
      }
      await raceTimer(env, s.sampleWaitS * 1000 - waited, env.availability.wait(), () => undefined);
    } else {
      quorumSince = null;
      await raceTimer(env, 60_000, env.availability.wait(), () => undefined); // re-check now and then
    }
  }
}

/** configure: send hyper-parameters, deadline and the round key; sites that decline or do not answer drop out. */
async function configure(ctx: RoundContext, env: RoundEnv): Promise<StageResult> {
  const timeout = env.settings.ackTimeoutS * 1000;
  await Promise.all(
    [...ctx.sampled].map(async (siteId) => {
      try {
        const accepted = await untilLeft(
          ctx,
          siteId,
          env.transport.configure(
            siteId,
            {
              roundId: ctx.roundId,
              round: ctx.round,
              config: ctx.config,
              adapterVersionId: ctx.baseVersionId,
              coordinatorBoxPublicKey: ctx.key.publicKey,
              encoding: env.settings.encoding,
              deadline: ctx.deadline,
            },
            timeout,
          ),
        );
        if (accepted) ctx.participants.add(siteId);
        else fail(ctx, siteId, 'DECLINED');
      } catch (err) {
        fail(ctx, siteId, ctx.failures.get(siteId) ?? codeOf(err));
      }
    }),
  );
  if (ctx.participants.size < env.settings.minSites)
    return {
      end: 'kept',
      reason: `${ctx.participants.size} site(s) accepted, fewer than minSites ${env.settings.minSites}`,
    };
  return 'next';
}

/** why a send to a site failed, for the round record (the transport raises TIMEOUT when an ack does not come) */
function codeOf(err: unknown): string {
  return err instanceof FedloraError ? err.code : 'INTERNAL';
}

/** train: send the global adapter; from now on uploads are accepted. */
async function train(ctx: RoundContext, env: RoundEnv): Promise<StageResult> {
  ctx.accepting = true;
  const timeout = env.settings.ackTimeoutS * 1000;
  await Promise.all(
    [...ctx.participants].map(async (siteId) => {
      try {
        await untilLeft(
          ctx,
          siteId,
          env.transport.train(
            siteId,
            { roundId: ctx.roundId, adapter: ctx.baseBytes, adapterSha256: ctx.baseSha256 },
            timeout,
          ),
        );
      } catch (err) {
        if (!ctx.delivered.has(siteId)) fail(ctx, siteId, ctx.failures.get(siteId) ?? codeOf(err));
      }
    }),
  );
  return 'next';
}

/** collect: until every participant delivered or failed, quorum became impossible, or the deadline passed. */
async function collect(ctx: RoundContext, env: RoundEnv): Promise<StageResult> {
  const min = env.settings.minSites;
  try {
    while (ctx.pending.size > 0 && ctx.delivered.size + ctx.pending.size >= min) {
      const left = ctx.deadline - env.clock.now();
      if (left <= 0) break;
      await raceTimer(env, left, ctx.progress.wait(), () => undefined);
    }
  } finally {
    ctx.accepting = false;
  }
  for (const siteId of [...ctx.pending]) fail(ctx, siteId, 'TIMEOUT');
  if (ctx.delivered.size < min)
    return { end: 'kept', reason: `${ctx.delivered.size} update(s), fewer than minSites ${min}` };
  return 'next';
}

/** aggregate: the strategy's streaming aggregator already holds every accepted update. */
async function aggregate(ctx: RoundContext): Promise<StageResult> {
  const failures = [...ctx.failures].map(([siteId, code]) => ({ siteId, code }));
  ctx.outcome = ctx.aggregator.finish(failures);
  if (!ctx.outcome) return { end: 'kept', reason: 'the strategy kept the previous adapter' };
  return 'next';
}

/** evaluate: held-out metrics of the new adapter; a failure here still versions it, without metrics. */
async function evaluate(ctx: RoundContext, env: RoundEnv): Promise<StageResult> {
  try {
    const ms = env.settings.evaluateTimeoutS * 1000;
    ctx.metrics = await raceTimer(
      env,
      ms,
      env.evaluator.evaluate((ctx.outcome as AggregateOutcome).adapter),
      () => {
        throw new FedloraError(
          'INTERNAL',
          `held-out evaluation took longer than ${env.settings.evaluateTimeoutS} s`,
        );
      },
    );
  } catch (err) {
    env.log('evaluate.failed', { round: ctx.round, error: describeError(err) });
  }
  return 'next';
}

/** version: store the adapter as a new immutable version, make it current, tell every site. */
async function version(ctx: RoundContext, env: RoundEnv): Promise<StageResult> {
  const o = ctx.outcome as AggregateOutcome;
  ctx.version = await env.store.addVersion(
    {
      parent: ctx.baseVersionId,
      round: ctx.round,
      strategy: env.strategy.name,
      sites: o.numResults,
      examples: o.numExamples,
      metrics: ctx.metrics,
      trainMetrics: o.metrics,
      uploadedBytes: ctx.uploadedBytes,
    },
    o.adapter,
    env.strategy.getState(),
  );
  const m = ctx.metrics;
  env.transport.published({
    versionId: ctx.version.id,
    round: ctx.round,
    metrics: m ? { accuracy: m.accuracy, macroF1: m.macroF1, loss: m.loss } : {},
    adapterSha256: ctx.version.sha256,
  });
  return 'next';
}

/** Each stage with the timeout it runs under (collect is bounded by the round deadline itself). */
export const STAGES: Record<
  RoundStage,
  { timeoutMs(s: RoundSettings): number; run(ctx: RoundContext, env: RoundEnv): Promise<StageResult> }
> = {
  sample: { timeoutMs: () => Infinity, run: sample },
  configure: { timeoutMs: (s) => s.ackTimeoutS * 1000 + 5_000, run: configure },
  train: { timeoutMs: (s) => s.ackTimeoutS * 1000 + 5_000, run: train },
  collect: { timeoutMs: (s) => s.deadlineS * 1000 + 5_000, run: collect },
  aggregate: { timeoutMs: () => 120_000, run: (ctx) => aggregate(ctx) },
  evaluate: { timeoutMs: (s) => s.evaluateTimeoutS * 1000 + 5_000, run: evaluate },
  version: { timeoutMs: () => 120_000, run: version },
};

export { fail as failSite };
