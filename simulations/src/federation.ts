// The federated round loop with in-process virtual sites. Only the transport is swapped: each round uses the
// production Strategy (createStrategy), the global adapter goes through encodeAdapter/decodeAdapter, every site
// trains with runLocalRound, and every upload is encodeUpdate (fp32/fp16/int8) → sealAndSign → openAndVerify →
// decodeUpdate before the strategy's aggregator sees it; held-out evaluation is evaluateState, as on the coordinator.
// With --secure-aggregation the deltas go through SecAgg+ instead and the aggregator sees only their sum; with DP the
// aggregator is wrapped in DP-FedAvg's (privacy.ts).
// One model instance serves all sites (set global state, train, take the delta): a site is its data indices only.

import nacl from 'tweetnacl';
import {
  AggregationError,
  createStrategy,
  type AggregateOutcome,
  type RoundFailure,
  type StrategyName,
  type StrategyOptionValues,
} from '@fedlora/shared/aggregation/index.ts';
import { decodeAdapter, decodeUpdate, encodeAdapter, encodeUpdate, newMessageNonce } from '@fedlora/shared/protocol/codec.ts';
import type { TensorEncoding } from '@fedlora/shared/protocol/quantize.ts';
import type { RoundConfig } from '@fedlora/shared/protocol/messages.ts';
import { openAndVerify, sealAndSign } from '@fedlora/shared/crypto/envelope.ts';
import { generateBoxKeyPair, type KeyPair } from '@fedlora/shared/crypto/keys.ts';
import { Rng, seededRandom } from '@fedlora/shared/random.ts';
import { evaluateState, runLocalRound } from '@fedlora/shared/training/local-round.ts';
import { localRoundSeed, localTrainConfig } from '@fedlora/shared/round/participant.ts';
import { epochBatches, type EncodedExample } from '@fedlora/shared/training/batches.ts';
import type { SequenceClassifier } from '@fedlora/shared/model/classifier.ts';
import { cloneNamed, type NamedTensors } from '@fedlora/shared/tensor.ts';
import { withDpClipNorm } from '@fedlora/shared/privacy/dp-fedavg.ts';
import { l2Norm } from '@fedlora/shared/privacy/clipping.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { attackDelta, attackNoiseSeed, chooseAttackers, type AttackPlan } from './attacks';
import {
  aggregateSecurely,
  dpAggregator,
  PrivacyLedger,
  type DpPlan,
  type PrivacyReport,
  type SecureAggregationPlan,
  type SecureInput,
  type SecureRoundResult,
} from './privacy';

/** What every arm and baseline shares: the one model, the tokenized data, the partition and the start state. */
export interface SimContext {
  clf: SequenceClassifier;
  padId: number;
  trainEx: EncodedExample[];
  heldEx: EncodedExample[];
  /** example indices of each registered site */
  sites: number[][];
  /** the untrained adapter + head every arm starts from */
  initial: NamedTensors;
  seed: number;
}

export interface ArmConfig {
  strategy: StrategyName;
  rounds: number;
  sitesPerRound: number;
  localEpochs: number;
  maxSteps: number;
  batchSize: number;
  learningRate: number;
  /** options by strategy as the flags gave them (--mu, --server-lr, …); the strategy's defaults for the rest */
  strategyOptions: Record<StrategyName, StrategyOptionValues>;
  encoding: TensorEncoding;
  stragglerProb: number;
  dropoutProb: number;
  /** seed-chosen sites upload a poisoned delta (attacks.ts); null: every site is honest */
  attack: AttackPlan | null;
  /** the deltas go through SecAgg+ (privacy.ts); null or absent: plaintext uploads */
  secureAggregation?: SecureAggregationPlan | null;
  /** client-level DP (DP-FedAvg); null or absent: none */
  dp?: DpPlan | null;
}

