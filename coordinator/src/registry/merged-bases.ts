// Merged bases (issue 24): POST /api/versions/:id/merge folds a masked-LM federation's adapter version into the base
// model the coordinator serves, writing a new Hugging Face base directory under <data dir>/bases/<version id> with its
// own base-model hash and a lineage file naming the parent base and the adapter version
// (shared/src/node/model/merge-base.ts, the same code as `fedlora-site merge`). A classification federation then
// serves that directory (fedlora-coordinator --model <dir>), and its sites fetch and verify it by the manifest's hashes
// like any base. GET /api/bases lists what was merged.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FedloraError } from '@fedlora/shared/errors.ts';
import type { LoraConfig } from '@fedlora/shared/lora/config.ts';
import { NATIVE_ADAPTER_META, NATIVE_ADAPTER_WEIGHTS } from '@fedlora/shared/node/model/adapter-dir.ts';
import { LINEAGE_FILE, mergeAdapterIntoBase, type Lineage } from '@fedlora/shared/node/model/merge-base.ts';
import { modelDirSha256 } from '@fedlora/shared/node/model/model-hash.ts';
import type { AdapterStore } from './types';

/** A merged base as GET /api/bases and the merge route answer it. */
export interface MergedBase {
  /** the adapter version merged (also the directory's name) */
  versionId: string;
  /** where the base directory is, for --model of a later coordinator */
  dir: string;
  /** its base-model hash (model-hash.ts): what a coordinator serving it lists and its sites verify */
  sha256: string;
  parentBaseSha256: string;
  createdAt: string;
}

export interface MergedBasesOptions {
  store: AdapterStore;
  /** the base model this federation serves (its adapters were trained on it) */
  baseDir: string;
  lora: LoraConfig;
  /** where merged bases are written, one directory per version */
  dir: string;
  /** recorded in the lineage, e.g. "fedlora-coordinator 0.1.0" */
  tool: string;
  log?: (line: string) => void;
}

export class MergedBases {
  /** one merge at a time: each reads and writes tens of MB */
  private queue: Promise<unknown> = Promise.resolve();
  private baseSha: Promise<string> | null = null;

  constructor(private readonly o: MergedBasesOptions) {}

  list(): MergedBase[] {
    if (!existsSync(this.o.dir)) return [];
    return readdirSync(this.o.dir)
      .filter((name) => existsSync(join(this.o.dir, name, LINEAGE_FILE)))
      .sort()
      .map((name) => describe(join(this.o.dir, name), readLineage(join(this.o.dir, name))));
  }

  /**
   * Merges version `versionId` (it must be a masked-LM version: a classification adapter's head has no place in a
   * base). Merging the same version again answers the base already written (CONFLICT if it differs on disk).
   */
  merge(versionId: string): Promise<MergedBase> {
    const run = () => this.mergeNow(versionId);
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => {});
    return p;
  }

  private async mergeNow(versionId: string): Promise<MergedBase> {
    const v = await this.o.store.get(versionId);
    if (!v) throw new FedloraError('NOT_FOUND', `no version ${versionId}`);
    if (v.task !== 'mlm')
      throw new FedloraError('CONFLICT', `version ${versionId} is a classification adapter; only a masked-LM (--task mlm) version merges into a new base`);
    this.baseSha ??= modelDirSha256(this.o.baseDir);
    const parent = await this.baseSha;
    const out = join(this.o.dir, versionId);
    if (existsSync(join(out, LINEAGE_FILE))) {
      const lineage = readLineage(out);
      if (lineage.sha256 !== (await modelDirSha256(out)) || lineage.adapter.sha256 !== v.sha256)
        throw new FedloraError('CONFLICT', `${out} exists but does not hold version ${versionId} merged as recorded; move it away to merge again`);
      return describe(out, lineage);
    }
    // the version as a native adapter directory (fedlora-adapter.json + adapter.fedlora), bound to our base's hash
    const adapterDir = mkdtempSync(join(tmpdir(), 'fedlora-merge-'));
    try {
      writeFileSync(join(adapterDir, NATIVE_ADAPTER_WEIGHTS), await this.o.store.loadNative(versionId));
      writeFileSync(
        join(adapterDir, NATIVE_ADAPTER_META),
        JSON.stringify({ format: 'fedlora-adapter', v: 1, versionId, sha256: v.sha256, lora: this.o.lora, baseModelSha256: parent }),
      );
      const r = await mergeAdapterIntoBase({ baseDir: this.o.baseDir, adapterDir, outDir: out, tool: this.o.tool, log: this.o.log });
      return describe(r.outDir, r.lineage);
    } finally {
      rmSync(adapterDir, { recursive: true, force: true });
    }
  }
}

function readLineage(dir: string): Lineage {
  try {
    return JSON.parse(readFileSync(join(dir, LINEAGE_FILE), 'utf8')) as Lineage;
  } catch (err) {
    throw new FedloraError('FILE_CORRUPT', `${join(dir, LINEAGE_FILE)} is not valid JSON`, { cause: err });
  }
}

function describe(dir: string, l: Lineage): MergedBase {
  return { versionId: l.adapter.versionId ?? '', dir, sha256: l.sha256, parentBaseSha256: l.parentBaseSha256, createdAt: l.createdAt };
}
