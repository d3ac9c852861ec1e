// Tests for stratified splits and federated partitions: exact counts, disjointness, coverage and determinism.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '../errors';
import {
  allocateProportional,
  dirichletPartition,
  iidPartition,
  quantitySkewPartition,
  stratifiedSplit,
  stratifiedSubset,
} from './split';

/** labels: `counts[c]` copies of class c, interleaved so classes are not contiguous. */
function makeLabels(counts: number[]): number[] {
  const out: number[] = [];
  const left = [...counts];
  while (left.some((c) => c > 0)) left.forEach((c, k) => c > 0 && (out.push(k), left[k]--));
  return out;
}

function classCounts(labels: number[], idx: number[], k: number): number[] {
  const out = new Array(k).fill(0);
  for (const i of idx) out[labels[i]]++;
  return out;
}

function assertExactCover(parts: number[][], n: number): void {
  const all = parts.flat().sort((a, b) => a - b);
  assert.deepEqual(
    all,
    Array.from({ length: n }, (_, i) => i),
  );
}

test('when allocating 5 over counts [5, 3, 2], then exact shares 2.5/1.5/1 round by largest remainder to [3, 1, 1]', () => {
  // Remainders 0.5, 0.5, 0: the tie goes to the lower class id.
  assert.deepEqual(allocateProportional([5, 3, 2], 5), [3, 1, 1]);
  assert.deepEqual(allocateProportional([5, 3, 2], 10), [5, 3, 2]);
  assert.deepEqual(allocateProportional([5, 3, 2], 0), [0, 0, 0]);
});

test('when splitting 10/5/5 examples with fraction 0.2, then held-out gets 2/1/1 and train 8/4/4, disjoint and complete', () => {
  const labels = makeLabels([10, 5, 5]);
  const { train, heldout } = stratifiedSplit(labels, 0.2, 13);
  assert.deepEqual(classCounts(labels, heldout, 3), [2, 1, 1]);
  assert.deepEqual(classCounts(labels, train, 3), [8, 4, 4]);
  assertExactCover([train, heldout], 20);
  assert.deepEqual(
    [...heldout].sort((a, b) => a - b),
    heldout,
    'indices come back sorted',
  );
});

test('when splitting twice with the same seed, then the split is identical; another seed picks other examples', () => {
  const labels = makeLabels([50, 30, 20]);
  assert.deepEqual(stratifiedSplit(labels, 0.3, 1), stratifiedSplit(labels, 0.3, 1));
  assert.notDeepEqual(stratifiedSplit(labels, 0.3, 1).heldout, stratifiedSplit(labels, 0.3, 2).heldout);
});

test('when fraction is 0 or 1, then one side is empty', () => {
  const labels = makeLabels([3, 2]);
  assert.deepEqual(stratifiedSplit(labels, 0, 1), { train: [0, 1, 2, 3, 4], heldout: [] });
  assert.deepEqual(stratifiedSplit(labels, 1, 1), { train: [], heldout: [0, 1, 2, 3, 4] });
  assert.throws(
    () => stratifiedSplit(labels, 1.5, 1),
    (e) => isFedloraError(e, 'CONFIG_INVALID'),
  );
});

test('when a label is not a non-negative integer, then DATA_INVALID names its index', () => {
  assert.throws(
    () => stratifiedSplit([0, 1, -1], 0.5, 1),
    (e) => isFedloraError(e, 'DATA_INVALID') && /index 2/.test(e.message),
  );
});

test('when taking a stratified subset of 6 from 60/30/10, then it holds 4/2/0 (largest remainder of 3.6/1.8/0.6)', () => {
  // floor gives 3/1/0 with 2 left; remainders .6, .8, .6 -> class 1 first, then class 0 (tie with 2, lower id).
  const labels = makeLabels([60, 30, 10]);
  const sub = stratifiedSubset(labels, 6, 4);
  assert.equal(sub.length, 6);
  assert.deepEqual(classCounts(labels, sub, 3), [4, 2, 0]);
  assert.equal(new Set(sub).size, 6);
  assert.throws(
    () => stratifiedSubset(labels, 101, 4),
    (e) => isFedloraError(e, 'CONFIG_INVALID'),
  );
});

test('when partitioning by Dirichlet over 1 site, then that site gets every example', () => {
  const labels = makeLabels([7, 3]);
  assert.deepEqual(dirichletPartition(labels, 1, 0.5, 1), [Array.from({ length: 10 }, (_, i) => i)]);
});

