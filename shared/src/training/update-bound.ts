// How far the sites' AdamW (optimizer.ts, its default betas) can move one weight in one round, whatever the data.
// The coordinator bounds an update's L2 norm with it (coordinator/src/rounds/update-bounds.ts), and secure aggregation
// without DP clips each coordinate to it before quantizing (simulations: --secagg-clip's default).

const ADAM_BETA1 = 0.9;
const ADAM_BETA2 = 0.999;
/** room for decoupled weight decay (lr·0.01·|w| per step, |w| ≪ 10) and for fp16/int8 rounding of the upload */
export const CEILING_MARGIN = 1.1;

/**
 * The most one AdamW step t (1-based) can move one weight, in units of the learning rate: |m̂ₜ| / √v̂ₜ ≤
 * √(1−β₂ᵗ)/(1−β₁ᵗ) · (1−β₁)/√(1−β₂) · √(Σⱼ₌₀ᵗ⁻¹ (β₁²/β₂)ʲ) by Cauchy–Schwarz. It is exactly 1 at t = 1, about
 * 1.06 at t = 12, and approaches 7.3 for long runs; warm-up and decay only lower the rate.
 */
export function adamStepBound(t: number): number {
  const r = (ADAM_BETA1 * ADAM_BETA1) / ADAM_BETA2;
  const geometric = (1 - r ** t) / (1 - r);
  const biasCorrection = Math.sqrt(1 - ADAM_BETA2 ** t) / (1 - ADAM_BETA1 ** t);
  return biasCorrection * ((1 - ADAM_BETA1) / Math.sqrt(1 - ADAM_BETA2)) * Math.sqrt(geometric);
}

/**
 * The most one weight can move in a round of at most `maxSteps` steps at `learningRate`: lr · Σₜ adamStepBound(t),
 * times CEILING_MARGIN. At lr 2e-3 and 12 steps it is 0.027.
 */
export function adamWeightCeiling(learningRate: number, maxSteps: number): number {
  let perWeight = 0;
  // the step bound has converged (to 1e-9) long before 10⁴ steps; later steps add its limit
  const exact = Math.min(maxSteps, 10_000);
  for (let t = 1; t <= exact; t++) perWeight += adamStepBound(t);
  perWeight += (maxSteps - exact) * adamStepBound(10_000);
  return CEILING_MARGIN * learningRate * perWeight;
}
