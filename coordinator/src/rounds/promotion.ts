// The promotion policy (issue 20): what the round loop decides about a new version, which the version stage stores as
// a candidate first. 'always' makes every version current (the behaviour before issue 20, and the default); 'auto'
// promotes a version whose metric is at least the current's minus the tolerance; 'never-worse' only one at least as
// good as the current; 'manual' leaves it waiting for an admin's approve or reject. A version that is not promoted
// stays a candidate, and the next round trains from the current version as before.

import type { HeldoutMetrics, PromotionDecision, VersionRecord } from '../registry/types';
import type { PromotionMetric, RoundSettings } from './settings';

/** The metric `m` of a version's held-out metrics, or null when it was not evaluated. */
export function metricValue(metrics: HeldoutMetrics | null | undefined, m: PromotionMetric): number | null {
  if (!metrics) return null;
  const f = metrics.federated;
  const values: Record<PromotionMetric, number | undefined> = {
    accuracy: metrics.accuracy,
    macro_f1: metrics.macroF1,
    loss: metrics.loss,
    // a version whose federated evaluation failed (no site answered) has none of these
    fed_accuracy: f?.accuracy,
    fed_macro_f1: f?.macroF1,
    fed_loss: f?.loss,
    fed_worst_site_accuracy: f?.worstSiteAccuracy,
  };
  const v = values[m];
  return v !== undefined && Number.isFinite(v) ? v : null;
}

/** true if `a` is better than or as good as `b` minus `tolerance` (loss: lower is better). */
export function atLeast(m: PromotionMetric, a: number, b: number, tolerance: number): boolean {
  return m === 'loss' || m === 'fed_loss' ? a <= b + tolerance : a >= b - tolerance;
}

const fmt = (x: number | null) => (x === null ? 'none' : Number(x.toFixed(6)).toString());

/** The policy's decision about `candidate`, given the version current now (null: none yet). */
export function promotionDecision(
  s: Pick<RoundSettings, 'promotion' | 'promotionMetric' | 'promotionTolerance'>,
  candidate: Pick<VersionRecord, 'id' | 'metrics'>,
  current: Pick<VersionRecord, 'id' | 'metrics'> | null,
  at: Date = new Date(),
): PromotionDecision {
  const metric = s.promotionMetric;
  const value = metricValue(candidate.metrics, metric);
  const currentValue = current ? metricValue(current.metrics, metric) : null;
  const base = { actor: 'policy', policy: s.promotion, metric, value, currentId: current?.id ?? null, currentValue, at: at.toISOString() };
  const vs = `${metric} ${fmt(value)} vs current ${current?.id ?? 'none'} ${fmt(currentValue)}`;
  switch (s.promotion) {
    case 'always':
      return { ...base, action: 'promote', reason: `policy always: every new version becomes current (${vs})` };
    case 'manual':
      return { ...base, action: 'wait', reason: `policy manual: waits for an admin to approve or reject (${vs})` };
    case 'auto':
    case 'never-worse': {
      const tolerance = s.promotion === 'auto' ? s.promotionTolerance : 0;
      if (current === null || currentValue === null)
        return { ...base, action: 'promote', reason: `policy ${s.promotion}: the current version has no ${metric} to compare (${vs})` };
      if (value === null)
        return { ...base, action: 'keep', reason: `policy ${s.promotion}: the candidate has no held-out ${metric} (evaluation failed); it stays a candidate` };
      const ok = atLeast(metric, value, currentValue, tolerance);
      const bound = tolerance > 0 ? ` ${metric === 'loss' || metric === 'fed_loss' ? '+' : '−'} tolerance ${tolerance}` : '';
      return ok
        ? { ...base, action: 'promote', reason: `policy ${s.promotion}: ${vs}${bound}: promoted` }
        : { ...base, action: 'keep', reason: `policy ${s.promotion}: ${vs}${bound}: worse, stays a candidate` };
    }
  }
}

/**
 * The version early stopping restores: the best by `metric` among those that were current at some point (not a
 * candidate an admin or the policy has not let through, not a rejected one); the earliest of equals.
 */
export function bestVersion(versions: readonly VersionRecord[], metric: PromotionMetric): VersionRecord | null {
  let best: { v: VersionRecord; x: number } | null = null;
  for (const v of versions) {
    if ((v.status ?? 'promoted') !== 'promoted') continue;
    const x = metricValue(v.metrics, metric);
    if (x === null) continue;
    if (!best || (atLeast(metric, x, best.x, 0) && x !== best.x)) best = { v, x };
  }
  return best?.v ?? null;
}
