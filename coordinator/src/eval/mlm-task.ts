// The learning task of a masked-LM federation (--task mlm, issue 24): the BERT base with its MLM head loaded once,
// version 0's seeded LoRA adapter (plus the head's transform when the federation trains it; training/mlm-state.ts), and
// the central held-out evaluator: masked-LM loss and masked-token accuracy on the coordinator's --mlm-text, every
// document of it held out, packed and masked with a fixed seed so that every version is scored on the same masks.
// Federated evaluation of MLM loss is not offered: the sites' round:evaluate reply carries a confusion matrix.

import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '@fedlora/shared/errors.ts';
import type { LoraConfig } from '@fedlora/shared/lora/config.ts';
import { LoraAdapter } from '@fedlora/shared/lora/adapter.ts';
import { BertModel } from '@fedlora/shared/model/bert.ts';
import type { ModelFamily } from '@fedlora/shared/model/families.ts';
import { maskTokens, MLM_HEAD_NAMES, MlmHead, type MaskedSequence } from '@fedlora/shared/model/mlm.ts';
import { loadBertCheckpoint } from '@fedlora/shared/node/model/load.ts';
import { loadTokenizer } from '@fedlora/shared/node/tokenizer/load.ts';
import { seededRandom } from '@fedlora/shared/random.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { mlmInitialState } from '@fedlora/shared/training/mlm-state.ts';
import { evaluateMlm, packSequences } from '@fedlora/shared/training/pretrain.ts';
import type { HeldoutMetrics } from '../registry/types';
import type { Evaluator } from '../rounds/types';

export interface MlmTaskOptions {
  modelDir: string;
  lora: LoraConfig;
  /** the federation trains the MLM head's transform beside LoRA */
  headTransform: boolean;
  /** the held-out documents (--mlm-text, one per line) */
  heldoutDocs: readonly string[];
  /** tokens per sequence, read at each evaluation (a PUT /api/settings may change it) */
  maxLength: () => number;
  seed: number;
}

export interface MlmTask {
  family: ModelFamily;
  initialState: () => Promise<NamedTensors>;
  evaluator: Evaluator;
  dispose(): void;
}

export function loadMlmTask(o: MlmTaskOptions): MlmTask {
  if (o.heldoutDocs.length === 0) throw new FedloraError('DATA_INVALID', '--mlm-text holds no documents (one per line)');
  const ckpt = loadBertCheckpoint(o.modelDir);
  const tok = loadTokenizer(o.modelDir);
  if (ckpt.config.family !== 'bert' || !ckpt.mlmHead)
    throw new FedloraError('MODEL_UNSUPPORTED', `--task mlm needs a BERT checkpoint with its MLM head (cls.predictions.*, BertForMaskedLM); ${o.modelDir} is ${ckpt.config.family}${ckpt.mlmHead ? '' : ' without one'}`);
  // version 0 first: tfjs variable names are engine-global, so its adapter must be gone before the evaluator's exists
  const initial = mlmInitialState(ckpt, o.lora, o.headTransform, o.seed);
  initial.catch(() => {}); // the caller of initialState() sees the failure
  const bert = new BertModel(ckpt);
  const head = new MlmHead(bert, ckpt.mlmHead, o.seed);
  let adapter: LoraAdapter | null = null;
  const sequences = new Map<number, MaskedSequence[]>();
  const heldout = (maxLength: number): MaskedSequence[] => {
    const len = Math.min(maxLength, tok.maxLength, ckpt.config.maxPositions);
    let seqs = sequences.get(len);
    if (!seqs) {
      const rand = seededRandom(o.seed + 13);
      seqs = packSequences(o.heldoutDocs, tok, len).map((ids) => maskTokens(ids, tok.special, ckpt.config.vocabSize, rand));
      if (seqs.every((s) => s.positions.length === 0)) throw new FedloraError('DATA_INVALID', '--mlm-text has no tokens to mask');
      sequences.set(len, seqs);
    }
    return seqs;
  };
  // one evaluation at a time: they share the model's variables
  let queue: Promise<unknown> = Promise.resolve();
  const evaluator: Evaluator = {
    evaluate(state) {
      const run = async (): Promise<HeldoutMetrics> => {
        await initial.catch(() => {});
        adapter ??= new LoraAdapter(o.lora, bert.config, o.seed);
        adapter.setState(state);
        if (o.headTransform) {
          const host = (name: string) => {
            const t = state[name];
            if (!t) throw new FedloraError('ADAPTER_INVALID', `the adapter lacks ${name} (the federation trains the MLM head's transform)`);
            return tf.tensor(t.data, t.shape);
          };
          tf.tidy(() => {
            head.denseW.assign(tf.transpose(host(MLM_HEAD_NAMES.denseW))); // [in, out] in memory (mlm.ts)
            head.denseB.assign(host(MLM_HEAD_NAMES.denseB));
            head.lnW.assign(host(MLM_HEAD_NAMES.lnW));
            head.lnB.assign(host(MLM_HEAD_NAMES.lnB));
          });
        }
        const seqs = heldout(o.maxLength());
        const r = await evaluateMlm(bert, head, seqs, tok.special.pad, undefined, adapter);
        return { task: 'mlm', loss: r.loss, accuracy: r.accuracy, maskedTokens: r.maskedTokens, examples: seqs.length, perClass: [] };
      };
      const p = queue.then(run, run);
      queue = p.catch(() => {});
      return p;
    },
  };
  return {
    family: ckpt.config.family,
    initialState: () => initial,
    evaluator,
    dispose: () => {
      adapter?.dispose();
      head.dispose();
      bert.dispose();
    },
  };
}
