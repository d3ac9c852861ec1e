// The model families fedlora runs: BERT (Devlin et al. 2019), DistilBERT (Sanh et al. 2019) and RoBERTa (Liu et al.
// 2019) share one post-LayerNorm transformer encoder; they differ in config.json's field names, the tensor names, and
// the embeddings (DistilBERT: no token types, no pooler, sinusoidal or learned positions; RoBERTa: positions counted
// from padding_idx + 1). Inside fedlora every tensor has its BERT name ("canonical"); each family here says how to read
// its config and what its tensors and LoRA target modules are called in its own checkpoints (transformers'
// modeling_bert.py, modeling_distilbert.py, modeling_roberta.py). A new family is one more entry in FAMILIES.

import { FedloraError } from '../errors';
import type { BertConfig } from './checkpoint';

export const MODEL_FAMILIES = ['bert', 'distilbert', 'roberta'] as const;

/** The six linear layers of an encoder layer (the LoRA targets), by their canonical module path below "encoder.layer.{l}.". */
export const LINEAR_PATHS = {
  query: 'attention.self.query',
  key: 'attention.self.key',
  value: 'attention.self.value',
  'attention.output': 'attention.output.dense',
  intermediate: 'intermediate.dense',
  output: 'output.dense',
} as const;
export type LinearName = keyof typeof LINEAR_PATHS;

export type ModelFamily = (typeof MODEL_FAMILIES)[number];

/** Reads config.json fields, each checked and named in errors. */
export interface ConfigReader {
  int(key: string, fallback?: number): number;
  num(key: string, fallback: number): number;
  raw(key: string): unknown;
  unsupported(why: string): FedloraError;
}

export interface ModelFamilyLayout {
  /** what a *For* model (sequence classification, masked LM) puts before the encoder's tensor names */
  prefix: string;
  /** the family's own name for a canonical (BERT) tensor name; null when the family has no such tensor */
  tensorName(canonical: string): string | null;
  /** the module path of a LoRA target in encoder layer `layer`, in the family's names (PEFT's module names) */
  modulePath(layer: number, linear: LinearName): string;
  readConfig(r: ConfigReader): BertConfig;
}

// BERT's names, one encoder layer: canonical module path → DistilBERT's (TransformerBlock in modeling_distilbert.py)
const DISTILBERT_MODULES: Record<string, string> = {
  'attention.self.query': 'attention.q_lin',
  'attention.self.key': 'attention.k_lin',
  'attention.self.value': 'attention.v_lin',
  'attention.output.dense': 'attention.out_lin',
  'attention.output.LayerNorm': 'sa_layer_norm',
  'intermediate.dense': 'ffn.lin1',
  'output.dense': 'ffn.lin2',
  'output.LayerNorm': 'output_layer_norm',
};

/** hidden_act: only the exact (erf) GELU is implemented. */
function activation(r: ConfigReader, key: string): 'gelu' {
  const act = r.raw(key) ?? 'gelu';
  if (act !== 'gelu') throw r.unsupported(`${key} "${String(act)}" (only exact "gelu" is supported)`);
  return 'gelu';
}

/** BERT and RoBERTa share BertConfig's fields; RoBERTa's positions start after padding_idx (its pad_token_id). */
function readBertLikeConfig(r: ConfigReader, family: 'bert' | 'roberta'): BertConfig {
  const pet = r.raw('position_embedding_type');
  if (pet !== undefined && pet !== 'absolute') throw r.unsupported('position_embedding_type must be "absolute"');
  const padTokenId = r.int('pad_token_id', family === 'roberta' ? 1 : 0);
  const positionOffset = family === 'roberta' ? padTokenId + 1 : 0;
  return {
    family,
    vocabSize: r.int('vocab_size'),
    hiddenSize: r.int('hidden_size'),
    numLayers: r.int('num_hidden_layers'),
    numHeads: r.int('num_attention_heads'),
    intermediateSize: r.int('intermediate_size'),
    maxPositions: r.int('max_position_embeddings', 512) - positionOffset,
    positionOffset,
    padTokenId,
    typeVocabSize: r.int('type_vocab_size', 2),
    sinusoidalPositions: false,
    layerNormEps: r.num('layer_norm_eps', 1e-12),
    hiddenAct: activation(r, 'hidden_act'),
    hiddenDropout: r.num('hidden_dropout_prob', 0.1),
    attentionDropout: r.num('attention_probs_dropout_prob', 0.1),
  };
}

const bertNames: Pick<ModelFamilyLayout, 'tensorName' | 'modulePath'> = {
  tensorName: (canonical) => canonical,
  modulePath: (layer, linear) => `encoder.layer.${layer}.${LINEAR_PATHS[linear]}`,
};

export const FAMILIES: Record<ModelFamily, ModelFamilyLayout> = {
  bert: { prefix: 'bert.', ...bertNames, readConfig: (r) => readBertLikeConfig(r, 'bert') },
  roberta: { prefix: 'roberta.', ...bertNames, readConfig: (r) => readBertLikeConfig(r, 'roberta') },
  distilbert: {
    prefix: 'distilbert.',
    tensorName(canonical) {
      if (canonical === 'embeddings.token_type_embeddings.weight' || canonical.startsWith('pooler.')) return null;
      const m = /^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$/.exec(canonical);
      if (!m) return canonical; // word and position embeddings, embeddings.LayerNorm: the same names
      return `transformer.layer.${m[1]}.${DISTILBERT_MODULES[m[2]]}.${m[3]}`;
    },
    modulePath: (layer, linear) => `transformer.layer.${layer}.${DISTILBERT_MODULES[LINEAR_PATHS[linear]]}`,
    readConfig: (r) => ({
      family: 'distilbert',
      vocabSize: r.int('vocab_size'),
      hiddenSize: r.int('dim'),
      numLayers: r.int('n_layers'),
      numHeads: r.int('n_heads'),
      intermediateSize: r.int('hidden_dim'),
      maxPositions: r.int('max_position_embeddings', 512),
      positionOffset: 0,
      padTokenId: r.int('pad_token_id', 0),
      typeVocabSize: 0, // DistilBERT has no token types
      sinusoidalPositions: r.raw('sinusoidal_pos_embds') === true,
      layerNormEps: 1e-12, // fixed in modeling_distilbert.py, not a config field
      hiddenAct: activation(r, 'activation'),
      hiddenDropout: r.num('dropout', 0.1),
      attentionDropout: r.num('attention_dropout', 0.1),
    }),
  },
};

/** The family config.json's model_type names (absent: BERT, as fedlora's own checkpoints are). */
export function modelFamilyOf(modelType: unknown, source: string): ModelFamily {
  if (modelType === undefined) return 'bert';
  if ((MODEL_FAMILIES as readonly unknown[]).includes(modelType)) return modelType as ModelFamily;
  throw new FedloraError(
    'MODEL_UNSUPPORTED',
    `${source}: model_type ${JSON.stringify(modelType)} is not supported (supported: ${MODEL_FAMILIES.join(', ')})`,
  );
}

/**
 * DistilBERT's fixed position table (create_sinusoidal_embeddings): sin at even dims, cos at odd, angle
 * pos / 10000^(2·⌊j/2⌋/dim). Used when a sinusoidal checkpoint does not store the table.
 */
export function sinusoidalPositions(rows: number, dim: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let pos = 0; pos < rows; pos++)
    for (let j = 0; j < dim; j++) {
      const angle = pos / Math.pow(10000, (2 * Math.floor(j / 2)) / dim);
      out[pos * dim + j] = j % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
    }
  return out;
}