export interface RoundRecord {
  round: number;
  accuracy: number;
  macroF1: number;
  heldoutLoss: number;
  /** example-weighted mean training loss the sites reported */
  trainLoss: number | null;
  sampled: number;
  updates: number;
  failures: number;
  stragglers: number;
  /** updates this round that came from attacking sites; absent without --attack */
  attackerUpdates?: number;
  /** sites whose delivered updates the strategy left out (Multi-Krum); absent when every update went in */
  excludedSites?: string[];
  /** why the strategy could not aggregate the round's updates (the adapter was kept); absent otherwise */
  keptReason?: string;
  /**
   * secure aggregation only: the sites whose masked upload is in the aggregate (or those still answering when the
   * attempt aborted), why it aborted (null: it completed; an aborted round keeps the adapter), the protocol's seconds
   * (also in transportSeconds) and the graph it ran on
   */
  survivors?: number;
  aborted?: string | null;
  secaggSeconds?: number;
  secaggDegree?: number | null;
  secaggThreshold?: number | null;
  /** DP only: ε spent after this round (the arm's accountant, at the run's δ) */
  epsilon?: number;
  /**
   * median L2 norm of the deltas the sites sent (after their DP clip, if any): what docs/PRIVACY.md asks an operator
   * to measure before choosing the DP clip S, which the coordinator cannot see under secure aggregation. 0 when none;
   * absent in run folders written before it existed.
   */
  medianDeltaNorm?: number;
  /** Σ training samples the sites processed this round (the compute budget the baselines get) */
  samplesSeen: number;
  /**
   * mean encodeUpdate() bytes per delivered update, and the sealed envelope's ciphertext bytes (secure aggregation:
   * the masked upload's bytes, and 0: the masked vector replaces the envelope)
   */
  updateBytes: number;
  envelopeBytes: number;
  aggregated: boolean;
  seconds: number;
  /** seconds of the round spent in encode+seal+open+decode (quantization and crypto cost) */
  transportSeconds: number;
  rssMB: number;
  heapUsedMB: number;
}

export interface ArmResult {
  strategy: StrategyName;
  initialAccuracy: number;
  rounds: RoundRecord[];
  final: NamedTensors;
  /** DP only: the privacy the arm spent */
  privacy?: PrivacyReport;
}

/** Sites sampled in `round`: the same for every arm of a run (seeded by seed and round only). */
export function sampleRound(seed: number, round: number, numSites: number, k: number, stragglerProb: number, dropoutProb: number) {
  const rng = new Rng(seed * 1_000_003 + round);
  const sampled = rng.shuffle(Array.from({ length: numSites }, (_, i) => i)).slice(0, k).sort((a, b) => a - b);
  return sampled.map((site) => {
    const dropped = rng.next() < dropoutProb;
    const straggler = rng.next() < stragglerProb;
    const fraction = rng.next(); // a straggler's share of the step budget
    return { site, dropped, straggler, fraction };
  });
}

/**
 * Σ training samples the sampled sites process in each round, computed from the plan alone (sampling, dropouts,
 * stragglers' step caps, the trainer's batch order): what runFederatedArm records as samplesSeen, and the centralized
 * baseline's budget.
 */
export function plannedSamplesPerRound(
  sites: readonly (readonly number[])[],
  o: { seed: number; rounds: number; sitesPerRound: number; localEpochs: number; maxSteps: number; batchSize: number; stragglerProb: number; dropoutProb: number },
): number[] {
  const out: number[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    let samples = 0;
    for (const s of sampleRound(o.seed, round, sites.length, o.sitesPerRound, o.stragglerProb, o.dropoutProb)) {
      const n = sites[s.site].length;
      if (s.dropped || n === 0) continue;
      const cap = s.straggler ? 1 + Math.floor(s.fraction * o.maxSteps) : o.maxSteps;
      samples += plannedSiteSamples(n, o.localEpochs, o.batchSize, cap, localRoundSeed(round));
    }
    out.push(samples);
  }
  return out;
}

/**
 * Samples a site of `n` examples processes in a round of at most `maxSteps` steps. Not min(n·epochs, steps·batch):
 * every epoch has one partial batch (n mod batch examples) at a shuffled position, and when the cap cuts an epoch
 * short it depends on that order whether the partial batch was among the steps taken. So this replays the trainer's
 * order (trainClassifier: epochBatches drawn from seededRandom(seed), epoch after epoch, until the cap). Batch sizes
 * and random draws do not depend on the examples' lengths (grouping by length only reorders within a chunk of whole
 * batches), so equal lengths give the same sizes in the same order.
 */
export function plannedSiteSamples(n: number, localEpochs: number, batchSize: number, maxSteps: number, seed: number): number {
  if (maxSteps >= localEpochs * Math.ceil(n / batchSize)) return n * localEpochs; // the cap does not bite
  const rand = seededRandom(seed);
  const lengths = new Array<number>(n).fill(0);
  let steps = 0;
  let samples = 0;
  for (let epoch = 0; epoch < localEpochs; epoch++)
    for (const batch of epochBatches(lengths, batchSize, rand)) {
      if (steps >= maxSteps) return samples;
      steps++;
      samples += batch.length;
    }
  return samples;
}

/** A virtual site's Ed25519 identity, derived on demand from the run seed so no key is stored per site. */
export function siteSigningKeys(seed: number, site: number): KeyPair {
  const rng = new Rng(seed * 7919 + site + 1);
  const s = new Uint8Array(32);
  for (let i = 0; i < 32; i++) s[i] = rng.int(256);
  return nacl.sign.keyPair.fromSeed(s);
}

export function siteId(site: number): string {
  return `site-${String(site).padStart(4, '0')}`;
}

