// The SecAgg building blocks: the XSalsa20 PRG, pairwise seeds, the graph and the quantizer's bound and error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { isFedloraError } from '../errors';
import { expandSeed } from './prg';
import { pairwiseSeed, pairwiseSign } from './masks';
import { buildGraph, defaultDegree, defaultThreshold } from './graph';
import { checkQuantizationBound, dequantizeSum, layoutOf, levelsFor, quantizeWeighted } from './quantize';

const ctx = { runId: 'run-1', roundId: 'round-3', attempt: 0 };

test('when a seed is expanded, then it is XSalsa20: the first 32 keystream bytes equal nacl.secretbox of zeros after its Poly1305 key block', () => {
  const seed = nacl.randomBytes(32);
  const words = expandSeed(seed, 'self-mask', 16);
  const nonce = new Uint8Array(24);
  nonce.set(new TextEncoder().encode('fedlora/sa/self-mask').subarray(0, 20));
  // secretbox XORs the plaintext with the XSalsa20 keystream from byte 32 on (bytes 0..31 key Poly1305)
  const box = nacl.secretbox(new Uint8Array(32), nonce, seed);
  const stream = new Uint8Array(words.buffer);
  const fromBox = box.subarray(16, 48);
  assert.deepEqual(stream.subarray(32, 64), fromBox);
  assert.notDeepEqual(expandSeed(seed, 'pairwise-mask', 16), words);
});

test('when two sites agree on a pairwise seed, then both ends get the same 32 bytes, and another attempt or round gets a different one', async () => {
  const u = nacl.box.keyPair();
  const v = nacl.box.keyPair();
  const atU = await pairwiseSeed(u.secretKey, v.publicKey, ctx, 'site-a', 'site-b');
  const atV = await pairwiseSeed(v.secretKey, u.publicKey, ctx, 'site-b', 'site-a');
  assert.deepEqual(atU, atV);
  assert.equal(atU.length, 32);
  assert.notDeepEqual(await pairwiseSeed(u.secretKey, v.publicKey, { ...ctx, attempt: 1 }, 'site-a', 'site-b'), atU);
  assert.notDeepEqual(await pairwiseSeed(u.secretKey, v.publicKey, { ...ctx, roundId: 'round-4' }, 'site-a', 'site-b'), atU);
  assert.equal(pairwiseSign('site-a', 'site-b'), -pairwiseSign('site-b', 'site-a'));
});

test('when the graph is built for 100, 31 and 4 sites, then it is k-regular with k = 2⌈log2 n⌉+1 (even for odd n, capped at n−1) and 2t > k', () => {
  for (const [n, k] of [[100, 15], [31, 12], [4, 3]] as const) {
    assert.equal(defaultDegree(n), k);
    const ids = Array.from({ length: n }, (_, i) => `s${i}`);
    const g = buildGraph(ids, nacl.randomBytes(32));
    assert.equal(g.degree, k);
    for (const [u, ns] of g.neighbours) {
      assert.equal(ns.length, k);
      assert.ok(!ns.includes(u));
      for (const v of ns) assert.ok(g.neighbours.get(v)!.includes(u), `${u}–${v} symmetric`);
    }
    assert.equal(g.threshold, defaultThreshold(k));
    assert.ok(2 * g.threshold > k);
  }
  const seed = nacl.randomBytes(32);
  const ids = Array.from({ length: 20 }, (_, i) => `s${i}`);
  assert.deepEqual(buildGraph(ids, seed).neighbours, buildGraph(ids, seed).neighbours);
});

test('when n·Q reaches 2^32, then the setup is refused with the bound in the message', () => {
  const params = { clip: 1, levels: 2 ** 22, maxWeight: 1 };
  checkQuantizationBound(params, 1023);
  assert.throws(() => checkQuantizationBound(params, 1024), (e) => isFedloraError(e, 'CONFIG_INVALID') && /n·Q = 1024·4194304 = 4294967296 ≥ 2\^32/.test(e.message));
  assert.throws(() => checkQuantizationBound({ clip: 1, levels: 2, maxWeight: 2 ** 31 }, 2), (e) => isFedloraError(e, 'CONFIG_INVALID') && /maxWeight/.test(e.message));
});

test('when weighted deltas are quantized and their words summed, then the decoded sum is Σ w·clip(x) within n·2c·W/Q', () => {
  const params = { clip: 0.5, levels: 2 ** 16, maxWeight: 10 };
  const deltas = [
    { a: { shape: [2, 2], data: new Float32Array([0.1, -0.2, 0.9, -0.7]) } },
    { a: { shape: [2, 2], data: new Float32Array([0.3, 0.25, -0.1, 0.0]) } },
  ];
  const weights = [10, 4];
  const layout = layoutOf(deltas[0]);
  const sum = new Uint32Array(layout.length + 1);
  deltas.forEach((d, i) => quantizeWeighted(d, weights[i], layout, params).forEach((w, j) => (sum[j] += w)));
  const decoded = dequantizeSum(sum, layout, params);
  assert.equal(decoded.totalWeight, 14);
  // clipped to ±0.5: 10·[0.1, −0.2, 0.5, −0.5] + 4·[0.3, 0.25, −0.1, 0]
  const expected = [2.2, -1, 4.6, -5];
  const tolerance = (2 * 2 * params.clip * params.maxWeight) / params.levels;
  decoded.sum.a.data.forEach((x, i) => assert.ok(Math.abs(x - expected[i]) <= tolerance, `coordinate ${i}: ${x} vs ${expected[i]}`));
});

test('when the requested degree exceeds the sites that sent keys, or is odd for an odd count, then the graph caps it to n − 1 or adds one', () => {
  const ids = Array.from({ length: 9 }, (_, i) => `s${i}`);
  assert.equal(buildGraph(ids, nacl.randomBytes(32), { degree: 99 }).degree, 8);
  const g = buildGraph(ids, nacl.randomBytes(32), { degree: 5 });
  assert.equal(g.degree, 6);
  for (const ns of g.neighbours.values()) assert.equal(ns.length, 6);
});

test('when levels are chosen for n sites, then they are the largest even Q the bound accepts, and Q + 2 is refused', () => {
  const params = (levels: number) => ({ clip: 1, levels, maxWeight: 1 });
  for (const n of [1, 2, 3, 10, 100, 1000, 65_537]) {
    const q = levelsFor(n);
    assert.equal(q % 2, 0);
    checkQuantizationBound(params(q), n);
    if (q < 2 ** 31) assert.throws(() => checkQuantizationBound(params(q + 2), n), (e) => isFedloraError(e, 'CONFIG_INVALID'));
  }
  assert.equal(levelsFor(1000), 4_294_966);
  assert.throws(() => levelsFor(0), (e) => isFedloraError(e, 'CONFIG_INVALID'));
});
