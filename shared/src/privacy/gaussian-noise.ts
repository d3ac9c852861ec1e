// Gaussian noise for differential privacy, from cryptographically secure randomness. The guarantee of the
// accountant (rdp-accountant.ts) assumes noise an observer cannot predict: a seeded PRNG (random.ts) or Math.random
// would let anyone who learns its state subtract the noise again. Uniforms come from tweetnacl's randomBytes (the
// platform's CSPRNG: node:crypto in Node, crypto.getRandomValues in a browser), normals from them by Box–Muller.
// The noise scale is DP-FedAvg's: McMahan, Ramage, Talwar & Zhang (2018), "Learning Differentially Private Recurrent
// Language Models", ICLR, Algorithm 1: the mean of m clipped deltas has sensitivity S/m, so its noise is z·S/m.

import { randomBytes } from '../crypto/bytes';
import { FedloraError } from '../errors';
import type { NamedTensors } from '../tensor';

/** A source of n uniform numbers in the open interval (0, 1). */
export type UniformSource = (n: number) => Float64Array;

const TWO_POW_53 = 2 ** 53;

/** n uniforms in (0, 1), each from 53 random bits (a double's full precision); never 0, so log(u) is finite. */
export function secureUniforms(n: number): Float64Array {
  const bytes = randomBytes(8 * n);
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, 2 * n);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const high27 = words[2 * i] >>> 5;
    const low26 = words[2 * i + 1] >>> 6;
    out[i] = (high27 * 2 ** 26 + low26 + 0.5) / TWO_POW_53;
  }
  return out;
}

/** n draws from N(0, std²) by the Box–Muller transform (each pair of uniforms gives two normals). */
export function gaussianSamples(n: number, std: number, uniforms: UniformSource = secureUniforms): Float64Array {
  if (!(std >= 0 && Number.isFinite(std))) throw new FedloraError('CONFIG_INVALID', `noise std must be finite and ≥ 0, got ${std}`);
  const out = new Float64Array(n);
  if (std === 0 || n === 0) return out;
  const u = uniforms(2 * Math.ceil(n / 2));
  for (let i = 0; i < n; i += 2) {
    const radius = std * Math.sqrt(-2 * Math.log(u[i]));
    const angle = 2 * Math.PI * u[i + 1];
    out[i] = radius * Math.cos(angle);
    if (i + 1 < n) out[i + 1] = radius * Math.sin(angle);
  }
  return out;
}

/**
 * The noise std DP-FedAvg adds to the mean of clipped deltas: z·S/m, for noise multiplier z, clip norm S and m the
 * expected number of participants (the fixed denominator, so that one site's presence moves the mean by at most S/m).
 */
export function meanNoiseStd(noiseMultiplier: number, clipNorm: number, expectedParticipants: number): number {
  if (!(noiseMultiplier >= 0 && Number.isFinite(noiseMultiplier)))
    throw new FedloraError('CONFIG_INVALID', `noise multiplier must be finite and ≥ 0, got ${noiseMultiplier}`);
  if (!(clipNorm > 0 && Number.isFinite(clipNorm))) throw new FedloraError('CONFIG_INVALID', `clip norm must be a finite number above 0, got ${clipNorm}`);
  if (!(expectedParticipants > 0)) throw new FedloraError('CONFIG_INVALID', `expected participants must be above 0, got ${expectedParticipants}`);
  return (noiseMultiplier * clipNorm) / expectedParticipants;
}

/** `tensors` plus independent N(0, std²) noise on every coordinate (a new tensor set; the input is not changed). */
export function addGaussianNoise(tensors: NamedTensors, std: number, uniforms: UniformSource = secureUniforms): NamedTensors {
  const out: NamedTensors = {};
  for (const [name, t] of Object.entries(tensors)) {
    const noise = gaussianSamples(t.data.length, std, uniforms);
    const data = new Float32Array(t.data.length);
    for (let i = 0; i < data.length; i++) data[i] = t.data[i] + noise[i];
    out[name] = { shape: [...t.shape], data };
  }
  return out;
}
