// How big one forward/backward pass may be on this backend: the recipe's batch is the optimization's (the
// federation agrees on it; changing it changes the math), but a pass over all of it at once may not fit a browser
// tab's or a small GPU's memory, or a single WebGPU buffer. So the batch is cut into micro-batches whose gradients
// are summed before the step (exactly the batch's gradient, up to float summation order), and only when even one
// example at the recipe's max length cannot fit is the max length lowered. The choice and the reason are one log
// line, so an operator sees why a site runs as it does.

import type { BertConfig } from '../model/checkpoint';

/** What the backend offers: total bytes a training pass may use, and the largest single buffer (WebGPU binding). */
export interface DeviceBudget {
  backend: string;
  /** bytes of activations one pass may hold (after the weights) */
  memoryBytes: number;
  /** the largest single tensor the backend can hold (WebGPU's maxStorageBufferBindingSize); Infinity when unbounded */
  maxBufferBytes: number;
  /** where memoryBytes came from, for the log line ('wasm heap limit 4 GiB', 'FEDLORA_DEVICE_MEMORY', ...) */
  source: string;
}

export interface TrainingShape {
  /** the optimization's batch (unchanged from the request) */
  batchSize: number;
  /** examples per forward/backward pass; equal to batchSize when the whole batch fits */
  microBatch: number;
  maxLength: number;
  /** one line for the log: the choice and why */
  reason: string;
}

// tfjs keeps far more than the textbook activations (each op's inputs and outputs on the tape, GELU's erf terms,
// LayerNorm's centred input, softmax's intermediates, the mask broadcast, and the backward pass's own buffers while
// the tape is alive): the peak tensor bytes of one pass of the default model on wasm (tf.profile; `npm run bench --
// memory`) were 8.6–9.7x the textbook count at 16 × 64, 32 × 128, 8 × 256 and 4 × 512, so 11x bounds them all.
const TAPE_OVERHEAD = 11;
const FLOAT_BYTES = 4;

/** Estimated bytes of one training pass (forward kept for backward) and its largest single tensor. */
export function estimatePassMemory(config: Pick<BertConfig, 'hiddenSize' | 'intermediateSize' | 'numHeads' | 'numLayers'>, batch: number, seqLen: number): { totalBytes: number; largestTensorBytes: number } {
  const { hiddenSize: H, intermediateSize: I, numHeads: nh, numLayers: N } = config;
  const tokens = batch * seqLen;
  // per layer: the block input, Q, K, V, context, attention output + residual + LayerNorm (3), FFN output + residual +
  // LayerNorm (3) = 11 H-wide rows per token; the FFN's pre- and post-GELU I-wide rows; scores and probabilities
  const perLayer = tokens * (11 * H + 2 * I) + 2 * batch * nh * seqLen * seqLen;
  const totalBytes = perLayer * N * FLOAT_BYTES * TAPE_OVERHEAD;
  const largestTensorBytes = Math.max(tokens * I, batch * nh * seqLen * seqLen, tokens * H * 3) * FLOAT_BYTES;
  return { totalBytes, largestTensorBytes };
}

const fits = (config: Parameters<typeof estimatePassMemory>[0], budget: DeviceBudget, batch: number, len: number) => {
  const m = estimatePassMemory(config, batch, len);
  return m.totalBytes <= budget.memoryBytes && m.largestTensorBytes <= budget.maxBufferBytes;
};

export const formatBytes = (b: number): string =>
  !Number.isFinite(b) ? 'unbounded' : b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(1)} GiB` : `${Math.round(b / 2 ** 20)} MiB`;

/**
 * The micro-batch (largest that fits, never more than one thread's share of `batchSize`) and max length for a run of
 * `batchSize` × `maxLength` on this budget, the batch shared by `threads` threads each with a budget of its own (wasm
 * workers: one heap each). The max length is lowered (halved, not below 16) only when one example does not fit.
 */
export function chooseTrainingShape(
  config: Parameters<typeof estimatePassMemory>[0],
  budget: DeviceBudget,
  batchSize: number,
  maxLength: number,
  threads = 1,
): TrainingShape {
  let len = maxLength;
  while (len > 16 && !fits(config, budget, 1, len)) len = Math.max(16, Math.floor(len / 2));
  const share = Math.ceil(batchSize / Math.max(1, threads));
  let micro = share;
  while (micro > 1 && !fits(config, budget, micro, len)) micro = Math.ceil(micro / 2);
  const need = estimatePassMemory(config, micro, len);
  const what =
    micro === share
      ? `batch ${batchSize} × ${len} in one pass${threads > 1 ? ` per thread (${threads} threads, ≤ ${share} each)` : ''}`
      : `batch ${batchSize} as micro-batches of ≤ ${micro}${threads > 1 ? ` on each of ${threads} threads` : ''} (gradients summed: the same step)`;
  const lowered = len < maxLength ? `; max length lowered ${maxLength} → ${len}: one example at ${maxLength} does not fit` : '';
  const reason =
    `training shape on ${budget.backend}: ${what}, ~${formatBytes(need.totalBytes)} of ${formatBytes(budget.memoryBytes)} ` +
    `(${budget.source}), largest tensor ${formatBytes(need.largestTensorBytes)} of ${formatBytes(budget.maxBufferBytes)}${lowered}`;
  return { batchSize, microBatch: micro, maxLength: len, reason };
}
