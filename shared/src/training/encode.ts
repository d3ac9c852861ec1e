// Dataset → token ids for training/evaluation, checking labels against the label list the classifier was built with.

import { FedloraError } from '../errors';
import type { LabeledDataset } from '../data/dataset';
import type { Tokenizer } from '../tokenizer/tokenizer';
import type { EncodedExample } from './batches';

export function encodeDataset(
  tok: Tokenizer,
  ds: LabeledDataset,
  labels: readonly string[],
  maxLength: number,
): EncodedExample[] {
  const index = new Map(labels.map((l, i) => [l, i]));
  const unknown = new Set<string>();
  const out = ds.examples.map((e) => {
    const label = index.get(e.label);
    if (label === undefined) unknown.add(e.label);
    const enc = tok.encode(e.text, undefined, { maxLength });
    return { inputIds: enc.inputIds, tokenTypeIds: enc.tokenTypeIds, label: label ?? -1 };
  });
  if (unknown.size)
    throw new FedloraError(
      'DATA_INVALID',
      `${ds.name}: ${unknown.size} label(s) not in the model's label set: ${[...unknown].slice(0, 5).join(', ')} (known: ${labels.slice(0, 10).join(', ')}${labels.length > 10 ? ', …' : ''})`,
    );
  return out;
}
