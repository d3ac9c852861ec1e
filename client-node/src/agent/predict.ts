// Inference with a global adapter: fetch the current (or a given) version from the coordinator ('adapter:fetch'),
// check its hash, load it on the verified base model, merge it into the weights (PEFT's merge) and classify a text.

import * as tf from '@tensorflow/tfjs';
import { FedloraError, isFedloraError } from '@fedlora/shared/errors.ts';
import { initNodeBackend, type BackendName } from '@fedlora/shared/node/backend.ts';
import type { Pooling } from '@fedlora/shared/model/classifier.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import { loadLocalModel } from '@fedlora/shared/node/model/local-model.ts';
import { checkAdapterShapes, openAdapter } from '@fedlora/shared/round/participant.ts';
import { collate } from '@fedlora/shared/training/batches.ts';
import { chunkSource, resolveBaseModelDir } from './base-model';
import { connectAndAuthenticate, request } from './connection';
import { loadKeys, loadSiteConfig } from './state';

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

export async function predictText(o: PredictOptions): Promise<Prediction> {
  const log = o.log ?? ((line: string) => process.stderr.write(line + '\n'));
  if (!o.text.trim()) throw new FedloraError('CONFIG_INVALID', '--text must not be empty');
  const cfg = loadSiteConfig(o.stateDir);
  const keys = loadKeys(o.stateDir);
  const backend = await initNodeBackend({ force: o.backend, log });
  const { socket, manifest } = await connectAndAuthenticate(cfg.coordinator, cfg.siteId, keys);
  let modelDir: string;
  let fetched;
  try {
    try {
      fetched = await request(socket, 'adapter:fetch', { versionId: o.version ?? 'latest' });
    } catch (err) {
      if (isFedloraError(err, 'NOT_FOUND'))
        throw new FedloraError('NOT_FOUND', o.version ? `the coordinator has no adapter version ${o.version}` : 'the coordinator has no adapter version yet', { cause: err });
      throw err;
    }
    modelDir = await resolveBaseModelDir(manifest, { modelDir: o.modelDir, stateDir: o.stateDir, download: chunkSource(socket), quiet: true, log });
  } finally {
    socket.close();
  }
  const adapter = await openAdapter(fetched.adapter, fetched.adapterSha256, fetched.versionId);
  const pooling = (manifest as { pooling?: Pooling }).pooling ?? DEFAULT_RECIPE.pooling;
  const model = loadLocalModel({ modelDir, lora: manifest.lora, labels: manifest.labels, pooling, seed: 0 });
  try {
    const clf = model.classifier;
    checkAdapterShapes(adapter.adapter, clf.trainableShapes());
    clf.setTrainableState(adapter.adapter);
    clf.adapter.merge(model.bert); // one matmul per layer instead of the LoRA side path
    const tok = model.tokenizer;
    const enc = tok.encode(o.text, undefined, { maxLength: Math.min(manifest.maxSeqLength, tok.maxLength, model.bert.config.maxPositions) });
    const batch = collate([{ inputIds: enc.inputIds, tokenTypeIds: enc.tokenTypeIds, label: 0 }], tok.special.pad);
    const probs = tf.tidy(() => tf.softmax(clf.logits(batch, false)).dataSync() as Float32Array);
    const probabilities: Record<string, number> = {};
    manifest.labels.forEach((l, i) => (probabilities[l] = probs[i]));
    let best = 0;
    for (let i = 1; i < probs.length; i++) if (probs[i] > probs[best]) best = i;
    return { versionId: adapter.versionId, label: manifest.labels[best], probabilities, backend: backend.name };
  } finally {
    model.dispose();
  }
}
