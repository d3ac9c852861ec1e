// Node-only: loads base model + tokenizer from a directory and builds the trainable classifier on top of it.

import { loadBertCheckpoint } from '../model/load-node';
import { BertModel } from '../model/bert';
import { SequenceClassifier, type Pooling } from '../model/classifier';
import { LoraAdapter } from '../lora/adapter';
import type { LoraConfig } from '../lora/config';
import { loadTokenizer } from '../tokenizer/load';
import type { LocalModel } from './model-files';

export type { LocalModel } from './model-files';

export function loadLocalModel(opts: {
  modelDir: string;
  lora: LoraConfig;
  labels: string[];
  pooling: Pooling;
  seed?: number;
}): LocalModel {
  const tokenizer = loadTokenizer(opts.modelDir);
  const ckpt = loadBertCheckpoint(opts.modelDir);
  const bert = new BertModel(ckpt);
  const adapter = new LoraAdapter(opts.lora, bert.config, opts.seed ?? 0);
  const classifier = new SequenceClassifier(bert, adapter, opts.labels, opts.pooling, opts.seed ?? 0);
  return {
    bert,
    tokenizer,
    classifier,
    dispose() {
      classifier.dispose();
      bert.dispose();
    },
  };
}
