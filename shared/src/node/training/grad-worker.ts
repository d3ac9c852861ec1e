// A worker thread holding its own copy of the classifier: given the current trainable state and example indices it
// returns the summed cross-entropy loss and gradients. Used by parallel.ts (tfjs-wasm is single-threaded in
// Node, tfjs#3830, so data parallelism over worker threads is how a site uses more than one core).

import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend, type BackendName } from '../backend';
import { loadLocalModel } from '../model/local-model';
import type { LoraConfig } from '../../lora/config';
import type { Pooling } from '../../model/classifier';
import type { NamedTensors } from '../../tensor';
import { collate, type EncodedExample } from '../../training/batches';
import { summedCrossEntropy, type GradientOptions } from '../../training/trainer';

export interface WorkerInit {
  type: 'init';
  backend: BackendName;
  modelDir: string;
  lora: LoraConfig;
  labels: string[];
  pooling: Pooling;
  examples: EncodedExample[];
  padId: number;
}
export interface WorkerCompute {
  type: 'compute';
  id: number;
  state: NamedTensors;
  indices: number[];
  opts?: GradientOptions;
}

if (!parentPort) throw new Error('grad-worker must run in a worker thread');
const port = parentPort;
let ctx: { clf: ReturnType<typeof loadLocalModel>['classifier']; examples: EncodedExample[]; padId: number } | null = null;

port.on('message', async (msg: WorkerInit | WorkerCompute) => {
  try {
    if (msg.type === 'init') {
      await initNodeBackend({ force: msg.backend, log: () => {} });
      const m = loadLocalModel({ modelDir: msg.modelDir, lora: msg.lora, labels: msg.labels, pooling: msg.pooling });
      ctx = { clf: m.classifier, examples: msg.examples, padId: msg.padId };
      port.postMessage({ type: 'ready' });
      return;
    }
    if (!ctx) throw new Error('worker used before init');
    const { clf, examples, padId } = ctx;
    clf.setTrainableState(msg.state);
    const vars = clf.trainableVariables();
    // in passes of at most opts.microBatch examples (training-shape.ts), summed here: the share's exact gradient sum
    const micro = Math.max(1, Math.min(msg.opts?.microBatch ?? msg.indices.length, msg.indices.length));
    const gradSums: Record<string, Float32Array> = {};
    let lossSum = 0;
    for (let s = 0; s < msg.indices.length; s += micro) {
      const piece = msg.indices.slice(s, s + micro);
      const weights = msg.opts?.weights?.slice(s, s + micro);
      const b = collate(piece.map((i) => examples[i]), padId);
      const labels = tf.tensor1d(piece.map((i) => examples[i].label), 'int32');
      const { value, grads } = tf.variableGrads(
        () => summedCrossEntropy(clf.logits(b, true, undefined, msg.opts?.baseDropout ?? false), labels, clf.numLabels, weights),
        vars,
      );
      for (const v of vars) {
        const g = (await grads[v.name].data()) as Float32Array;
        const acc = gradSums[v.name];
        if (acc === undefined) gradSums[v.name] = g;
        else for (let k = 0; k < g.length; k++) acc[k] += g[k];
      }
      lossSum += (await value.data())[0];
      tf.dispose([value, labels, ...Object.values(grads)]);
    }
    port.postMessage({ type: 'result', id: msg.id, lossSum, gradSums }, Object.values(gradSums).map((g) => g.buffer as ArrayBuffer));
  } catch (err) {
    port.postMessage({ type: 'error', id: (msg as WorkerCompute).id ?? -1, message: (err as Error).message });
  }
});
