// Node-only: loads base model + tokenizer from a directory and builds the trainable classifier on top of it.

import { loadBertCheckpoint } from './load';
import type { Pooling } from '../../model/classifier';
import type { LoraConfig } from '../../lora/config';
import { loadTokenizer } from '../tokenizer/load';
import { assembleLocalModel, type LocalModel } from '../../model/local-model';

export type { LocalModel } from '../../model/local-model';

export function loadLocalModel(opts: {
  modelDir: string;
  lora: LoraConfig;
  labels: string[];
  pooling: Pooling;
  seed?: number;
}): LocalModel {
  return assembleLocalModel(loadBertCheckpoint(opts.modelDir), loadTokenizer(opts.modelDir), opts);
}
