// Arithmetic on numbers kept as their natural logarithms, and log(erfc(x)), for the RDP accountant (rdp-accountant.ts):
// its sums have terms like exp(i²/(2σ²)) that overflow a double, and Gaussian tail masses that underflow one.
// erfc is computed here rather than taken from a package: its two textbook expansions (Abramowitz & Stegun 7.1.6 and
// the Laplace continued fraction 7.1.14, evaluated with Lentz's method, Numerical Recipes §5.2) are short, reach
// double precision, and keep shared/ free of a dependency that only this file would use.

/** log(exp(a) + exp(b)) without overflow; -Infinity stands for 0. */
export function logAdd(a: number, b: number): number {
  const [lo, hi] = a < b ? [a, b] : [b, a];
  if (lo === -Infinity) return hi;
  return hi + Math.log1p(Math.exp(lo - hi));
}

/** log(exp(a) − exp(b)) for a ≥ b; -Infinity stands for 0. Throws RangeError when the difference would be negative. */
export function logSub(a: number, b: number): number {
  if (a < b) throw new RangeError(`logSub: the difference would be negative (log terms ${a} < ${b})`);
  if (b === -Infinity) return a;
  if (a === b) return -Infinity;
  return b + Math.log(Math.expm1(a - b));
}

const LOG_SQRT_PI = 0.5 * Math.log(Math.PI);
// Below this the power series loses little to the cancellation in 1 − erf(x) (erfc(2) ≈ 4.7e-3: about two digits);
// above it the continued fraction converges in a few dozen steps.
const SERIES_LIMIT = 2;
const MAX_TERMS = 1000;

/** erf(x) for |x| ≤ SERIES_LIMIT: (2/√π)·exp(−x²)·Σ 2ⁿx^(2n+1)/(1·3·…·(2n+1)), a series of positive terms (A&S 7.1.6). */
function erfBySeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 0; n < MAX_TERMS; n++) {
    term *= (2 * x2) / (2 * n + 3);
    sum += term;
    if (Math.abs(term) <= Math.abs(sum) * Number.EPSILON) return (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
  }
  throw new RangeError(`erf series did not converge at x = ${x}`);
}

/**
 * log(erfc(x)) for x > 0 from the Laplace continued fraction (A&S 7.1.14):
 * erfc(x) = exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), so the log never underflows however large x is.
 */
function logErfcByContinuedFraction(x: number): number {
  const tiny = 1e-300;
  // modified Lentz: f = b0 + a1/(b1 + a2/(b2 + …)) with b_n = x and a_n = n/2
  let f = x;
  let c = f;
  let d = 0;
  for (let n = 1; n < MAX_TERMS; n++) {
    const a = n / 2;
    d = x + a * d;
    d = Math.abs(d) < tiny ? tiny : d;
    d = 1 / d;
    c = x + a / c;
    c = Math.abs(c) < tiny ? tiny : c;
    const step = c * d;
    f *= step;
    if (Math.abs(step - 1) <= Number.EPSILON) return -x * x - LOG_SQRT_PI - Math.log(f);
  }
  throw new RangeError(`erfc continued fraction did not converge at x = ${x}`);
}

/** log(erfc(x)) to about double precision for every finite x (erfc itself underflows past x ≈ 26.5). */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === Infinity) return -Infinity;
  if (x === -Infinity) return Math.LN2;
  if (x > SERIES_LIMIT) return logErfcByContinuedFraction(x);
  // erfc(x) = 2 − erfc(−x): the small tail is subtracted from 2, with no cancellation
  if (x < -SERIES_LIMIT) return Math.log(2 - Math.exp(logErfcByContinuedFraction(-x)));
  return Math.log(1 - erfBySeries(x));
}
