// `npm run bench -- memory`: the peak tensor bytes of one training pass (forward kept for backward, then the
// gradients) of the default model on wasm, measured with tf.profile, against training-shape.ts's estimate — the
// estimate must stay above every measurement, or micro-batching would let a pass run out of memory.

import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '@fedlora/shared/node/backend.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import { summedCrossEntropy } from '@fedlora/shared/training/trainer.ts';
import { estimatePassMemory } from '@fedlora/shared/training/training-shape.ts';
import { stepModel } from './step-bench.ts';

const SHAPES: [number, number][] = [[16, 64], [32, 128], [8, 256], [4, 512]];

export async function runPassMemoryBench(out: (line: string) => void): Promise<void> {
  const backend = await initNodeBackend({ force: 'wasm', log: () => {} });
  out(`\n## Memory of one training pass (default model, LoRA r8 q,v; tfjs-${backend.name}; tf.profile peak tensor bytes)`);
  out('| batch × length | measured peak | estimate (training-shape.ts) | estimate / measured |');
  out('|---|---|---|---|');
  const m = stepModel(DEFAULT_MODEL_DIR, DEFAULT_RECIPE.lora);
  const clf = m.classifier;
  try {
    for (const [B, L] of SHAPES) {
      const ids = Int32Array.from({ length: B * L }, (_, i) => 1000 + ((i * 7919) % (clf.bert.config.vocabSize - 1000)));
      const batch = { inputIds: ids, tokenTypeIds: new Int32Array(B * L), attentionMask: new Int32Array(B * L).fill(1), batch: B, seqLen: L };
      const labels = tf.tensor1d(Array.from({ length: B }, (_, i) => i % 2), 'int32');
      const held = tf.memory().numBytes;
      const info = await tf.profile(() => {
        const { value, grads } = tf.variableGrads(() => summedCrossEntropy(clf.logits(batch, true), labels, clf.numLabels), clf.trainableVariables());
        tf.dispose([value, ...Object.values(grads)]);
      });
      labels.dispose();
      const peak = info.peakBytes - held;
      const est = estimatePassMemory(clf.bert.config, B, L).totalBytes;
      const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
      out(`| ${B} × ${L} | ${mib(peak)} | ${mib(est)} | ${(est / peak).toFixed(2)}x${est < peak ? ' (UNDER: raise TAPE_OVERHEAD)' : ''} |`);
    }
  } finally {
    m.dispose();
  }
}