test('when partitioning 10 classes x 100 over 5 sites, then every example lands on exactly one site', () => {
  const labels = makeLabels(new Array(10).fill(100));
  for (const alpha of [0.05, 0.5, 100]) {
    const parts = dirichletPartition(labels, 5, alpha, 21);
    assert.equal(parts.length, 5);
    assertExactCover(parts, 1000);
    assert.ok(parts.every((p) => p.length >= 1));
  }
});

test('when alpha is large, then each site holds about 1/5 of every class; when small, sites see few classes', () => {
  const labels = makeLabels(new Array(10).fill(100));
  const near = dirichletPartition(labels, 5, 1e4, 3);
  for (const p of near)
    for (const c of classCounts(labels, p, 10)) assert.ok(Math.abs(c - 20) <= 5, `class count ${c}`);
  const skewed = dirichletPartition(labels, 5, 0.05, 3);
  // With alpha = 0.05 a class's mass goes almost entirely to one site, so a site sees ~2 of 10 classes (>= 10 would
  // be IID). Count classes holding more than 5% of a site.
  const seen = skewed.map((p) => classCounts(labels, p, 10).filter((c) => c > 0.05 * p.length).length);
  assert.ok(seen.reduce((s, x) => s + x, 0) / 5 < 5, `classes per site ${seen}`);
});

test('when alpha is small and there are many classes, then the last site is no more likely than the others to hold every class', () => {
  // 77 classes of 39 (Banking77's subset in docs/RESULTS.md): cutting at floor(share × n) gave the last site every
  // class's rounding remainder, i.e. all 77 labels on one site at alpha 0.1
  const labels = makeLabels(new Array(77).fill(39));
  for (const seed of [0, 1, 2]) {
    const parts = dirichletPartition(labels, 10, 0.1, seed);
    const classesPerSite = parts.map((p) => classCounts(labels, p, 77).filter((c) => c > 0).length);
    assert.ok(classesPerSite[9] < 60, `last site holds ${classesPerSite[9]} of 77 classes (all sites: ${classesPerSite})`);
  }
});

test('when the same seed is reused, then the Dirichlet partition is identical', () => {
  const labels = makeLabels([40, 40, 20]);
  assert.deepEqual(dirichletPartition(labels, 4, 0.3, 8), dirichletPartition(labels, 4, 0.3, 8));
  assert.notDeepEqual(dirichletPartition(labels, 4, 0.3, 8), dirichletPartition(labels, 4, 0.3, 9));
});

test('when minPerSite is 30 with tiny alpha, then every site is topped up to 30 and coverage is kept', () => {
  const labels = makeLabels([100, 100]);
  const parts = dirichletPartition(labels, 6, 0.01, 2, { minPerSite: 30 });
  assert.ok(
    parts.every((p) => p.length >= 30),
    `sizes ${parts.map((p) => p.length)}`,
  );
  assertExactCover(parts, 200);
});

test('when there are fewer examples than sites x minPerSite, then DATA_INVALID says so', () => {
  assert.throws(
    () => dirichletPartition([0, 1, 0], 4, 1, 1),
    (e) => isFedloraError(e, 'DATA_INVALID') && /4 sites/.test(e.message),
  );
  assert.throws(
    () => dirichletPartition([0, 1], 2, 0, 1),
    (e) => isFedloraError(e, 'CONFIG_INVALID'),
  );
});

test('when partitioning quantities with alpha 1e4, then 1000 examples split into 4 sites of about 250', () => {
  const parts = quantitySkewPartition(1000, 4, 1e4, 5);
  assertExactCover(parts, 1000);
  for (const p of parts) assert.ok(Math.abs(p.length - 250) <= 10, `size ${p.length}`);
});

test('when partitioning quantities with alpha 0.1, then sizes are very unequal but every site has >= 1', () => {
  const parts = quantitySkewPartition(1000, 4, 0.1, 5);
  assertExactCover(parts, 1000);
  const sizes = parts.map((p) => p.length);
  assert.ok(Math.max(...sizes) > 500, `sizes ${sizes}`);
  assert.ok(Math.min(...sizes) >= 1, `sizes ${sizes}`);
});

test('when dealing 10 examples IID to 3 sites, then sizes are 4, 3, 3 and cover everything', () => {
  const parts = iidPartition(10, 3, 1);
  assert.deepEqual(
    parts.map((p) => p.length),
    [4, 3, 3],
  );
  assertExactCover(parts, 10);
});
