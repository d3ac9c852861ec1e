// Rényi differential privacy (RDP) accounting for the sampled Gaussian mechanism, as DP-FedAvg runs it: each round
// samples each site with probability q, clips every site's delta to S and adds N(0, (z·S)²) to their sum.
//   RDP of one round at order α: Mironov, Talwar & Zhang (2019), "Rényi Differential Privacy of the Sampled Gaussian
//     Mechanism", arXiv:1908.10530, §3: log A_α by a binomial sum for integer α (Theorem 5 / eq. 5) and by a series
//     of two Gaussian-tail sums for fractional α (§3.3); the same quantities Opacus (`privacy_analysis.py`, later
//     `accountants/analysis/rdp.py`) and TF Privacy (`rdp_accountant.py`) compute, so their test values hold here.
//   Composition: RDP at a fixed order adds up over rounds (Mironov 2017, "Rényi Differential Privacy", Prop. 1).
//   RDP → (ε, δ): Balle, Barthe, Gaboardi, Hsu & Sato (2020), "Hypothesis Testing Interpretations and Rényi
//     Differential Privacy", AISTATS, Theorem 21: ε = r + log((α−1)/α) − (log δ + log α)/(α−1), minimised over the
//     orders (what Opacus's get_privacy_spent uses).

import { FedloraError } from '../errors';
import { logAdd, logErfc, logSub } from './log-space';

/** Opacus's default orders (RDPAccountant.DEFAULT_ALPHAS): 1.1, 1.2, …, 10.9, then 12, 13, …, 63. */
const OPACUS_ORDERS: readonly number[] = [
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 52 }, (_, i) => 12 + i),
];

/** TF Privacy's orders in compute_dp_sgd_privacy: a few fractional ones near 1, 5 … 63, and 128, 256, 512. */
const TF_ORDERS: readonly number[] = [
  1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5,
  ...Array.from({ length: 59 }, (_, i) => 5 + i),
  128, 256, 512,
];

export const ORDER_GRIDS = { opacus: OPACUS_ORDERS, tf: TF_ORDERS } as const;
export type OrderGridName = keyof typeof ORDER_GRIDS;
export const ORDER_GRID_NAMES = Object.keys(ORDER_GRIDS) as OrderGridName[];

// The fractional-order series stops once both of its newest terms are below e^-30 (as TF Privacy and Opacus do);
// the cap only turns a bug into an error instead of a hang.
const SERIES_TAIL_LOG = -30;
const SERIES_MAX_TERMS = 100_000;

/** Throws CONFIG_INVALID unless 0 < q ≤ 1 and z > 0 (both finite). */
export function checkMechanism(sampleRate: number, noiseMultiplier: number): void {
  if (!(sampleRate > 0 && sampleRate <= 1))
    throw new FedloraError('CONFIG_INVALID', `sample rate q must be in (0, 1], got ${sampleRate}`);
  if (!(noiseMultiplier > 0 && Number.isFinite(noiseMultiplier)))
    throw new FedloraError('CONFIG_INVALID', `noise multiplier z must be a finite number above 0, got ${noiseMultiplier}`);
}

/**
 * log A_α for integer α ≥ 2 (MTZ 2019, eq. 5): A_α = Σ_{i=0..α} C(α,i)·(1−q)^(α−i)·q^i·exp((i²−i)/(2σ²)).
 * Every term is positive, so the sum is a plain log-space accumulation.
 */
function logAInteger(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  let logBinom = 0; // log C(α, i), updated term by term: C(α, i+1) = C(α, i)·(α−i)/(i+1)
  let logA = -Infinity;
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logBinom += Math.log((alpha - i + 1) / i);
    logA = logAdd(logA, logBinom + i * logQ + (alpha - i) * log1mQ + (i * i - i) / (2 * sigma * sigma));
  }
  return logA;
}

/**
 * log A_α for fractional α (MTZ 2019, §3.3): A_α splits at z0 = σ²·log(1/q − 1) + 1/2 into two integrals, each a
 * series over i of generalized binomials C(α, i) times a Gaussian tail mass. C(α, i) turns negative for some i > α,
 * so the series alternates there and needs log-space subtraction.
 */
function logAFractional(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const tailScale = Math.SQRT2 * sigma;
  let logA0 = -Infinity; // the integral over (−∞, z0]
  let logA1 = -Infinity; // the integral over [z0, ∞)
  let logAbsBinom = 0; // log |C(α, i)|
  let binomSign = 1;
  for (let i = 0; i < SERIES_MAX_TERMS; i++) {
    if (i > 0) {
      const factor = (alpha - i + 1) / i;
      logAbsBinom += Math.log(Math.abs(factor));
      binomSign *= Math.sign(factor);
    }
    const j = alpha - i;
    const logT0 = logAbsBinom + i * logQ + j * log1mQ;
    const logT1 = logAbsBinom + j * logQ + i * log1mQ;
    const logE0 = Math.log(0.5) + logErfc((i - z0) / tailScale);
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / tailScale);
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    if (binomSign > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < SERIES_TAIL_LOG) return logAdd(logA0, logA1);
  }
  throw new RangeError(`RDP series for order ${alpha} did not converge in ${SERIES_MAX_TERMS} terms`);
}

/**
 * RDP at order α > 1 of one round of the sampled Gaussian mechanism: sampling rate q, noise multiplier z (noise std
 * over sensitivity). Infinity where the mechanism gives no bound at that order (tiny z, huge α).
 */
