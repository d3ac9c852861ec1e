// Turning encoded examples into padded batches: dynamic padding (each batch padded only to its longest sequence) and
// length-grouped shuffling (HF's group_by_length), so short texts do not pay for long ones.

import type { BertBatch } from '../model/bert';
import { padBatch } from '../tokenizer/wordpiece';

export interface EncodedExample {
  inputIds: number[];
  tokenTypeIds: number[];
  label: number;
}

/** Pads a list of examples to the longest among them (the tokenizer's padBatch; attentionMask is 1 on real tokens). */
export function collate(examples: EncodedExample[], padId: number): BertBatch {
  return padBatch(examples, padId);
}

export function shuffleInPlace<T>(xs: T[], rand: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

/**
 * Index batches for one epoch: shuffle, then within mega-chunks of `groupFactor` batches sort by length, cut into
 * batches and shuffle the batch order. groupFactor 1 = plain shuffling.
 */
export function epochBatches(lengths: number[], batchSize: number, rand: () => number, groupFactor = 20): number[][] {
  const order = shuffleInPlace(lengths.map((_, i) => i), rand);
  const batches: number[][] = [];
  const chunk = batchSize * Math.max(1, groupFactor);
  for (let s = 0; s < order.length; s += chunk) {
    const part = order.slice(s, s + chunk);
    if (groupFactor > 1) part.sort((a, b) => lengths[b] - lengths[a]);
    for (let i = 0; i < part.length; i += batchSize) batches.push(part.slice(i, i + batchSize));
  }
  return shuffleInPlace(batches, rand);
}

/** Batches in input order, grouped by length for evaluation (results are mapped back by index). */
export function evalBatches(lengths: number[], batchSize: number): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a]);
  const out: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) out.push(order.slice(i, i + batchSize));
  return out;
}
