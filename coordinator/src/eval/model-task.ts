// The real learning task of a coordinator: the base model loaded once (tfjs), version 0's seeded adapter + head,
// and the held-out Evaluator (evaluateState: forward passes only) behind the round loop's Evaluator interface.

import type { LabeledDataset } from '@fedlora/shared/data/dataset.ts';
import type { LoraConfig } from '@fedlora/shared/lora/config.ts';
import type { Pooling } from '@fedlora/shared/model/classifier.ts';
import type { ModelFamily } from '@fedlora/shared/model/families.ts';
import { loadLocalModel } from '@fedlora/shared/node/model/local-model.ts';
import { encodeDataset } from '@fedlora/shared/training/encode.ts';
import { evaluateState } from '@fedlora/shared/training/local-round.ts';
import type { EncodedExample } from '@fedlora/shared/training/batches.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import type { HeldoutMetrics } from '../registry/types';
import type { Evaluator } from '../rounds/types';

export interface ModelTaskOptions {
  modelDir: string;
  lora: LoraConfig;
  labels: string[];
  pooling: Pooling;
  /** null: no central held-out set (federated evaluation only), and no evaluator */
  heldout: LabeledDataset | null;
  /** tokens per example, read at each evaluation (a PUT /api/settings may change it) */
  maxLength: () => number;
  seed: number;
}

export interface ModelTask {
  /** the base model's family (its PEFT exports use the family's module names) */
  family: ModelFamily;
  initialState: () => NamedTensors;
  evaluator: Evaluator | null;
  dispose(): void;
}

export function loadModelTask(o: ModelTaskOptions): ModelTask {
  const model = loadLocalModel({
    modelDir: o.modelDir,
    lora: o.lora,
    labels: o.labels,
    pooling: o.pooling,
    seed: o.seed,
  });
  const initial = model.classifier.getTrainableState();
  const encoded = new Map<number, EncodedExample[]>();
  const heldout = o.heldout;
  if (!heldout) return { family: model.bert.config.family, initialState: () => initial, evaluator: null, dispose: () => model.dispose() };
  const examples = (maxLength: number) => {
    const len = Math.min(maxLength, model.tokenizer.maxLength, model.bert.config.maxPositions);
    if (!encoded.has(len)) encoded.set(len, encodeDataset(model.tokenizer, heldout, o.labels, len));
    return encoded.get(len) as EncodedExample[];
  };
  // one evaluation at a time: they share the model's variables
  let queue: Promise<unknown> = Promise.resolve();
  const evaluator: Evaluator = {
    evaluate(state) {
      const run = async (): Promise<HeldoutMetrics> => {
        const ex = examples(o.maxLength());
        const { report, loss } = await evaluateState(
          model.classifier,
          state,
          ex,
          model.tokenizer.special.pad,
        );
        return {
          accuracy: report.accuracy,
          macroF1: report.macroF1,
          loss,
          examples: report.n,
          perClass: report.perClass.map((c) => ({ ...c })),
        };
      };
      const p = queue.then(run, run);
      queue = p.catch(() => {});
      return p;
    },
  };
  return { family: model.bert.config.family, initialState: () => initial, evaluator, dispose: () => model.dispose() };
}
