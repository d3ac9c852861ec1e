// `fedlora-site predict`: classify a text, or every row of a CSV/JSONL file in batches, with the federation's current
// (or a given) global adapter from the coordinator, or offline with a saved adapter (--adapter DIR: native or PEFT).

import { closeSync, openSync, renameSync, writeSync } from 'node:fs';
import { BACKEND_NAMES, initNodeBackend, type BackendName } from '@fedlora/shared/node/backend.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { DEFAULT_MODEL_DIR, DEFAULT_MODEL_ID } from '@fedlora/shared/node/default-model.ts';
import { readTabularFile } from '@fedlora/shared/node/data/tabular.ts';
import { TEXT_COLUMN_CANDIDATES } from '@fedlora/shared/data/tabular-text.ts';
import { POOLINGS, type Pooling } from '@fedlora/shared/model/classifier.ts';
import { intFlag, parseFlags, strFlag } from '../args';
import { DEFAULT_STATE_DIR } from '../agent/state';
import { fetchGlobalAdapter, type FetchedAdapter } from '../agent/predict';
import { Predictor, readAdapterDir, writeNativeAdapterDir, type AdapterSpec } from '../agent/inference';
import { progressBar } from '../progress';

export const help = `fedlora-site predict (--text TEXT | --file FILE) [options]
  Classifies with an adapter merged into the base model and prints the predicted label and every label's probability.
  The adapter is the coordinator's current global version (or --version), fetched with this site's keys, or a saved
  one with --adapter DIR (offline: no coordinator).

  --text TEXT           the text to classify
  --file FILE           classify every row of a CSV/TSV/JSONL file, --batch-size texts per forward pass (texts of
                        like length batched together), with a progress bar on stderr; one JSON line per row {"index","label","probabilities"} (index: the
                        row's 0-based position among the data rows)
  --text-column NAME    the file's text column (default: the first of ${TEXT_COLUMN_CANDIDATES.join(', ')}, or the only column)
  --batch-size N (32)   texts per forward pass
  --out FILE            write the JSON lines to FILE instead of stdout
  --adapter DIR         a saved adapter instead of the coordinator's: a fedlora adapter directory (--save-adapter
                        writes one) or a Hugging Face PEFT directory (adapter_config.json + adapter_model.safetensors,
                        as train-local --save writes)
  --labels A,B,...      class labels of a PEFT adapter that does not record them
  --pooling mean|cls|pooler  override the adapter's pooling (default: recorded; 'pooler' for PEFT from outside fedlora)
  --max-length N        tokens per text (default: the adapter's, else 128; capped to the model)
  --version ID          adapter version id (default: the coordinator's current version)
  --save-adapter DIR    also save the fetched adapter as a fedlora adapter directory, for --adapter later
  --state-dir DIR       keys and site.json from join (default ${DEFAULT_STATE_DIR}; env FEDLORA_STATE_DIR)
  --model DIR           this site's copy of the base model (default: the shipped fedlora-bert-mini)
  --backend NAME        tensorflow|webgpu|wasm|cpu (default: FEDLORA_BACKEND or automatic)
  --json                (--text) print {"versionId","label","probabilities"} as one JSON line
  --quiet               no progress or log lines on stderr`;

export interface PredictCommandOptions {
  text?: string;
  file?: string;
  textColumn?: string;
  batchSize: number;
  out?: string;
  adapter?: string;
  labels?: string[];
  pooling?: Pooling;
  maxLength?: number;
  version?: string;
  saveAdapter?: string;
  stateDir: string;
  modelDir?: string;
  backend?: BackendName;
  json: boolean;
  quiet: boolean;
}

