// Inference with a global adapter: fetch the current (or a given) version from the coordinator ('adapter:fetch'),
// check its hash, load it on the verified base model, merge it into the weights (PEFT's merge) and classify texts
// (agent/inference.ts). predictText is the one-text path `fedlora-site predict --text` has always had.

import { FedloraError, isFedloraError } from '@fedlora/shared/errors.ts';
import { initNodeBackend, type BackendName } from '@fedlora/shared/node/backend.ts';
import type { Pooling } from '@fedlora/shared/model/classifier.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import { openAdapter } from '@fedlora/shared/round/participant.ts';
import { downloadAdapter } from '@fedlora/shared/connection/adapter-download.ts';
import { chunkSource, resolveBaseModelDir } from './base-model';
import { connectAndAuthenticate, request } from './connection';
import { loadKeys, loadSiteConfig, pinnedFingerprint } from './state';
import { verifyAdapterVersion } from '@fedlora/shared/protocol/signed-messages.ts';
import { Predictor, type AdapterSpec } from './inference';

export interface PredictOptions {
  stateDir: string;
  text: string;
  /** adapter version id; default: the coordinator's current one */
  version?: string;
  modelDir?: string;
  backend?: BackendName;
  log?: (line: string) => void;
}

export interface Prediction {
  versionId: string;
  label: string;
  /** label → probability, in the federation's label order */
  probabilities: Record<string, number>;
  backend: string;
}

export interface FetchAdapterOptions {
  stateDir: string;
  /** adapter version id; default: the coordinator's current one */
  version?: string;
  modelDir?: string;
  /**
   * skip the fetch when the coordinator's current version is this one (serve's poll): then null is returned.
   * Only with no `version`.
   */
  unlessCurrentIs?: string;
  log: (line: string) => void;
}

export interface FetchedAdapter {
  spec: AdapterSpec;
  round: number;
  /** the verified base model directory */
  modelDir: string;
  baseModelId: string;
}

/** Connects with the site's keys, fetches (and hash-checks) an adapter version and resolves the base model. */
export async function fetchGlobalAdapter(o: FetchAdapterOptions): Promise<FetchedAdapter | null> {
  const cfg = loadSiteConfig(o.stateDir);
  const keys = loadKeys(o.stateDir);
  const { socket, manifest, trust } = await connectAndAuthenticate(cfg.coordinator, cfg.siteId, keys, pinnedFingerprint(cfg, o.stateDir), { caFile: cfg.caFile, project: cfg.project });
  let modelDir: string;
  let fetched;
  try {
    if (!o.version && o.unlessCurrentIs !== undefined && manifest.versionId === o.unlessCurrentIs) return null;
    try {
      // in chunks, each hash-checked as it arrives: an adapter of any size (connection/adapter-download.ts)
      fetched = await downloadAdapter((req) => request(socket, 'adapter:chunk', req), o.version ?? 'latest');
    } catch (err) {
      if (isFedloraError(err, 'NOT_FOUND'))
        throw new FedloraError('NOT_FOUND', o.version ? `the coordinator has no adapter version ${o.version}` : 'the coordinator has no adapter version yet', { cause: err });
      throw err;
    }
    modelDir = await resolveBaseModelDir(manifest, { modelDir: o.modelDir, stateDir: o.stateDir, download: chunkSource(socket), quiet: true, log: o.log });
  } finally {
    socket.close();
  }
  // the version's hash must be the one the pinned coordinator signed: then the bytes checked against it are its adapter
  verifyAdapterVersion(trust, fetched);
  const adapter = await openAdapter(fetched.bytes, fetched.adapterSha256, fetched.versionId);
  const pooling = (manifest as { pooling?: Pooling }).pooling ?? DEFAULT_RECIPE.pooling;
  return {
    spec: {
      versionId: adapter.versionId,
      state: adapter.adapter,
      lora: manifest.lora,
      labels: manifest.labels,
      pooling,
      maxLength: manifest.maxSeqLength,
      source: 'coordinator',
    },
    round: adapter.round,
    modelDir,
    baseModelId: manifest.baseModel.id,
  };
}

export async function predictText(o: PredictOptions): Promise<Prediction> {
  const log = o.log ?? ((line: string) => process.stderr.write(line + '\n'));
  if (!o.text.trim()) throw new FedloraError('CONFIG_INVALID', '--text must not be empty');
  const backend = await initNodeBackend({ force: o.backend, log });
  const fetched = (await fetchGlobalAdapter({ stateDir: o.stateDir, version: o.version, modelDir: o.modelDir, log })) as FetchedAdapter;
  const predictor = Predictor.load(fetched.modelDir, fetched.spec);
  try {
    const [p] = await predictor.predict([o.text]);
    return { versionId: predictor.versionId, label: p.label, probabilities: p.probabilities, backend: backend.name };
  } finally {
    predictor.dispose();
  }
}
