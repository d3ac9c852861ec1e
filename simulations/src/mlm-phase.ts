// Phase 1 of issue 24's two-phase recipe: masked-LM domain adaptation of the base on the sites' unlabelled text, then
// the adapter merged into a new base for phase 2 (classification). Federated: every round the sampled sites run the
// product's masked-LM round (training/mlm-round.ts mlmLocalRound, the code `fedlora-site pretrain --lora` runs) from
// the global adapter, and the production FedAvg aggregator averages their deltas weighted by training sequences.
// Centralized: the same round function once on the pooled text for the federation's total number of steps. Merge:
// lora/merge.ts (W + (alpha/r)·B·A, as `fedlora-site merge`) in memory. Held-out MLM loss is measured on held-out text
// the adaptation never trains on (the simulator passes the test split's text), with masks fixed by a seed.

import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { BertModel } from '@fedlora/shared/model/bert.ts';
import { checkpointFromTensors, type BertCheckpoint } from '@fedlora/shared/model/checkpoint.ts';
import { maskTokens, MlmHead } from '@fedlora/shared/model/mlm.ts';
import { LoraAdapter } from '@fedlora/shared/lora/adapter.ts';
import type { LoraConfig } from '@fedlora/shared/lora/config.ts';
import { mergeLoraWeights } from '@fedlora/shared/lora/merge.ts';
import type { StoredCheckpoint } from '@fedlora/shared/node/model/load.ts';
import { seededRandom } from '@fedlora/shared/random.ts';
import { cloneNamed, subtractNamed, type NamedTensors } from '@fedlora/shared/tensor.ts';
import type { Tokenizer } from '@fedlora/shared/tokenizer/tokenizer.ts';
import { MLM_TRANSFORM_NAMES, mlmLocalRound } from '@fedlora/shared/training/mlm-round.ts';
import { evaluateMlm, packSequences, type MlmEval } from '@fedlora/shared/training/pretrain.ts';
import { sampleRound, siteId } from './federation';

/** The masked-LM phase's recipe: the same for the federated and the centralized arm. */
export interface MlmPhaseConfig {
  rounds: number;
  sitesPerRound: number;
  /** AdamW steps each sampled site takes per round (its optimizer restarts every round, as in classification) */
  steps: number;
  batchSize: number;
  learningRate: number;
  /** tokens per packed sequence */
  maxLength: number;
  lora: LoraConfig;
  /** train (and average, and merge) the MLM head's transform beside LoRA */
  headTransform: boolean;
}

export interface MlmRoundRecord {
  round: number;
  sites: number;
  /** Σ training sequences of the round's sites (FedAvg's weights) */
  sequences: number;
  /** sequence-weighted mean of the sites' last reported training loss */
  trainLoss: number;
  seconds: number;
}

export interface MlmPhaseResult {
  /** the adapter to merge (LoRA tensors, and the head's transform when trained) */
  state: NamedTensors;
  rounds: MlmRoundRecord[];
  /** optimizer steps taken in total (federated: Σ over rounds and sites) */
  totalSteps: number;
  seconds: number;
}

/** The untrained adapter every MLM arm starts from (B = 0, seeded A): the same for federated and centralized. */
export async function initialMlmState(ckpt: BertCheckpoint, lora: LoraConfig, seed: number, headTransform: boolean): Promise<NamedTensors> {
  const bert = new BertModel(ckpt);
  const adapter = new LoraAdapter(lora, bert.config, seed);
  const head = new MlmHead(bert, ckpt.mlmHead, seed);
  try {
    const state = cloneNamed(await adapter.readState());
    if (headTransform) {
      const h = await head.getState();
      for (const name of MLM_TRANSFORM_NAMES) state[name] = h[name];
    }
    return state;
  } finally {
    adapter.dispose();
    head.dispose();
    bert.dispose();
  }
}

/** Seed of one site's masked-LM round: distinct per run seed, round and site (its corpus split, masks, batch order). */
export const mlmRoundSeed = (seed: number, round: number, site: number) => seed * 1_000_003 + round * 1009 + site;

/**
 * Federated masked-LM rounds: each round samples sites as the classification federation does (sampleRound, seeded by
 * seed and round), each trains `steps` steps from the global adapter on its own documents, and FedAvg averages.
 */