/** --backend, --pooling and --labels, checked: what `predict` and `serve` share about the model they load */
export function parseModelFlags(f: Record<string, string | boolean | undefined>): {
  backend: BackendName | undefined;
  pooling: Pooling | undefined;
  labels: string[] | undefined;
} {
  const backend = strFlag(f.backend) as BackendName | undefined;
  if (backend && !BACKEND_NAMES.includes(backend))
    throw new FedloraError('CONFIG_INVALID', `--backend must be one of ${BACKEND_NAMES.join(', ')}, got "${backend}"`);
  const pooling = strFlag(f.pooling) as Pooling | undefined;
  if (pooling && !POOLINGS.includes(pooling)) throw new FedloraError('CONFIG_INVALID', `--pooling must be one of ${POOLINGS.join(', ')}`);
  const labels = strFlag(f.labels)?.split(',').map((l) => l.trim());
  if (labels && (labels.length < 2 || labels.some((l) => !l) || new Set(labels).size !== labels.length))
    throw new FedloraError('CONFIG_INVALID', '--labels must name ≥ 2 distinct, non-empty labels, comma-separated');
  return { backend, pooling, labels };
}

export function parse(argv: string[], env: NodeJS.ProcessEnv = process.env): PredictCommandOptions | 'help' {
  const f = parseFlags(argv, {
    text: { type: 'string' }, file: { type: 'string' }, 'text-column': { type: 'string' }, 'batch-size': { type: 'string' },
    out: { type: 'string' }, adapter: { type: 'string' }, labels: { type: 'string' }, pooling: { type: 'string' },
    'max-length': { type: 'string' }, version: { type: 'string' }, 'save-adapter': { type: 'string' },
    'state-dir': { type: 'string' }, model: { type: 'string' }, backend: { type: 'string' }, json: { type: 'boolean' },
    quiet: { type: 'boolean' },
  });
  if (f.help) return 'help';
  const text = strFlag(f.text);
  const file = strFlag(f.file);
  if ((text === undefined) === (file === undefined)) throw new FedloraError('CONFIG_INVALID', 'give exactly one of --text TEXT or --file FILE');
  if (text !== undefined && !text.trim()) throw new FedloraError('CONFIG_INVALID', '--text must not be empty');
  const adapter = strFlag(f.adapter);
  for (const flag of ['version', 'save-adapter', 'state-dir'] as const)
    if (adapter && f[flag] !== undefined) throw new FedloraError('CONFIG_INVALID', `--${flag} is for the coordinator's adapters; leave it out with --adapter`);
  if (text !== undefined && (f['text-column'] !== undefined || f.out !== undefined))
    throw new FedloraError('CONFIG_INVALID', '--text-column and --out go with --file');
  const { backend, pooling, labels } = parseModelFlags(f);
  return {
    text,
    file,
    textColumn: strFlag(f['text-column']),
    batchSize: intFlag(f['batch-size'], 'batch-size', 32),
    out: strFlag(f.out),
    adapter,
    labels,
    pooling,
    maxLength: f['max-length'] === undefined ? undefined : intFlag(f['max-length'], 'max-length', 128, 3),
    version: strFlag(f.version),
    saveAdapter: strFlag(f['save-adapter']),
    stateDir: strFlag(f['state-dir']) ?? env.FEDLORA_STATE_DIR ?? DEFAULT_STATE_DIR,
    modelDir: strFlag(f.model),
    backend,
    json: Boolean(f.json),
    quiet: Boolean(f.quiet),
  };
}

/** The adapter and base model to classify with: a saved directory (offline) or the coordinator's version. */
export async function resolveAdapter(
  o: Pick<PredictCommandOptions, 'adapter' | 'labels' | 'pooling' | 'maxLength' | 'version' | 'saveAdapter' | 'stateDir' | 'modelDir'>,
  log: (line: string) => void,
): Promise<{ spec: AdapterSpec; modelDir: string }> {
  if (o.adapter) {
    const spec = await readAdapterDir(o.adapter, { labels: o.labels, pooling: o.pooling, maxLength: o.maxLength });
    return { spec, modelDir: o.modelDir ?? DEFAULT_MODEL_DIR };
  }
  const fetched = (await fetchGlobalAdapter({ stateDir: o.stateDir, version: o.version, modelDir: o.modelDir, log })) as FetchedAdapter;
  const spec: AdapterSpec = {
    ...fetched.spec,
    labels: o.labels ?? fetched.spec.labels,
    pooling: o.pooling ?? fetched.spec.pooling,
    maxLength: o.maxLength ?? fetched.spec.maxLength,
  };
  if (o.saveAdapter) {
    await writeNativeAdapterDir(o.saveAdapter, {
      versionId: spec.versionId, round: fetched.round, state: spec.state, lora: spec.lora, labels: spec.labels,
      pooling: spec.pooling, maxSeqLength: spec.maxLength, baseModel: fetched.baseModelId,
    });
    log(`adapter ${spec.versionId} saved to ${o.saveAdapter}`);
  }
  return { spec, modelDir: fetched.modelDir };
}

