// Loads a Hugging Face BERT, DistilBERT or RoBERTa checkpoint (config.json + safetensors) into named host tensors under
// their canonical (BERT) names, checking every name and shape, with or without the family's prefix ("bert.",
// "distilbert.", "roberta."); extra tensors (cls.predictions.*, lm_head.*, classifier.*) are kept aside or ignored.
// families.ts says how each family names things.

import { FedloraError } from '../errors';
import { sameShape, type HostTensor, type NamedTensors } from '../tensor';
import { FAMILIES, modelFamilyOf, sinusoidalPositions, type ConfigReader, type ModelFamily } from './families';

/** The fields of a BERT-family config.json that the encoder needs, whatever the family calls them. */
export interface BertConfig {
  family: ModelFamily;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  /** the most tokens one input may have: max_position_embeddings less the rows before the first position */
  maxPositions: number;
  /** the position row of a sequence's first token: RoBERTa's padding_idx + 1, else 0 */
  positionOffset: number;
  /** config.json's pad_token_id: RoBERTa numbers positions over the tokens that are not this id */
  padTokenId: number;
  /** rows of the token-type table; 0 when the family has none (DistilBERT) */
  typeVocabSize: number;
  /** DistilBERT's sinusoidal_pos_embds: the position table is fixed, and rebuilt when a checkpoint leaves it out */
  sinusoidalPositions: boolean;
  layerNormEps: number;
  hiddenAct: 'gelu';
  /** dropout rates of HF training mode (used only when training asks for base dropout) */
  hiddenDropout: number;
  attentionDropout: number;
}

export interface BertCheckpoint {
  config: BertConfig;
  /** encoder weights keyed by canonical (BERT) names without a prefix (e.g. "encoder.layer.0.attention.self.query.weight") */
  weights: NamedTensors;
  /** the masked-LM head (cls.predictions.*) when a BERT checkpoint has one; the decoder is tied to word embeddings */
  mlmHead: NamedTensors | null;
  /** whether the pooler is present (optional in HF checkpoints saved with add_pooling_layer=False; DistilBERT has none) */
  hasPooler: boolean;
}

/** config.json of any supported family; model_type picks the family (absent: bert). */
export function parseBertConfig(raw: unknown, source = 'config.json'): BertConfig {
  const bad = (why: string) => new FedloraError('MODEL_INVALID', `${source}: ${why}`);
  if (typeof raw !== 'object' || raw === null) throw bad('not a JSON object');
  const c = raw as Record<string, unknown>;
  const family = modelFamilyOf(c.model_type, source);
  const reader: ConfigReader = {
    int(key, fallback) {
      const v = c[key] ?? fallback;
      // pad_token_id may be 0; every size must be positive
      const min = key === 'pad_token_id' ? 0 : 1;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
        throw bad(`"${key}" must be ${min === 0 ? 'a non-negative' : 'a positive'} integer`);
      return v;
    },
    num: (key, fallback) => (typeof c[key] === 'number' ? (c[key] as number) : fallback),
    raw: (key) => c[key],
    unsupported: (why) => new FedloraError('MODEL_UNSUPPORTED', `${source}: ${why}`),
  };
  const config = FAMILIES[family].readConfig(reader);
  if (config.hiddenSize % config.numHeads !== 0)
    throw bad(`hidden size ${config.hiddenSize} is not divisible by ${config.numHeads} attention heads`);
  if (config.maxPositions < 1)
    throw bad(`max_position_embeddings leaves no position for a token (padding_idx ${config.padTokenId})`);
  return config;
}

/** Every encoder tensor's canonical name and its expected shape, in a fixed order. */
export function expectedBertShapes(c: BertConfig, withPooler: boolean): Record<string, number[]> {
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  const s: Record<string, number[]> = {
    'embeddings.word_embeddings.weight': [c.vocabSize, H],
    'embeddings.position_embeddings.weight': [c.positionOffset + c.maxPositions, H],
    'embeddings.LayerNorm.weight': [H],
    'embeddings.LayerNorm.bias': [H],
  };
  if (c.typeVocabSize > 0) s['embeddings.token_type_embeddings.weight'] = [c.typeVocabSize, H];
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

/**
 * Builds a checkpoint from config.json's parsed JSON and every tensor of the checkpoint (one file's, or all shards'),
 * under the family's own names; `weightsName` names the file(s) in errors.
 */
export function checkpointFromTensors(configJson: unknown, tensors: NamedTensors, source = 'model', weightsName = 'model.safetensors'): BertCheckpoint {
  const config = parseBertConfig(configJson, `${source}/config.json`);
  const family = FAMILIES[config.family];
  // HF saves the bare model (BertModel, DistilBertModel, ...) without a prefix and its *For* models with one; accept both.
  const all: NamedTensors = {};
  for (const [name, t] of Object.entries(tensors)) all[name.startsWith(family.prefix) ? name.slice(family.prefix.length) : name] = t;
  const hasPooler = family.tensorName('pooler.dense.weight') !== null && 'pooler.dense.weight' in all;
  const expected = expectedBertShapes(config, hasPooler);
  const weights: NamedTensors = {};
  const missing: string[] = [];
  for (const [name, shape] of Object.entries(expected)) {
    const stored = family.tensorName(name) as string;
    let t: HostTensor | undefined = all[stored];
    if (!t && name === 'embeddings.position_embeddings.weight' && config.sinusoidalPositions)
      t = { shape, data: sinusoidalPositions(shape[0], shape[1]) };
    if (!t) {
      missing.push(stored);
      continue;
    }
    if (!sameShape(t.shape, shape))
      throw new FedloraError(
        'SHAPE_MISMATCH',
        `${source}/${weightsName}: ${stored} has shape [${t.shape}], config.json implies [${shape}]`,
      );
    weights[name] = t;
  }
  if (missing.length)
    throw new FedloraError(
      'MODEL_INVALID',
      `${source}/${weightsName} is missing ${missing.length} encoder tensor(s) (${config.family} names): ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`,
    );
  let mlmHead: NamedTensors | null = null;
  const mlmNames = [
    'cls.predictions.transform.dense.weight',
    'cls.predictions.transform.dense.bias',
    'cls.predictions.transform.LayerNorm.weight',
    'cls.predictions.transform.LayerNorm.bias',
    'cls.predictions.bias',
  ];
  // only BERT's masked-LM head is read (fedlora-site pretrain); the other families' heads are ignored
  if (config.family === 'bert' && mlmNames.every((n) => n in all)) {
    mlmHead = {};
    for (const n of mlmNames) mlmHead[n] = all[n];
  }
  return { config, weights, mlmHead, hasPooler };
}
