// The simulator's use of the shared splits: every training example in exactly one site, the label-skew shape that
// Dirichlet alpha promises, and the per-round site sampling shared by all arms.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labelHistograms, partitionSites } from './data';
import { sampleRound } from './federation';

// 4 classes × 100 examples, interleaved so input order says nothing about the class
const LABELS = Array.from({ length: 400 }, (_, i) => i % 4);

function assertEachOnce(sites: number[][], n: number): void {
  const seen = new Uint8Array(n);
  for (const s of sites) for (const i of s) seen[i]++;
  assert.deepEqual([...new Set(seen)], [1], 'every example must be in exactly one site');
}

/** For each class: the largest share of it that a single site holds. */
function maxClassShare(hist: number[][]): number[] {
  return hist[0].map((_, c) => Math.max(...hist.map((h) => h[c])) / hist.reduce((s, h) => s + h[c], 0));
}

test('when partitioning with Dirichlet alpha 0.05 and a fixed seed, then every example is assigned once and each class sits mostly on one site', () => {
  const sites = partitionSites(LABELS, { sites: 5, alpha: 0.05, quantitySkew: null, seed: 3 });
  assertEachOnce(sites, LABELS.length);
  const hist = labelHistograms(LABELS, sites, 4);
  // column sums are the class counts (100 each), whatever the split
  assert.deepEqual(hist[0].map((_, c) => hist.reduce((s, h) => s + h[c], 0)), [100, 100, 100, 100]);
  // Dir(0.05) over 5 sites puts most of a class's mass on one site (IID would give 0.2), so on average a single
  // site holds >= 75% of a class, and most sites see at most 2 of the 4 classes (IID: all 4)
  const shares = maxClassShare(hist);
  const mean = shares.reduce((s, x) => s + x, 0) / shares.length;
  assert.ok(mean >= 0.75, `mean max class share ${mean} should be >= 0.75`);
  const fewClasses = hist.filter((h) => h.filter((c) => c > 0).length <= 2).length;
  assert.ok(fewClasses >= 3, `${fewClasses} of 5 sites hold <= 2 classes; expected >= 3`);
});

test('when partitioning with Dirichlet alpha 1000, then sites are near IID (every class 20% ± 6 points on every site)', () => {
  const sites = partitionSites(LABELS, { sites: 5, alpha: 1000, quantitySkew: null, seed: 3 });
  assertEachOnce(sites, LABELS.length);
  const hist = labelHistograms(LABELS, sites, 4);
  for (const h of hist) for (const count of h) assert.ok(Math.abs(count - 20) <= 6, `class count ${count} should be near 20`);
});

test('when the seed is the same, then the partition is identical; when it differs, then it changes', () => {
  const spec = { sites: 5, alpha: 0.3, quantitySkew: null, seed: 11 };
  assert.deepEqual(partitionSites(LABELS, spec), partitionSites(LABELS, spec));
  assert.notDeepEqual(partitionSites(LABELS, spec), partitionSites(LABELS, { ...spec, seed: 12 }));
});

test('when alpha is iid, then site sizes differ by at most one and every example is assigned once', () => {
  const sites = partitionSites(LABELS, { sites: 7, alpha: null, quantitySkew: null, seed: 0 });
  assertEachOnce(sites, LABELS.length);
  assert.deepEqual([...new Set(sites.map((s) => s.length))].sort(), [57, 58]); // 400 = 7·57 + 1
});

test('when quantity skew is set, then site sizes are unequal but every example is still assigned once', () => {
  const sites = partitionSites(LABELS, { sites: 5, alpha: 1, quantitySkew: 0.2, seed: 1 });
  assertEachOnce(sites, LABELS.length);
  const sizes = sites.map((s) => s.length);
  assert.ok(Math.max(...sizes) >= 2 * Math.min(...sizes), `sizes ${sizes} should be skewed`);
});

test('when sampling a round, then k distinct sites are drawn, the same for the same seed and round', () => {
  const a = sampleRound(5, 2, 1000, 50, 0, 0);
  assert.equal(a.length, 50);
  assert.equal(new Set(a.map((s) => s.site)).size, 50);
  assert.ok(a.every((s) => s.site >= 0 && s.site < 1000 && !s.dropped && !s.straggler));
  assert.deepEqual(sampleRound(5, 2, 1000, 50, 0, 0), a);
  assert.notDeepEqual(sampleRound(5, 3, 1000, 50, 0, 0).map((s) => s.site), a.map((s) => s.site));
  assert.ok(sampleRound(5, 2, 1000, 50, 0, 1).every((s) => s.dropped), 'dropout probability 1 drops every site');
});
