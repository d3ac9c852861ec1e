// One site's masked-LM round in LoRA mode (issue 24: federated domain adaptation): the site's documents → the seeded
// corpus of pretrain.ts (held-out split with fixed masks) → a LoRA adapter on the frozen encoder (and, when asked, the
// MLM head's transform) trained with pretrainMlm → the adapter's state, with held-out MLM loss before and after.
// `fedlora-site pretrain --lora` runs exactly this function, so a federated `mlm` round that calls it with the same
// seed and steps trains the same weights (must-show 1).

import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../errors';
import { BertModel } from '../model/bert';
import type { BertCheckpoint } from '../model/checkpoint';
import { MLM_HEAD_NAMES, MlmHead } from '../model/mlm';
import { LoraAdapter } from '../lora/adapter';
import type { LoraConfig } from '../lora/config';
import type { NamedTensors } from '../tensor';
import type { Tokenizer } from '../tokenizer/tokenizer';
import { evaluateMlm, prepareCorpus, pretrainMlm, type MlmEval, type PretrainOptions } from './pretrain';

/** The head tensors an MLM round trains beside LoRA (not cls.predictions.bias, which stays the base's). */
export const MLM_TRANSFORM_NAMES = [MLM_HEAD_NAMES.denseW, MLM_HEAD_NAMES.denseB, MLM_HEAD_NAMES.lnW, MLM_HEAD_NAMES.lnB] as const;

export interface MlmRoundInput {
  /** a BERT checkpoint (the MLM head is BERT's cls.predictions.*; without one a fresh head is initialised) */
  ckpt: BertCheckpoint;
  tokenizer: Tokenizer;
  /** the site's unlabelled documents (splitDocuments) */
  docs: readonly string[];
  lora: LoraConfig;
  trainHeadTransform: boolean;
  /** the global adapter to start from (LoRA tensors, and the transform when trained); default a fresh adapter */
  start?: NamedTensors;
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** tokens per sequence, capped to the tokenizer's and the model's limits */
  maxLength: number;
  maxSteps?: number;
  seed: number;
  onStep?: PretrainOptions['onStep'];
  /**
   * evaluate the held-out split before and after training (default true). The simulator, which measures held-out MLM
   * loss once on separate text after the federation, turns it off: two forward passes over a tenth of the site's text
   * per site and round. Off, heldoutBefore/heldoutAfter are NaN with maskedTokens 0 (the split is still held out, so
   * the weights trained are the same either way).
   */
  evaluateHeldout?: boolean;
}

const NOT_EVALUATED: MlmEval = { loss: NaN, accuracy: NaN, maskedTokens: 0 };

export interface MlmRoundResult {
  /** LoRA tensors (adapter.ts keys) and, when trained, the head's transform (HF names and orientation) */
  state: NamedTensors;
  lora: LoraConfig;
  heldoutBefore: MlmEval;
  heldoutAfter: MlmEval;
  steps: number;
  seconds: number;
  sequencesPerSecond: number;
  trainableParams: number;
  trainSequences: number;
  trainDocuments: number;
  heldoutDocuments: number;
  freshHead: boolean;
}

export async function mlmLocalRound(o: MlmRoundInput): Promise<MlmRoundResult> {
  if (o.ckpt.config.family !== 'bert')
    throw new FedloraError('MODEL_UNSUPPORTED', `masked-LM rounds need a BERT checkpoint (its cls.predictions head); this one is ${o.ckpt.config.family}`);
  const maxLength = Math.min(o.maxLength, o.tokenizer.maxLength, o.ckpt.config.maxPositions);
  const corpus = prepareCorpus(o.docs, o.tokenizer, { maxLength, seed: o.seed, vocabSize: o.ckpt.config.vocabSize });
  const bert = new BertModel(o.ckpt);
  const head = new MlmHead(bert, o.ckpt.mlmHead, o.seed);
  const adapter = new LoraAdapter(o.lora, bert.config, o.seed);
  try {
    if (o.start) {
      adapter.setState(o.start);
      if (o.trainHeadTransform) {
        const host = (name: string) => {
          const t = o.start?.[name];
          if (!t) throw new FedloraError('ADAPTER_INVALID', `the starting adapter lacks ${name} (the round trains the head's transform)`);
          return tf.tensor(t.data, t.shape);
        };
        // the dense weight is kept [in, out] in memory (mlm.ts), HF's [out, in] in the state
        tf.tidy(() => {
          head.denseW.assign(tf.transpose(host(MLM_HEAD_NAMES.denseW)));
          head.denseB.assign(host(MLM_HEAD_NAMES.denseB));
          head.lnW.assign(host(MLM_HEAD_NAMES.lnW));
          head.lnB.assign(host(MLM_HEAD_NAMES.lnB));
        });
      }
    }
    const pad = o.tokenizer.special.pad;
    const evaluate = o.evaluateHeldout ?? true;
    const heldoutBefore = evaluate ? await evaluateMlm(bert, head, corpus.heldout, pad, undefined, adapter) : NOT_EVALUATED;
    const r = await pretrainMlm(bert, head, corpus.train, o.tokenizer.special, o.ckpt.config.vocabSize, {
      epochs: o.epochs,
      batchSize: o.batchSize,
      learningRate: o.learningRate,
      maxSteps: o.maxSteps,
      seed: o.seed,
      lora: { adapter, trainHeadTransform: o.trainHeadTransform },
      onStep: o.onStep,
    });
    const heldoutAfter = evaluate ? await evaluateMlm(bert, head, corpus.heldout, pad, undefined, adapter) : NOT_EVALUATED;
    // copies: the arrays read from the variables must outlive their disposal below
    const state: NamedTensors = {};
    for (const [name, t] of Object.entries(await adapter.readState())) state[name] = { shape: [...t.shape], data: new Float32Array(t.data) };
    if (o.trainHeadTransform) {
      const headState = await head.getState();
      for (const name of MLM_TRANSFORM_NAMES) state[name] = headState[name];
    }
    return {
      state,
      lora: adapter.config,
      heldoutBefore,
      heldoutAfter,
      steps: r.steps,
      seconds: r.seconds,
      sequencesPerSecond: r.sequencesPerSecond,
      trainableParams: r.trainableParams,
      trainSequences: corpus.train.length,
      trainDocuments: corpus.trainDocuments,
      heldoutDocuments: corpus.heldoutDocuments,
      freshHead: head.fresh,
    };
  } finally {
    adapter.dispose();
    head.dispose();
    bert.dispose();
  }
}
