// Loads a Hugging Face BERT checkpoint (config.json + model.safetensors) into named host tensors, checking every
// name and shape, with or without the "bert." prefix; extra tensors (cls.predictions.*, classifier.*) are kept aside.

import { FedloraError } from '../errors';
import { sameShape, type HostTensor, type NamedTensors } from '../tensor';
import { parseSafetensors } from './safetensors';

/** The fields of HF BertConfig that the encoder needs. */
export interface BertConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  maxPositions: number;
  typeVocabSize: number;
  layerNormEps: number;
  hiddenAct: 'gelu';
  /** dropout rates of HF training mode (used only when training asks for base dropout) */
  hiddenDropout: number;
  attentionDropout: number;
}

export interface BertCheckpoint {
  config: BertConfig;
  /** encoder weights keyed by HF names WITHOUT the "bert." prefix (e.g. "encoder.layer.0.attention.self.query.weight") */
  weights: NamedTensors;
  /** the masked-LM head (cls.predictions.*) when the checkpoint has one; the decoder is tied to word embeddings */
  mlmHead: NamedTensors | null;
  /** whether the pooler is present (it is optional in HF checkpoints saved with add_pooling_layer=False) */
  hasPooler: boolean;
}

export function parseBertConfig(raw: unknown, source = 'config.json'): BertConfig {
  const bad = (why: string) => new FedloraError('MODEL_INVALID', `${source}: ${why}`);
  if (typeof raw !== 'object' || raw === null) throw bad('not a JSON object');
  const c = raw as Record<string, unknown>;
  if (c.model_type !== undefined && c.model_type !== 'bert')
    throw new FedloraError('MODEL_UNSUPPORTED', `${source}: model_type "${String(c.model_type)}" is not "bert"`);
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw bad(`"${key}" must be a positive integer`);
    return v;
  };
  const act = c.hidden_act ?? 'gelu';
  if (act !== 'gelu')
    throw new FedloraError('MODEL_UNSUPPORTED', `${source}: hidden_act "${String(act)}" (only exact "gelu" is supported)`);
  if (c.position_embedding_type !== undefined && c.position_embedding_type !== 'absolute')
    throw new FedloraError('MODEL_UNSUPPORTED', `${source}: position_embedding_type must be "absolute"`);
  const config: BertConfig = {
    vocabSize: int('vocab_size'),
    hiddenSize: int('hidden_size'),
    numLayers: int('num_hidden_layers'),
    numHeads: int('num_attention_heads'),
    intermediateSize: int('intermediate_size'),
    maxPositions: int('max_position_embeddings', 512),
    typeVocabSize: int('type_vocab_size', 2),
    layerNormEps: typeof c.layer_norm_eps === 'number' ? c.layer_norm_eps : 1e-12,
    hiddenAct: 'gelu',
    hiddenDropout: typeof c.hidden_dropout_prob === 'number' ? c.hidden_dropout_prob : 0.1,
    attentionDropout: typeof c.attention_probs_dropout_prob === 'number' ? c.attention_probs_dropout_prob : 0.1,
  };
  if (config.hiddenSize % config.numHeads !== 0)
    throw bad(`hidden_size ${config.hiddenSize} is not divisible by num_attention_heads ${config.numHeads}`);
  return config;
}

/** Every encoder tensor name and its expected shape, in a fixed order. */
export function expectedBertShapes(c: BertConfig, withPooler: boolean): Record<string, number[]> {
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  const s: Record<string, number[]> = {
    'embeddings.word_embeddings.weight': [c.vocabSize, H],
    'embeddings.position_embeddings.weight': [c.maxPositions, H],
    'embeddings.token_type_embeddings.weight': [c.typeVocabSize, H],
    'embeddings.LayerNorm.weight': [H],
    'embeddings.LayerNorm.bias': [H],
  };
  for (let l = 0; l < c.numLayers; l++) {
    const p = `encoder.layer.${l}.`;
    for (const m of ['query', 'key', 'value']) {
      s[`${p}attention.self.${m}.weight`] = [H, H];
      s[`${p}attention.self.${m}.bias`] = [H];
    }
    s[`${p}attention.output.dense.weight`] = [H, H];
    s[`${p}attention.output.dense.bias`] = [H];
    s[`${p}attention.output.LayerNorm.weight`] = [H];
    s[`${p}attention.output.LayerNorm.bias`] = [H];
    s[`${p}intermediate.dense.weight`] = [I, H];
    s[`${p}intermediate.dense.bias`] = [I];
    s[`${p}output.dense.weight`] = [H, I];
    s[`${p}output.dense.bias`] = [H];
    s[`${p}output.LayerNorm.weight`] = [H];
    s[`${p}output.LayerNorm.bias`] = [H];
  }
  if (withPooler) {
    s['pooler.dense.weight'] = [H, H];
    s['pooler.dense.bias'] = [H];
  }
  return s;
}

/** Builds a checkpoint from config.json's parsed JSON and model.safetensors' bytes (isomorphic). */
export function bertCheckpointFromFiles(configJson: unknown, safetensors: Uint8Array, source = 'model'): BertCheckpoint {
  const config = parseBertConfig(configJson, `${source}/config.json`);
  const file = parseSafetensors(safetensors, `${source}/model.safetensors`);
  // HF saves BertModel without a prefix and Bert*For* models with "bert."; accept both.
  const strip = (name: string) => (name.startsWith('bert.') ? name.slice(5) : name);
  const all: NamedTensors = {};
  for (const [name, t] of Object.entries(file.tensors)) all[strip(name)] = t;
  const hasPooler = 'pooler.dense.weight' in all;
  const expected = expectedBertShapes(config, hasPooler);
  const weights: NamedTensors = {};
  const missing: string[] = [];
  for (const [name, shape] of Object.entries(expected)) {
    const t: HostTensor | undefined = all[name];
    if (!t) {
      missing.push(name);
      continue;
    }
    if (!sameShape(t.shape, shape))
      throw new FedloraError(
        'SHAPE_MISMATCH',
        `${source}/model.safetensors: ${name} has shape [${t.shape}], config.json implies [${shape}]`,
      );
    weights[name] = t;
  }
  if (missing.length)
    throw new FedloraError(
      'MODEL_INVALID',
      `${source}/model.safetensors is missing ${missing.length} encoder tensor(s): ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`,
    );
  let mlmHead: NamedTensors | null = null;
  const mlmNames = [
    'cls.predictions.transform.dense.weight',
    'cls.predictions.transform.dense.bias',
    'cls.predictions.transform.LayerNorm.weight',
    'cls.predictions.transform.LayerNorm.bias',
    'cls.predictions.bias',
  ];
  if (mlmNames.every((n) => n in all)) {
    mlmHead = {};
    for (const n of mlmNames) mlmHead[n] = all[n];
  }
  return { config, weights, mlmHead, hasPooler };
}
