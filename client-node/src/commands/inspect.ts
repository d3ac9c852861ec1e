// `fedlora-site inspect`: how a user checks that a checkpoint loads and tokenizes as expected — prints the tokens,
// ids, and the last layer's [CLS] vector and mean-pooled vector (over real tokens) in full float32 precision.

import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { initNodeBackend, type BackendName } from '@fedlora/shared/node/backend.ts';
import { loadBertCheckpoint } from '@fedlora/shared/node/model/load.ts';
import { BertModel } from '@fedlora/shared/model/bert.ts';
import { loadTokenizer } from '@fedlora/shared/node/tokenizer/load.ts';
import { padBatch } from '@fedlora/shared/tokenizer/wordpiece.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { parseFlags, strFlag } from '../args';

export const help = `fedlora-site inspect --text T [--pair T2] [--model DIR] [--json] [--backend NAME]
  Loads a Hugging Face BERT, DistilBERT or RoBERTa directory (default: the shipped fedlora-bert-mini; tokenizer.json
  or vocab.txt, model.safetensors or its shards), tokenizes T (and T2 as a pair),
  runs the encoder and prints tokens, ids, the last-layer [CLS] vector and the mean-pooled vector (mean over all
  tokens of the sequence, [CLS] and [SEP] included), every value at full float32 precision.
  The default backend is cpu (deterministic float32); --backend picks another.`;

export interface InspectOptions {
  modelDir: string;
  text: string;
  pair?: string;
  json: boolean;
  backend: BackendName;
}

export function parse(argv: string[]): InspectOptions | 'help' {
  const f = parseFlags(argv, {
    model: { type: 'string' }, text: { type: 'string' }, pair: { type: 'string' }, json: { type: 'boolean' }, backend: { type: 'string' },
  });
  if (f.help) return 'help';
  const text = strFlag(f.text);
  if (text === undefined) throw new FedloraError('CONFIG_INVALID', '--text is required (the text to inspect)');
  return { modelDir: strFlag(f.model) ?? DEFAULT_MODEL_DIR, text, pair: strFlag(f.pair), json: Boolean(f.json), backend: (strFlag(f.backend) ?? 'cpu') as BackendName };
}

export interface InspectResult {
  model: string;
  tokens: string[];
  inputIds: number[];
  tokenTypeIds: number[];
  cls: number[];
  meanPooled: number[];
}

export async function inspectText(o: InspectOptions): Promise<InspectResult> {
  await initNodeBackend({ force: o.backend, log: () => {} });
  const tok = loadTokenizer(o.modelDir);
  const bert = new BertModel(loadBertCheckpoint(o.modelDir));
  try {
    const enc = tok.encode(o.text, o.pair, { maxLength: Math.min(tok.maxLength, bert.config.maxPositions) });
    const batch = padBatch([enc], tok.special.pad);
    const hidden = bert.forward(batch); // [1, T, H]
    const data = Array.from(await hidden.data()); // async: on webgpu in Node, dataSync needs OffscreenCanvas
    hidden.dispose();
    const H = bert.config.hiddenSize;
    const T = enc.inputIds.length;
    const mean = new Float32Array(H);
    for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) mean[h] += data[t * H + h];
    for (let h = 0; h < H; h++) mean[h] /= T;
    return { model: o.modelDir, tokens: enc.tokens, inputIds: enc.inputIds, tokenTypeIds: enc.tokenTypeIds, cls: data.slice(0, H), meanPooled: Array.from(mean) };
  } finally {
    bert.dispose();
    tf.disposeVariables();
  }
}

export async function run(o: InspectOptions, out: (line: string) => void = console.log): Promise<number> {
  const r = await inspectText(o);
  if (o.json) {
    out(JSON.stringify(r));
    return 0;
  }
  out(`model: ${r.model}`);
  out(`tokens (${r.tokens.length}): ${r.tokens.join(' ')}`);
  out(`ids: ${r.inputIds.join(' ')}`);
  if (o.pair) out(`token types: ${r.tokenTypeIds.join(' ')}`);
  out(`[CLS] vector (${r.cls.length}): ${r.cls.join(' ')}`);
  out(`mean-pooled vector (${r.meanPooled.length}): ${r.meanPooled.join(' ')}`);
  return 0;
}