function memoryMB() {
  const m = process.memoryUsage();
  return { rssMB: m.rss / 2 ** 20, heapUsedMB: m.heapUsed / 2 ** 20 };
}

export async function runFederatedArm(
  ctx: SimContext,
  arm: ArmConfig,
  onRound?: (r: RoundRecord) => void,
): Promise<ArmResult> {
  const strategy = createStrategy(arm.strategy, arm.strategyOptions[arm.strategy] ?? {});
  const base: RoundConfig = {
    localEpochs: arm.localEpochs,
    batchSize: arm.batchSize,
    learningRate: arm.learningRate,
    proximalMu: 0,
    maxSteps: arm.maxSteps,
  };
  const attackers = new Set(arm.attack ? chooseAttackers(ctx.seed, ctx.sites.length, arm.attack.fraction) : []);
  const secure = arm.secureAggregation ?? null;
  const dp = arm.dp ?? null;
  const ledger = dp ? new PrivacyLedger(dp) : null;
  let global = cloneNamed(ctx.initial);
  const initialAccuracy = (await evaluateState(ctx.clf, global, ctx.heldEx, ctx.padId)).report.accuracy;
  const records: RoundRecord[] = [];
  for (let round = 1; round <= arm.rounds; round++) {
    const t0 = performance.now();
    let transport = 0;
    const roundId = `${arm.strategy}.r${round}`;
    // under DP the round config carries S, and the sites' round core clips to it (training/local-round.ts)
    const cfg = dp ? withDpClipNorm(strategy.configureRound(round, base), dp.clipNorm) : strategy.configureRound(round, base);
    const roundKey = generateBoxKeyPair();
    // what a site receives: the fp32 global adapter frame, decoded once (every virtual site gets the same bytes)
    const received = decodeAdapter(encodeAdapter({ versionId: `v${round - 1}`, round: round - 1, adapter: global })).adapter;
    const inner = strategy.createAggregator(round, global);
    if (secure && !inner.acceptSum)
      throw new FedloraError('CONFIG_INVALID', `secure aggregation needs a strategy that averages the updates; ${arm.strategy} needs the single updates`);
    const dpAgg = dp ? dpAggregator(inner, global, dp, arm.sitesPerRound, ctx.seed, round) : null;
    const agg = dpAgg ?? inner;
    const secureInputs: (SecureInput & { loss: number })[] = [];
    const failures: RoundFailure[] = [];
    let samplesSeen = 0;
    let updateBytes = 0;
    let envelopeBytes = 0;
    let stragglers = 0;
    let attackerUpdates = 0;
    const delivered: string[] = [];
    const norms: number[] = [];
    const plan = sampleRound(ctx.seed, round, ctx.sites.length, arm.sitesPerRound, arm.stragglerProb, arm.dropoutProb);
    for (const s of plan) {
      const id = siteId(s.site);
      if (s.dropped) {
        failures.push({ siteId: id, code: 'DROPPED' });
        continue;
      }
      const maxSteps = s.straggler ? 1 + Math.floor(s.fraction * arm.maxSteps) : arm.maxSteps;
      if (s.straggler) stragglers++;
      const examples = ctx.sites[s.site].map((i) => ctx.trainEx[i]);
      // samples seen: the trainer's own count, reported after every step (not numExamples, which is capped at the
      // site's size, nor steps × batch, which counts a partial batch as a full one)
      let trained = 0;
      // the production site's config and shuffling seed (participant.ts), so that the socket federation on the same
      // data, seed and round config publishes the same version (tests/sim-vs-socket.e2e.test.ts)
      const local = await runLocalRound(ctx.clf, examples, ctx.padId, received, { ...localTrainConfig(cfg), maxSteps }, {
        seed: localRoundSeed(round),
        onStep: (p) => (trained = p.samplesSeen),
      });
      samplesSeen += trained;
      // an attacker trains like everyone (its honest delta is what sign-flip and scale distort), then poisons it
      const attack = attackers.has(s.site) ? arm.attack : null;
      if (attack) attackerUpdates++;
      const delta = attack ? attackDelta(attack.kind, local.delta, attackNoiseSeed(ctx.seed, round, s.site)) : local.delta;
      const keys = siteSigningKeys(ctx.seed, s.site);
      norms.push(l2Norm(delta));
      if (secure) {
        // the masked upload replaces the envelope: collected now, summed under masks once every site has trained
        secureInputs.push({ siteId: id, identity: keys, delta, numExamples: local.numExamples, loss: local.metrics.loss });
        delivered.push(id);
        continue;
      }
      const t1 = performance.now();
      const payload = encodeUpdate(
        {
          roundId,
          siteId: id,
          nonce: newMessageNonce(),
          numExamples: local.numExamples,
          metrics: { loss: local.metrics.loss, steps: local.metrics.steps },
          delta,
        },
        arm.encoding,
      );
      const envelope = sealAndSign(payload, { roundId, recipientBoxPublicKey: roundKey.publicKey, signing: keys });
      // coordinator side: verify, decrypt, decode against the round, then stream into the aggregator
      const opened = openAndVerify(envelope, {
        expectedSigningPublicKey: keys.publicKey,
        recipientSecretKey: roundKey.secretKey,
        expectedRoundId: roundId,
      });
      const u = decodeUpdate(opened, { expect: { roundId, siteId: id } });
      transport += performance.now() - t1;
      agg.accumulate({ siteId: u.siteId, numExamples: u.numExamples, delta: u.delta, metrics: u.metrics });
      updateBytes += payload.length;
      envelopeBytes += envelope.ciphertext.length;
      delivered.push(u.siteId);
    }
    let sa: SecureRoundResult | null = null;
    if (secure) {
      sa = await aggregateSecurely(agg, secureInputs, {
        seed: ctx.seed,
        round,
        runId: `sim-${ctx.seed}-${arm.strategy}`,
        sampled: arm.sitesPerRound,
        // the largest example count of the round's sampled sites (known at setup, as sites declare it when ready)
        maxWeight: Math.max(1, ...plan.map((s) => ctx.sites[s.site].length)),
        plan: secure,
        dp,
        learningRate: arm.learningRate,
        maxSteps: arm.maxSteps,
      });
      transport += sa.seconds * 1000;
      updateBytes = sa.uploadBytes * delivered.length;
    }
    // a strategy that cannot aggregate this round's updates (Multi-Krum with n ≤ 2f + 2) keeps the adapter, as the
    // coordinator does, and the record says why
    let outcome: AggregateOutcome | null = null;
    let keptReason: string | undefined;
    try {
      outcome = agg.finish(failures);
    } catch (err) {
      if (!(err instanceof AggregationError)) throw err;
      keptReason = err.message;
    }
    if (outcome) global = outcome.adapter;
    // a round is charged when it released a noisy aggregate (an aborted or empty round released nothing)
    if (ledger && dpAgg?.report) ledger.charge();
    const ev = await evaluateState(ctx.clf, global, ctx.heldEx, ctx.padId);
    const updates = outcome?.numResults ?? agg.count;
    const rec: RoundRecord = {
      round,
      accuracy: ev.report.accuracy,
      macroF1: ev.report.macroF1,
      heldoutLoss: ev.loss,
      trainLoss: sa ? contributorsLoss(secureInputs, sa.contributors, dp !== null) : (outcome?.metrics.loss ?? null),
      sampled: arm.sitesPerRound,
      updates,
      failures: failures.length,
      stragglers,
      ...(arm.attack ? { attackerUpdates } : {}),
      ...(outcome?.contributors ? { excludedSites: delivered.filter((id) => !outcome.contributors?.includes(id)) } : {}),
      samplesSeen,
      // per delivered upload (a strategy that chooses, Multi-Krum, aggregates fewer than were sent)
      updateBytes: delivered.length ? updateBytes / delivered.length : 0,
      envelopeBytes: delivered.length ? envelopeBytes / delivered.length : 0,
      aggregated: outcome !== null,
      ...(keptReason ? { keptReason } : {}),
      ...(sa
        ? { survivors: sa.survivors, aborted: sa.aborted, secaggSeconds: sa.seconds, secaggDegree: sa.degree, secaggThreshold: sa.threshold }
        : {}),
      ...(ledger ? { epsilon: ledger.report().epsilon } : {}),
      medianDeltaNorm: norms.length ? median(norms) : 0,
      seconds: (performance.now() - t0) / 1000,
      transportSeconds: transport / 1000,
      ...memoryMB(),
    };
    records.push(rec);
    onRound?.(rec);
  }
  return { strategy: arm.strategy, initialAccuracy, rounds: records, final: global, ...(ledger ? { privacy: ledger.report() } : {}) };
}

/**
 * The training loss of the sites in a secure aggregate, weighted as the aggregate is (examples, or 1 under DP): the
 * simulator's own measurement, since an unmasked sum carries no per-site metrics. Null when the attempt aborted.
 */
function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function contributorsLoss(inputs: readonly (SecureInput & { loss: number })[], contributors: string[] | null, equal: boolean): number | null {
  if (!contributors) return null;
  const c = new Set(contributors);
  let sum = 0;
  let weight = 0;
  for (const x of inputs)
    if (c.has(x.siteId)) {
      const w = equal ? 1 : x.numExamples;
      sum += w * x.loss;
      weight += w;
    }
  return weight > 0 ? sum / weight : null;
}