export function sampledGaussianRdp(sampleRate: number, noiseMultiplier: number, order: number): number {
  checkMechanism(sampleRate, noiseMultiplier);
  if (!(order > 1)) throw new FedloraError('CONFIG_INVALID', `RDP order must be above 1, got ${order}`);
  // without sampling it is the plain Gaussian mechanism: α/(2σ²) (Mironov 2017, Prop. 7)
  if (sampleRate === 1) return order / (2 * noiseMultiplier * noiseMultiplier);
  const logA = Number.isInteger(order)
    ? logAInteger(sampleRate, noiseMultiplier, order)
    : logAFractional(sampleRate, noiseMultiplier, order);
  return logA / (order - 1);
}

export interface PrivacySpent {
  epsilon: number;
  /** the RDP order at which the bound on ε is tightest */
  order: number;
}

/**
 * (ε, δ) from RDP values at several orders (Balle et al. 2020, Theorem 21), at the order that gives the smallest ε.
 * ε is never below 0: a negative value still certifies (0, δ)-DP. An RDP r so small that √(1 − e^(−r)) ≤ δ gives
 * ε = 0 outright (as TF Privacy's _compute_eps does): r bounds the KL divergence, which bounds the total variation
 * distance by √(1 − e^(−KL)) (Bretagnolle–Huber), and total variation ≤ δ is (0, δ)-DP. So no rounds spend nothing.
 */
export function epsilonFromRdp(orders: readonly number[], rdp: readonly number[], delta: number): PrivacySpent {
  if (!(delta > 0 && delta < 1)) throw new FedloraError('CONFIG_INVALID', `delta must be in (0, 1), got ${delta}`);
  if (orders.length !== rdp.length || orders.length === 0)
    throw new FedloraError('CONFIG_INVALID', `need one RDP value per order, got ${rdp.length} for ${orders.length} orders`);
  let best: PrivacySpent = { epsilon: Infinity, order: NaN };
  for (let k = 0; k < orders.length; k++) {
    const a = orders[k];
    if (delta * delta + Math.expm1(-rdp[k]) >= 0) return { epsilon: 0, order: a };
    const eps = rdp[k] + Math.log((a - 1) / a) - (Math.log(delta) + Math.log(a)) / (a - 1);
    // NaN (∞ − ∞ at a useless order) is skipped, as Opacus's nanargmin does
    if (eps < best.epsilon) best = { epsilon: eps, order: a };
  }
  return { epsilon: Math.max(0, best.epsilon), order: best.order };
}

/** Everything that fixes the privacy of T identical rounds of the sampled Gaussian mechanism. */
export interface GaussianRounds {
  noiseMultiplier: number;
  sampleRate: number;
  rounds: number;
  delta: number;
  orders?: OrderGridName | readonly number[];
}

function ordersOf(orders: GaussianRounds['orders']): readonly number[] {
  return typeof orders === 'string' || orders === undefined ? ORDER_GRIDS[orders ?? 'opacus'] : orders;
}

function checkRounds(rounds: number): void {
  if (!(Number.isInteger(rounds) && rounds >= 0))
    throw new FedloraError('CONFIG_INVALID', `rounds must be a whole number ≥ 0, got ${rounds}`);
}

/** ε (and the order reaching it) after `rounds` identical rounds, for the given δ. */
export function privacySpent(p: GaussianRounds): PrivacySpent {
  checkRounds(p.rounds);
  const orders = ordersOf(p.orders);
  const rdp = orders.map((a) => p.rounds * sampledGaussianRdp(p.sampleRate, p.noiseMultiplier, a));
  return epsilonFromRdp(orders, rdp, p.delta);
}

/** The state an accountant persists: the orders and the RDP spent so far at each. */
export interface RdpLedger {
  orders: number[];
  rdp: number[];
}

/**
 * A running accountant for rounds that may differ (the sample rate q = sampled / enrolled sites changes as sites
 * enroll): RDP adds up per order, and ε is read off for any δ. Its whole state is a ledger of plain numbers.
 */
export class RdpAccountant {
  private readonly orders: number[];
  private readonly rdp: number[];

  constructor(orders: OrderGridName | readonly number[] = 'opacus', ledger?: RdpLedger) {
    this.orders = [...(ledger?.orders ?? ordersOf(orders))];
    this.rdp = ledger ? [...ledger.rdp] : this.orders.map(() => 0);
    if (this.rdp.length !== this.orders.length)
      throw new FedloraError('CONFIG_INVALID', `RDP ledger holds ${this.rdp.length} values for ${this.orders.length} orders`);
  }

  /** Adds `rounds` rounds of the sampled Gaussian mechanism with this q and z. */
  compose(sampleRate: number, noiseMultiplier: number, rounds = 1): void {
    checkRounds(rounds);
    for (let k = 0; k < this.orders.length; k++)
      this.rdp[k] += rounds * sampledGaussianRdp(sampleRate, noiseMultiplier, this.orders[k]);
  }

  /** ε spent so far for this δ, with the order reaching it; 0 before any round. */
  spent(delta: number): PrivacySpent {
    return epsilonFromRdp(this.orders, this.rdp, delta);
  }

  /** ε for δ if one more round with this q and z ran (the check before starting a round). */
  spentAfter(sampleRate: number, noiseMultiplier: number, delta: number): PrivacySpent {
    const next = new RdpAccountant(this.orders, this.ledger());
    next.compose(sampleRate, noiseMultiplier);
    return next.spent(delta);
  }

  ledger(): RdpLedger {
    return { orders: [...this.orders], rdp: [...this.rdp] };
  }
}
