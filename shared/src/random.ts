// The one seeded PRNG of fedlora, for reproducible splits, training batch order, MLM masking and simulations: sfc32
// (Chris Doty-Humphrey's PractRand "small fast counting" generator) seeded through splitmix32; normal() by Box-Muller;
// gamma() by Marsaglia & Tsang (2000), "A Simple Method for Generating Gamma Variables", ACM TOMS 26(3).
// Only 32-bit integer ops (Math.imul, >>> 0), so a seed gives the same stream on every JS engine. Not for secrets.

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  // Box-Muller makes two normals per draw; keep the second.
  private spareNormal: number | null = null;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`Rng: seed must be a finite number, got ${seed}`);
    // splitmix32 spreads any seed (0, 1, 2, ... are typical) over the 128-bit state; sfc32 is poor with zero state.
    let s = Math.trunc(seed) >>> 0;
    const splitmix = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      return (z ^ (z >>> 15)) >>> 0;
    };
    this.a = splitmix();
    this.b = splitmix();
    this.c = splitmix();
    this.d = splitmix();
    // The reference implementation discards the first outputs so the state is well mixed.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). Rejection sampling, so no modulo bias even for large n. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296)
      throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    let x = this.nextUint32();
    while (x >= limit) x = this.nextUint32();
    return x % n;
  }

  /** Fisher-Yates shuffle in place; returns the same array. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = arr[i];
      arr[i] = arr[j];
      arr[j] = tmp;
    }
    return arr;
  }

  /** Standard normal N(0, 1). */
  normal(): number {
    if (this.spareNormal !== null) {
      const z = this.spareNormal;
      this.spareNormal = null;
      return z;
    }
    // 1 - next() is in (0, 1], so log() is finite.
    const u = 1 - this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Gamma(shape, scale 1); mean = variance = shape. */
  gamma(shape: number): number {
    if (!(shape > 0) || !Number.isFinite(shape))
      throw new RangeError(`Rng.gamma: shape must be > 0, got ${shape}`);
    if (shape < 1) {
      // Marsaglia-Tsang needs shape >= 1; boost: Gamma(a) = Gamma(a + 1) * U^(1/a).
      const u = 1 - this.next();
      return this.gamma(shape + 1) * Math.pow(u, 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.next();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /**
   * Dirichlet(alphas) sample, by normalising independent gammas. For tiny alphas every gamma can underflow to 0;
   * the limit of Dir(alpha -> 0) is all mass on one coordinate, so that is what we return then.
   */
  dirichlet(alphas: readonly number[]): number[] {
    if (alphas.length === 0) throw new RangeError('Rng.dirichlet: need at least one alpha');
    const g = alphas.map((a) => this.gamma(a));
    const sum = g.reduce((s, x) => s + x, 0);
    if (!(sum > 0) || !Number.isFinite(sum)) {
      const out = new Array<number>(alphas.length).fill(0);
      out[this.int(alphas.length)] = 1;
      return out;
    }
    return g.map((x) => x / sum);
  }
}

export function createRng(seed: number): Rng {
  return new Rng(seed);
}

/** The generator as a plain `() => number` uniform in [0, 1): the form shuffles and masking take (tests pass stubs). */
export function seededRandom(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}