/** The texts of a CSV/TSV/JSONL file's text column (--text-column, a usual name, or the only column). */
export function readTexts(path: string, textColumn?: string): string[] {
  const table = readTabularFile(path);
  const have = table.columns.map((c) => JSON.stringify(c)).join(', ');
  let column = textColumn;
  if (column !== undefined && !table.columns.includes(column))
    throw new FedloraError('DATA_INVALID', `${path}: text column "${column}" not found; columns are: ${have}`);
  column ??= TEXT_COLUMN_CANDIDATES.find((c) => table.columns.includes(c)) ?? (table.columns.length === 1 ? table.columns[0] : undefined);
  if (column === undefined)
    throw new FedloraError('DATA_INVALID', `${path}: no text column (looked for ${TEXT_COLUMN_CANDIDATES.join(', ')}); columns are: ${have}; name one with --text-column`);
  const col = column;
  return table.rows.map(({ values, line }, r) => {
    const t = values[col];
    if (t === undefined) throw new FedloraError('DATA_INVALID', `${path}: row ${r + 1} (line ${line}) has no "${col}" field`);
    return t;
  });
}

export async function run(o: PredictCommandOptions, out: (line: string) => void = console.log): Promise<number> {
  const log = (line: string) => o.quiet || process.stderr.write(line + '\n');
  const backend = await initNodeBackend({ force: o.backend, log });
  const texts = o.file ? readTexts(o.file, o.textColumn) : [o.text as string];
  const { spec, modelDir } = await resolveAdapter(o, log);
  const predictor = Predictor.load(modelDir, spec);
  try {
    if (o.text !== undefined) {
      const [p] = await predictor.predict(texts);
      if (o.json) {
        out(JSON.stringify({ versionId: predictor.versionId, label: p.label, probabilities: p.probabilities }));
        return 0;
      }
      out(`${p.label}   (adapter ${predictor.versionId}, ${backend.name})`);
      const width = Math.max(...Object.keys(p.probabilities).map((l) => l.length));
      for (const [label, prob] of Object.entries(p.probabilities)) out(`  ${label.padEnd(width)}  ${prob.toFixed(4)}`);
      return 0;
    }
    log(`predicting ${texts.length} rows of ${o.file} with adapter ${predictor.versionId} (${spec.source === 'coordinator' ? 'coordinator' : spec.source}, ${modelDir === DEFAULT_MODEL_DIR ? DEFAULT_MODEL_ID : modelDir}) on ${backend.name}`);
    const fd = o.out ? openSync(`${o.out}.partial`, 'w') : null;
    const emit = fd === null ? out : (line: string) => writeSync(fd, line + '\n');
    const bar = progressBar('predict', texts.length, o.quiet, { format: 'predict [{bar}] {value}/{total} | {tps} texts/s | eta {eta_formatted}' });
    const t0 = performance.now();
    try {
      // windows of 64 batches: grouped by length inside a window, written in file order after it
      const window = 64 * o.batchSize;
      for (let start = 0; start < texts.length; start += window) {
        const preds = await predictor.predictAll(texts.slice(start, start + window), o.batchSize, (n) =>
          bar.update(start + n, { tps: ((start + n) / ((performance.now() - t0) / 1000)).toFixed(1) }),
        );
        preds.forEach((p, j) => emit(JSON.stringify({ index: start + j, label: p.label, probabilities: p.probabilities })));
      }
    } finally {
      bar.stop();
      if (fd !== null) closeSync(fd);
    }
    if (o.out) renameSync(`${o.out}.partial`, o.out);
    const secs = (performance.now() - t0) / 1000;
    log(`${texts.length} rows in ${secs.toFixed(1)} s (${(texts.length / secs).toFixed(1)} texts/s)${o.out ? `, written to ${o.out}` : ''}`);
    return 0;
  } finally {
    predictor.dispose();
  }
}
