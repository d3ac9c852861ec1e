// `fedlora-site merge`: folds a finished adapter (typically a masked-LM one from domain adaptation) into its base
// model for good, writing a new Hugging Face base directory with its own hash and a lineage file
// (shared/src/node/model/merge-base.ts).

import { readFileSync } from 'node:fs';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { LINEAGE_FILE, mergeAdapterIntoBase } from '@fedlora/shared/node/model/merge-base.ts';
import { parseFlags, strFlag } from '../args';

export const help = `fedlora-site merge --base DIR --adapter DIR --out DIR [--force] [--json] [--quiet]
  Merges a LoRA adapter into the base model it was trained on: every adapted linear weight becomes W + (alpha/r)·B·A
  (PEFT's merge_and_unload), and an adapter that carries a masked-LM head (cls.predictions.*, from masked-LM
  adaptation) replaces the base's head. The result is a Hugging Face directory that --model of every command, the
  coordinator's --model and transformers can load: config.json and the tokenizer files copied from --base,
  model.safetensors (float32, every tensor of the base under its own name), and ${LINEAGE_FILE} naming the parent
  base's hash, the adapter (version id or weights sha256, LoRA config) and this tool. Prints the new base-model hash
  (the one a coordinator serving the directory lists; the lineage file is not part of it).

  --base DIR       the base model directory (BERT, DistilBERT or RoBERTa; model.safetensors or shards)
  --adapter DIR    a fedlora adapter directory (fedlora-adapter.json + adapter.fedlora) or a PEFT directory
                   (adapter_config.json + adapter_model.safetensors). When it records its base's hash
                   (baseModelSha256, or fedlora.base_model_sha256 in a PEFT config) that hash must be --base's.
  --out DIR        where to write; must be absent or empty unless --force (required)
  --force          write into a non-empty --out (files of the same name are replaced, others kept)
  --json           print the lineage as JSON as the last stdout line
  --quiet          no progress lines on stderr

  Exit status: 0 merged; 1 refused (HASH_MISMATCH: the adapter was made for another base; SHAPE_MISMATCH: its tensors
  do not fit this base; ADAPTER_INVALID, MODEL_INVALID, FILE_NOT_FOUND); 2 a bad command line or a non-empty --out.`;

export interface MergeCliOptions {
  base: string;
  adapter: string;
  out: string;
  force: boolean;
  json: boolean;
  quiet: boolean;
}

export function parse(argv: string[]): MergeCliOptions | 'help' {
  const f = parseFlags(argv, {
    base: { type: 'string' }, adapter: { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' },
    json: { type: 'boolean' }, quiet: { type: 'boolean' },
  });
  if (f.help) return 'help';
  const need = (flag: string, what: string) => {
    const v = strFlag(f[flag]);
    if (!v) throw new FedloraError('CONFIG_INVALID', `--${flag} DIR is required (${what})`);
    return v;
  };
  return {
    base: need('base', 'the base model the adapter was trained on'),
    adapter: need('adapter', 'the adapter to merge'),
    out: need('out', 'where the merged base is written'),
    force: Boolean(f.force),
    json: Boolean(f.json),
    quiet: Boolean(f.quiet),
  };
}

/** "fedlora-site <version of this package>", recorded in the lineage. */
function toolName(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return `fedlora-site ${pkg.version ?? 'unknown'}`;
}

export async function run(o: MergeCliOptions, out: (line: string) => void = console.log): Promise<number> {
  const r = await mergeAdapterIntoBase({
    baseDir: o.base,
    adapterDir: o.adapter,
    outDir: o.out,
    force: o.force,
    tool: toolName(),
    log: (line) => o.quiet || process.stderr.write(line + '\n'),
  });
  out(`merged base written to ${r.outDir}: base-model sha256 ${r.lineage.sha256} (parent ${r.lineage.parentBaseSha256})`);
  if (o.json) out(JSON.stringify(r.lineage));
  return 0;
}
