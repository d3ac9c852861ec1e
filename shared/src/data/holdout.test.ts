// The site's held-out split (issue 20 federated evaluation): the same on every run and after the file is reordered
// or grows, every class sampled at the asked rate, and nothing in both parts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { holdoutSplit, isHeldOut } from './holdout';
import type { LabeledDataset } from './dataset';

function dataset(n: number, from = 0): LabeledDataset {
  const labels = ['a', 'b', 'c'];
  return {
    name: 'd',
    labels,
    // class c is rarer: a split by position would under-sample it at random, a per-example draw keeps its rate
    examples: Array.from({ length: n }, (_, i) => ({ text: `message number ${from + i}`, label: labels[(from + i) % 7 === 0 ? 2 : (from + i) % 2] })),
  };
}

test('when a dataset is split twice, reordered, or grown, then each example keeps its side', () => {
  const ds = dataset(3000);
  const a = holdoutSplit(ds, 0.1);
  const again = holdoutSplit({ ...ds, examples: [...ds.examples].reverse() }, 0.1);
  const grown = holdoutSplit({ ...ds, examples: [...ds.examples, ...dataset(500, 3000).examples] }, 0.1);

  const texts = (d: LabeledDataset) => new Set(d.examples.map((e) => e.text));
  assert.deepEqual(texts(again.heldout), texts(a.heldout));
  for (const e of a.heldout.examples) assert.ok(texts(grown.heldout).has(e.text), `${e.text} left the held-out split`);
  for (const e of a.train.examples) assert.ok(texts(grown.train).has(e.text), `${e.text} left the training part`);
  assert.equal(a.train.examples.length + a.heldout.examples.length, ds.examples.length);
  for (const e of a.heldout.examples) assert.ok(!texts(a.train).has(e.text));
});

test('when a dataset is split at 0.1, then every class has about a tenth of its examples held out', () => {
  const ds = dataset(6000);
  const { heldout } = holdoutSplit(ds, 0.1);
  for (const label of ds.labels) {
    const all = ds.examples.filter((e) => e.label === label).length;
    const held = heldout.examples.filter((e) => e.label === label).length;
    // binomial: 3 standard deviations of n·0.1·0.9
    const sd = Math.sqrt(all * 0.09);
    assert.ok(Math.abs(held - 0.1 * all) < 3 * sd, `${label}: ${held} of ${all} held out`);
  }
});

test('when the seed differs, then the split differs; a fraction outside [0, 1) is refused', () => {
  const ds = dataset(500);
  const seeded = (seed: number) => ds.examples.filter((e) => isHeldOut(e, 0.2, seed)).map((e) => e.text);
  assert.notDeepEqual(seeded(1), seeded(2));
  assert.equal(holdoutSplit(ds, 0).heldout.examples.length, 0);
  assert.throws(() => holdoutSplit(ds, 1), /CONFIG_INVALID|fraction/);
  assert.throws(() => holdoutSplit(ds, Number.NaN), /fraction/);
});
