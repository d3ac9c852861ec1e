// A site's trainable model, isomorphic: tokenizer + frozen BERT + LoRA adapter + classification head, built from a
// base model's files as bytes (the browser site, after connection/model-download.ts) or from a loaded checkpoint (the
// Node agent reads a directory: node/model/local-model.ts).

import { FedloraError } from '../errors';
import { BertModel } from './bert';
import { checkpointFromTensors, type BertCheckpoint, type BertConfig } from './checkpoint';
import { parseSafetensors } from './safetensors';
import { parseSafetensorsIndex, SAFETENSORS_INDEX, tensorsFromShards } from './safetensors-index';
import { SequenceClassifier, type Pooling } from './classifier';
import { LoraAdapter } from '../lora/adapter';
import type { LoraConfig } from '../lora/config';
import { tokenizerFromFiles } from '../tokenizer/from-files';
import type { Tokenizer } from '../tokenizer/tokenizer';

/** The trainable model of a site (the Node agent builds it with node/model/local-model.ts, the browser with localModelFromFiles). */
export interface LocalModel {
  bert: BertModel;
  tokenizer: Tokenizer;
  classifier: SequenceClassifier;
  dispose(): void;
}

/** Tokens one input may have on this model: its position table (max_position_embeddings less RoBERTa's offset) and its tokenizer's limit. */
export function tokenLimit(m: Pick<LocalModel, 'bert' | 'tokenizer'>): number {
  return Math.min(m.tokenizer.maxLength, m.bert.config.maxPositions);
}

/** max_position_embeddings as config.json gives it, with the rows before the first position when there are any. */
function positionsOf(c: BertConfig): string {
  const rows = c.maxPositions + c.positionOffset;
  return c.positionOffset ? `${rows}, of which ${c.maxPositions} from position ${c.positionOffset} on` : `${rows}`;
}

/**
 * The --max-length to use on this model: one the user gave must fit (CONFIG_INVALID naming the limit otherwise); the
 * recipe's default is capped to the model quietly, since the user did not ask for it.
 */
export function resolveMaxLength(
  m: Pick<LocalModel, 'bert' | 'tokenizer'>,
  given: number | undefined,
  recipeDefault: number,
  source = 'the model',
): number {
  const limit = tokenLimit(m);
  if (given === undefined) return Math.min(recipeDefault, limit);
  if (given > limit)
    throw new FedloraError(
      'CONFIG_INVALID',
      `--max-length ${given} is more than ${source} can take: ${limit} tokens (max_position_embeddings ` +
        `${positionsOf(m.bert.config)}, tokenizer model_max_length ${m.tokenizer.maxLength})`,
    );
  return given;
}

/**
 * A base model's files by manifest path: config.json, tokenizer.json or vocab.txt, model.safetensors or
 * model.safetensors.index.json with its shards, tokenizer_config.json?
 */
export type ModelFiles = Record<string, Uint8Array>;

const utf8 = new TextDecoder();

/** Tokenizer + BERT + LoRA classifier from the files' bytes (the Node twin: node/model/local-model.ts reads a directory). */
export function localModelFromFiles(
  files: ModelFiles,
  o: { lora: LoraConfig; labels: string[]; pooling: Pooling; seed?: number; source?: string },
): LocalModel {
  const source = o.source ?? 'model';
  if (!files['config.json']) throw new FedloraError('MODEL_INVALID', `${source} has no config.json`);
  if (!files['model.safetensors'] && !files[SAFETENSORS_INDEX])
    throw new FedloraError('MODEL_INVALID', `${source} has no model.safetensors (nor ${SAFETENSORS_INDEX} with its shards)`);
  if (!files['tokenizer.json'] && !files['vocab.txt'])
    throw new FedloraError('MODEL_INVALID', `${source} has neither tokenizer.json nor vocab.txt`);
  const text = (name: string) => (files[name] ? utf8.decode(files[name]) : null);
  const configText = utf8.decode(files['config.json']);
  const tokenizer = tokenizerFromFiles(
    { tokenizerJson: text('tokenizer.json'), vocab: text('vocab.txt'), tokenizerConfig: text('tokenizer_config.json'), config: configText },
    source,
  );
  let configJson: unknown;
  try {
    configJson = JSON.parse(configText);
  } catch (err) {
    throw new FedloraError('MODEL_INVALID', `${source}/config.json is not valid JSON`, { cause: err });
  }
  const tensors = files['model.safetensors']
    ? parseSafetensors(files['model.safetensors'], `${source}/model.safetensors`).tensors
    : tensorsFromShards(parseSafetensorsIndex(utf8.decode(files[SAFETENSORS_INDEX]), `${source}/${SAFETENSORS_INDEX}`), files, source);
  return assembleLocalModel(checkpointFromTensors(configJson, tensors, source), tokenizer, o);
}

/** Frozen BERT + fresh LoRA adapter + head on a loaded checkpoint: the one place a site's classifier is put together. */
export function assembleLocalModel(
  ckpt: BertCheckpoint,
  tokenizer: Tokenizer,
  o: { lora: LoraConfig; labels: string[]; pooling: Pooling; seed?: number },
): LocalModel {
  const bert = new BertModel(ckpt);
  const adapter = new LoraAdapter(o.lora, bert.config, o.seed ?? 0);
  const classifier = new SequenceClassifier(bert, adapter, o.labels, o.pooling, o.seed ?? 0);
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
