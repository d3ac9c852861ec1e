// Must-show 2: blindness. Masked uploads are uniform on their uint32 words (χ², p > 0.001), the server decodes only
// the unmasked sum (a spy on the injected decoder), the overflow guard refuses n·Q ≥ 2^32, and a second attempt of
// the same round uses fresh keys and masks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { isFedloraError } from '../errors';
import { Rng } from '../random';
import type { NamedTensors } from '../tensor';
import { bytesToWords, type MaskedUpload, type SetupKeys } from './messages';
import { dequantizeSum, layoutOf, quantizeWeighted, type VectorLayout } from './quantize';
import { SecAggServer } from './server';
import { simulateSecAgg, simulatedSite } from './simulate';

/** Standard normal upper tail, from erfc by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7). */
function normalUpperTail(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erfc = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.exp(-x * x);
  return z >= 0 ? erfc / 2 : 1 - erfc / 2;
}

/**
 * χ² uniformity of the top 8 bits of uint32 words over 256 bins, and its p-value by the Wilson–Hilferty
 * approximation: (χ²/ν)^(1/3) is close to normal with mean 1 − 2/(9ν) and variance 2/(9ν) (ν = 255 here).
 */
function uniformityPValue(words: Uint32Array): { chi2: number; p: number } {
  const bins = new Float64Array(256);
  for (const w of words) bins[w >>> 24]++;
  const expected = words.length / 256;
  let chi2 = 0;
  for (const b of bins) chi2 += (b - expected) ** 2 / expected;
  const nu = 255;
  const z = (Math.cbrt(chi2 / nu) - (1 - 2 / (9 * nu))) / Math.sqrt(2 / (9 * nu));
  return { chi2, p: normalUpperTail(z) };
}

const ctx = { runId: 'run', roundId: 'round-7', attempt: 0 };
const params = { clip: 1, levels: 2 ** 22, maxWeight: 100 };

function delta(rng: Rng, n: number, sd: number): NamedTensors {
  return { 'layer.lora_B': { shape: [n], data: Float32Array.from({ length: n }, () => rng.normal() * sd) } };
}

test('when the χ² check is given quantized but unmasked words, then it rejects uniformity (the check can fail)', () => {
  const rng = new Rng(1);
  const d = delta(rng, 20_000, 0.01);
  const words = quantizeWeighted(d, 50, layoutOf(d), params);
  assert.ok(uniformityPValue(words).p < 1e-10);
});

test('when 12 sites upload masked deltas, then their words pass χ² uniformity (p > 0.001) and the decoder runs once, on the sum only', async () => {
  const rng = new Rng(2);
  const sites = Array.from({ length: 12 }, (_, i) => simulatedSite(`site-${i}`, delta(rng, 20_000, 0.01), 20 + i));
  const uploads: MaskedUpload[] = [];
  const decoded: Uint32Array[] = [];
  const spy = (sum: Uint32Array, layout: VectorLayout, p: typeof params) => {
    decoded.push(sum.slice());
    return dequantizeSum(sum, layout, p);
  };
  const outcome = await simulateSecAgg({ ctx, params, sites, decode: spy, onMaskedUpload: (m) => uploads.push(m), drops: { 'masked-upload': new Set(['site-3']) } });
  assert.ok(outcome.ok, outcome.ok ? '' : outcome.reason);

  const all = new Uint32Array(uploads.length * 20_001);
  uploads.forEach((u, i) => all.set(bytesToWords(u.masked), i * 20_001));
  const { chi2, p } = uniformityPValue(all);
  console.log(`# χ² = ${chi2.toFixed(1)} over 255 degrees of freedom, Wilson–Hilferty p = ${p.toFixed(3)}`);
  assert.ok(p > 0.001, `masked words are not uniform: χ² = ${chi2}, p = ${p}`);

  assert.equal(decoded.length, 1, 'the decoder runs once per attempt');
  // the one decoded vector is the unmasked sum: its weight word is Σ w of the 11 uploaders, which no single upload holds
  const weights = sites.filter((s) => s.siteId !== 'site-3').reduce((a, s) => a + s.weight, 0);
  assert.equal(decoded[0][20_000], weights);
  for (const u of uploads) assert.notDeepEqual(bytesToWords(u.masked), decoded[0]);
  assert.equal(outcome.result.totalWeight, weights);
});

test('when a round would sample 1,024 sites at Q = 2^22, then the server and the sites refuse to set up (n·Q ≥ 2^32)', () => {
  const d = { a: { shape: [4], data: new Float32Array(4) } };
  const make = (n: number) => new SecAggServer({ ctx, params: { clip: 1, levels: 2 ** 22, maxWeight: 1 }, sampledSites: n, layout: layoutOf(d), identityOf: () => undefined, graphSeed: nacl.randomBytes(32) });
  make(1023);
  assert.throws(() => make(1024), (e) => isFedloraError(e, 'CONFIG_INVALID') && /n·Q = 1024·4194304 = 4294967296 ≥ 2\^32/.test(e.message));
});

test('when the same sites run two attempts of the same round, then every key and every mask is fresh', async () => {
  const zero = { a: { shape: [4096], data: new Float32Array(4096) } }; // quantizes to all-zero words: the upload is the mask
  const sites = Array.from({ length: 6 }, (_, i) => simulatedSite(`site-${i}`, zero, 1));
  const run = async (attempt: number) => {
    const keys: SetupKeys[] = [];
    const uploads = new Map<string, Uint32Array>();
    const outcome = await simulateSecAgg({ ctx: { ...ctx, attempt }, params, sites, onSetupKeys: (k) => keys.push(k), onMaskedUpload: (m) => uploads.set(m.siteId, bytesToWords(m.masked).slice()) });
    assert.ok(outcome.ok);
    return { keys, uploads };
  };
  const first = await run(0);
  const second = await run(1);
  const seen = new Set<string>();
  for (const k of [...first.keys, ...second.keys])
    for (const key of [k.encryptionPublicKey, k.maskPublicKey]) {
      const hex = Buffer.from(key).toString('hex');
      assert.ok(!seen.has(hex), 'a public key was reused');
      seen.add(hex);
    }
  for (const [id, words] of first.uploads) {
    const again = second.uploads.get(id)!;
    let same = 0;
    for (let i = 0; i < words.length; i++) if (words[i] === again[i]) same++;
    assert.ok(same <= 2, `${id}: ${same} of ${words.length} mask words repeat across attempts`);
  }
});