export async function federatedMlm(
  o: { ckpt: BertCheckpoint; tokenizer: Tokenizer; siteDocs: readonly (readonly string[])[]; config: MlmPhaseConfig; seed: number; start: NamedTensors },
  onRound?: (r: MlmRoundRecord) => void,
): Promise<MlmPhaseResult> {
  const c = o.config;
  const fedavg = createStrategy('fedavg', {});
  let global = cloneNamed(o.start);
  const rounds: MlmRoundRecord[] = [];
  let totalSteps = 0;
  const t0 = performance.now();
  for (let round = 1; round <= c.rounds; round++) {
    const tr = performance.now();
    const agg = fedavg.createAggregator(round, global);
    let sequences = 0;
    let lossSum = 0;
    let sites = 0;
    for (const s of sampleRound(o.seed, round, o.siteDocs.length, c.sitesPerRound, 0, 0)) {
      const docs = o.siteDocs[s.site];
      if (docs.length < 2) continue; // mlmLocalRound holds one document out: a site needs two
      let lastLoss = NaN;
      const r = await mlmLocalRound({
        ckpt: o.ckpt,
        tokenizer: o.tokenizer,
        docs,
        lora: c.lora,
        trainHeadTransform: c.headTransform,
        start: global,
        epochs: Number.MAX_SAFE_INTEGER, // the step budget ends the round, not the epochs
        batchSize: c.batchSize,
        learningRate: c.learningRate,
        maxLength: c.maxLength,
        maxSteps: c.steps,
        seed: mlmRoundSeed(o.seed, round, s.site),
        evaluateHeldout: false, // held-out MLM loss is measured once, on the test split's text (heldoutMlmLoss)
        onStep: (p) => (lastLoss = p.loss),
      });
      agg.accumulate({ siteId: siteId(s.site), numExamples: r.trainSequences, delta: subtractNamed(r.state, global), metrics: { loss: lastLoss } });
      sequences += r.trainSequences;
      lossSum += r.trainSequences * lastLoss;
      totalSteps += r.steps;
      sites++;
    }
    const outcome = agg.finish([]);
    if (!outcome) throw new FedloraError('DATA_INVALID', `masked-LM round ${round}: no sampled site has two documents`);
    global = outcome.adapter;
    const rec: MlmRoundRecord = {
      round,
      sites,
      sequences,
      trainLoss: lossSum / sequences,
      seconds: (performance.now() - tr) / 1000,
    };
    rounds.push(rec);
    onRound?.(rec);
  }
  return { state: global, rounds, totalSteps, seconds: (performance.now() - t0) / 1000 };
}

/** Centralized masked-LM: one run on the pooled documents for `totalSteps` steps (the federation's total). */
export async function centralizedMlm(
  o: { ckpt: BertCheckpoint; tokenizer: Tokenizer; docs: readonly string[]; config: MlmPhaseConfig; seed: number; start: NamedTensors; totalSteps: number },
  onStep?: (step: number, total: number, loss: number) => void,
): Promise<MlmPhaseResult> {
  const c = o.config;
  let lastLoss = NaN;
  const r = await mlmLocalRound({
    ckpt: o.ckpt,
    tokenizer: o.tokenizer,
    docs: o.docs,
    lora: c.lora,
    trainHeadTransform: c.headTransform,
    start: o.start,
    epochs: Number.MAX_SAFE_INTEGER,
    batchSize: c.batchSize,
    learningRate: c.learningRate,
    maxLength: c.maxLength,
    maxSteps: o.totalSteps,
    seed: mlmRoundSeed(o.seed, 0, 0),
    evaluateHeldout: false,
    onStep: (p) => {
      lastLoss = p.loss;
      onStep?.(p.step, p.totalSteps, p.loss);
    },
  });
  const rec: MlmRoundRecord = {
    round: 1,
    sites: 1,
    sequences: r.trainSequences,
    trainLoss: lastLoss,
    seconds: r.seconds,
  };
  return { state: r.state, rounds: [rec], totalSteps: r.steps, seconds: r.seconds };
}

/** The base with the adapter folded in (and its head transform, when trained), as a checkpoint phase 2 can load. */
export function mergedCheckpoint(base: StoredCheckpoint, lora: LoraConfig, state: NamedTensors): BertCheckpoint {
  const merged = mergeLoraWeights(base.tensors, checkpointFromTensors(base.configJson, base.tensors).config, { config: lora, state });
  return checkpointFromTensors(base.configJson, merged.tensors, 'merged base', base.weightsName);
}

/**
 * Held-out MLM loss of a checkpoint (its own MLM head) on documents packed into maxLength sequences with masks drawn
 * once from `seed`: the same masks for every checkpoint evaluated with the same seed, so losses compare.
 */
export async function heldoutMlmLoss(ckpt: BertCheckpoint, tokenizer: Tokenizer, docs: readonly string[], maxLength: number, seed: number): Promise<MlmEval> {
  if (!ckpt.mlmHead) throw new FedloraError('MODEL_INVALID', 'held-out MLM loss needs a checkpoint with an MLM head (cls.predictions.*)');
  const len = Math.min(maxLength, tokenizer.maxLength, ckpt.config.maxPositions);
  const rand = seededRandom(seed + 13);
  const seqs = packSequences(docs, tokenizer, len).map((ids) => maskTokens(ids, tokenizer.special, ckpt.config.vocabSize, rand));
  const bert = new BertModel(ckpt);
  const head = new MlmHead(bert, ckpt.mlmHead, seed);
  try {
    return await evaluateMlm(bert, head, seqs, tokenizer.special.pad);
  } finally {
    head.dispose();
    bert.dispose();
  }
}
