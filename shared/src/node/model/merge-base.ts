// Node-only: a new base checkpoint from a base and a finished adapter (issue 24: federated domain adaptation, then a
// better base for every task). Reads both directories, checks that the adapter was made for this base (the base-model
// hash it records, when it records one, and every tensor's shape), folds the adapter in (lora/merge.ts), and writes a
// Hugging Face directory: config.json and the tokenizer files copied, model.safetensors (float32) with every tensor of
// the base under its own name, and fedlora-lineage.json naming the parent base and the adapter. The new directory has
// its own base-model hash (model-hash.ts), the one a coordinator serving it lists; the lineage file is not part of it.

import { copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FedloraError } from '../../errors';
import { checkpointFromTensors } from '../../model/checkpoint';
import { serializeSafetensors } from '../../model/safetensors';
import { loraScaling, type LoraConfig } from '../../lora/config';
import { mergeLoraWeights } from '../../lora/merge';
import { readLoraAdapterDir } from './adapter-dir';
import { readCheckpointFiles } from './load';
import { modelDirSha256 } from './model-hash';
import { assertWritableDir } from './save';

export const LINEAGE_FILE = 'fedlora-lineage.json';

/** Copied verbatim when the base has them: the config and every tokenizer file transformers or fedlora reads. */
const COPIED = ['config.json', 'vocab.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'merges.txt', 'vocab.json'] as const;

export interface Lineage {
  format: 'fedlora-lineage';
  v: 1;
  /** base-model hash of the merged directory (model-hash.ts) */
  sha256: string;
  parentBaseSha256: string;
  adapter: {
    format: 'fedlora' | 'peft';
    /** the federation's version id (native adapters); null for a PEFT directory */
    versionId: string | null;
    /** SHA-256 of the adapter's weights file */
    sha256: string;
    lora: LoraConfig;
    /** the MLM head tensors the adapter replaced in the base (cls.predictions.*); empty when it carried none */
    headTensors: string[];
  };
  createdAt: string;
  /** what wrote it, e.g. "fedlora-site 0.1.0" */
  tool: string;
}

export interface MergeIntoBaseOptions {
  baseDir: string;
  adapterDir: string;
  outDir: string;
  /** write into a non-empty outDir (files of the same name are replaced) */
  force?: boolean;
  /** recorded in the lineage, e.g. "fedlora-site 0.1.0" */
  tool: string;
  /** progress, one line per step */
  log?: (line: string) => void;
  now?: () => Date;
}

export interface MergeIntoBaseResult {
  outDir: string;
  lineage: Lineage;
  /** files written, lineage last */
  written: string[];
}

const short = (sha: string) => `${sha.slice(0, 16)}…`;

export async function mergeAdapterIntoBase(o: MergeIntoBaseOptions): Promise<MergeIntoBaseResult> {
  const log = o.log ?? (() => {});
  const out = resolve(o.outDir);
  for (const [flag, dir] of [['--base', o.baseDir], ['--adapter', o.adapterDir]] as const)
    if (resolve(dir) === out) throw new FedloraError('CONFIG_INVALID', `--out must differ from ${flag} (${dir})`);
  // every check before anything is written: a refused merge leaves --out as it was
  assertWritableDir(out, o.force ?? false);

  const parentBaseSha256 = await modelDirSha256(o.baseDir);
  const stored = readCheckpointFiles(o.baseDir);
  const base = checkpointFromTensors(stored.configJson, stored.tensors, o.baseDir, stored.weightsName); // names and shapes
  const c = base.config;
  log(`base ${o.baseDir}: ${c.family}, ${c.numLayers} layers, hidden ${c.hiddenSize}; base-model sha256 ${short(parentBaseSha256)}`);

  const adapter = await readLoraAdapterDir(o.adapterDir);
  const id = adapter.versionId ? `version ${adapter.versionId}` : `weights sha256 ${short(adapter.weightsSha256)}`;
  log(`adapter ${o.adapterDir}: ${adapter.format}, ${id}, r ${adapter.config.r}, alpha ${adapter.config.alpha}, targets ${adapter.config.targetModules.join(',')}`);
  if (adapter.baseModelSha256 === null)
    log(`warning: the adapter does not record its base model's hash; only the shapes of its tensors show that it fits this base`);
  else if (adapter.baseModelSha256 !== parentBaseSha256)
    throw new FedloraError(
      'HASH_MISMATCH',
      `the adapter was trained on base model ${short(adapter.baseModelSha256)}, but ${o.baseDir} is ${short(parentBaseSha256)}: ` +
        `merging it into another base would not give the model it was trained with; pass the base it was made for`,
    );

  const merged = mergeLoraWeights(stored.tensors, c, adapter);
  log(
    `merged ${merged.mergedWeights.length} linear weights (W + ${loraScaling(adapter.config)}·B·A)` +
      (merged.headTensors.length ? `; the adapter's MLM head replaced ${merged.headTensors.length} cls.predictions tensors` : ''),
  );
  // the written checkpoint must load as a model (names and shapes), as the base did
  checkpointFromTensors(stored.configJson, merged.tensors, o.outDir);

  mkdirSync(out, { recursive: true });
  const written: string[] = [];
  const put = (name: string, data: string | Uint8Array) => {
    writeFileSync(join(out, `${name}.tmp`), data);
    renameSync(join(out, `${name}.tmp`), join(out, name));
    written.push(join(out, name));
  };
  for (const name of COPIED)
    if (existsSync(join(o.baseDir, name))) {
      copyFileSync(join(o.baseDir, name), join(out, name));
      written.push(join(out, name));
    }
  put('model.safetensors', serializeSafetensors(merged.tensors, { metadata: { format: 'pt' } }));
  const sha256 = await modelDirSha256(out);
  const lineage: Lineage = {
    format: 'fedlora-lineage',
    v: 1,
    sha256,
    parentBaseSha256,
    adapter: {
      format: adapter.format,
      versionId: adapter.versionId,
      sha256: adapter.weightsSha256,
      lora: merged.config,
      headTensors: merged.headTensors,
    },
    createdAt: (o.now ?? (() => new Date()))().toISOString(),
    tool: o.tool,
  };
  put(LINEAGE_FILE, JSON.stringify(lineage, null, 2) + '\n');
  log(`wrote ${out}: base-model sha256 ${short(sha256)} (parent ${short(parentBaseSha256)})`);
  return { outDir: out, lineage, written };
}
