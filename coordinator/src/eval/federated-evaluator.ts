// Federated evaluation (issue 20): the round's candidate adapter goes to every ready site in 'round:evaluate'; each
// scores it on its own held-out split (sites started with --holdout) and answers with its confusion matrix and loss
// sum only. The replies are checked at this edge (shape against the federation's labels, counts, finite loss:
// shared/evaluation/federated-evaluation.ts checkSiteEvaluation) and combined into the metrics of the union of the
// splits, with each site's own row. A site that declines (no split), times out, fails or answers malformed is left
// out and logged; it never fails the evaluation unless no site is left.
// federatedEvaluation() puts it behind the round loop's Evaluator: beside the central held-out evaluation when the
// coordinator has a held-out set (metrics.federated), or as the version's metrics when it has none.

import { createHash } from 'node:crypto';
import { FedloraError, describeError } from '@fedlora/shared/errors.ts';
import { combineEvaluations, type SiteEvaluation } from '@fedlora/shared/evaluation/federated-evaluation.ts';
import { encodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { LIMITS } from '@fedlora/shared/protocol/limits.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import type { Logger } from '../log';
import type { FederatedMetrics, HeldoutMetrics } from '../registry/types';
import type { EvaluateMessage, EvaluationContext, Evaluator, RoundTransport } from '../rounds/types';
import type { CandidateAdapters } from './candidate-adapters';

export interface FederatedEvaluatorOptions {
  transport: Pick<RoundTransport, 'available' | 'evaluate'>;
  /** the federation's labels, in class-id order: every site's matrix must be labels.length square */
  labels: readonly string[];
  /** where a candidate over the inline limit is offered for 'adapter:chunk' while it is evaluated */
  candidates: CandidateAdapters;
  /** how long each site has to answer (read at each evaluation: the settings may change) */
  timeoutMs: () => number;
  /** tokens per example when there is no round (version 0) */
  maxLength: () => number;
  log: Logger;
}

/** why a site's evaluation is left out, for the version record and the log */
function codeOf(err: unknown): string {
  return err instanceof FedloraError ? err.code : 'INTERNAL';
}

export class FederatedEvaluator {
  constructor(private readonly o: FederatedEvaluatorOptions) {}

  /** Asks every ready site to score `state`; DATA_INVALID when none returned a usable evaluation. */
  async evaluate(state: NamedTensors, ctx?: EvaluationContext): Promise<FederatedMetrics> {
    const { o } = this;
    const roundId = ctx?.roundId ?? 'r0';
    const versionId = `${roundId}.candidate`;
    const bytes = encodeAdapter({ versionId, round: ctx?.round ?? 0, adapter: state });
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const large = bytes.byteLength > LIMITS.adapterInlineBytes;
    const msg: EvaluateMessage = {
      roundId,
      versionId,
      ...(large ? { adapterBytes: bytes.byteLength } : { adapter: bytes }),
      adapterSha256: sha256,
      maxLength: ctx?.maxLength ?? o.maxLength(),
    };
    const withdraw = large ? o.candidates.offer(versionId, { bytes, sha256 }) : () => {};
    const sites = o.transport.available().map((s) => s.siteId);
    const timeout = o.timeoutMs();
    const returned: { siteId: string; evaluation: SiteEvaluation }[] = [];
    const missing: { siteId: string; code: string }[] = [];
    try {
      await Promise.all(
        sites.map(async (siteId) => {
          try {
            const reply = await o.transport.evaluate(siteId, msg, timeout);
            if ('declined' in reply) {
              missing.push({ siteId, code: reply.declined });
              return;
            }
            const evaluation = { n: reply.numExamples, lossSum: reply.lossSum, confusion: reply.confusion };
            // checked here, one site at a time, so that one malformed answer leaves only that site out
            combineEvaluations(o.labels, [{ siteId, evaluation }]);
            returned.push({ siteId, evaluation });
          } catch (err) {
            missing.push({ siteId, code: codeOf(err) });
            o.log('evaluate.site_left_out', { round: ctx?.round, site: siteId, code: codeOf(err), error: describeError(err) });
          }
        }),
      );
    } finally {
      withdraw();
    }
    // the same order whatever order the answers came in
    returned.sort((a, b) => a.siteId.localeCompare(b.siteId));
    missing.sort((a, b) => a.siteId.localeCompare(b.siteId));
    if (returned.length === 0)
      throw new FedloraError(
        'DATA_INVALID',
        `federated evaluation: none of the ${sites.length} ready site(s) returned an evaluation` +
          (missing.length ? ` (${missing.map((m) => `${m.siteId}: ${m.code}`).join(', ')})` : ''),
      );
    const fed = combineEvaluations(o.labels, returned);
    o.log('evaluate.federated', {
      round: ctx?.round,
      sites: fed.sites.length,
      leftOut: missing.length,
      examples: fed.report.n,
      accuracy: fed.report.accuracy,
      worstSite: fed.worstSite.siteId,
      worstSiteAccuracy: fed.worstSite.accuracy,
    });
    return {
      accuracy: fed.report.accuracy,
      macroF1: fed.report.macroF1,
      loss: fed.loss,
      examples: fed.report.n,
      perClass: fed.report.perClass.map((c) => ({ ...c })),
      worstSiteAccuracy: fed.worstSite.accuracy,
      worstSite: fed.worstSite.siteId,
      sites: fed.sites.map((s) => ({ siteId: s.siteId, examples: s.n, accuracy: s.accuracy, macroF1: s.macroF1, loss: s.loss })),
      missing,
    };
  }
}

/**
 * The round loop's Evaluator with federated evaluation: with a central evaluator, its metrics plus `federated` (a
 * federated evaluation that fails leaves them without it); without one, the federated metrics are the version's
 * (source 'federated'), and an evaluation no site answered fails like a failed central one (the version has none).
 */
export function federatedEvaluation(central: Evaluator | null, federated: FederatedEvaluator, log: Logger): Evaluator {
  return {
    async evaluate(state, ctx) {
      const [c, f] = await Promise.allSettled([
        central ? central.evaluate(state, ctx) : Promise.resolve(null),
        federated.evaluate(state, ctx),
      ]);
      if (c.status === 'rejected') throw c.reason;
      if (c.value) {
        if (f.status === 'rejected') log('evaluate.federated_failed', { round: ctx?.round, error: describeError(f.reason) });
        return f.status === 'fulfilled' ? { ...c.value, federated: f.value } : c.value;
      }
      if (f.status === 'rejected') throw f.reason;
      const m = f.value;
      return {
        accuracy: m.accuracy,
        macroF1: m.macroF1,
        loss: m.loss,
        examples: m.examples,
        perClass: m.perClass,
        source: 'federated',
        federated: m,
      } satisfies HeldoutMetrics;
    },
  };
}

/** How long each site has to score a candidate: the evaluate stage's limit less 5 s to combine and store the answers. */
export function siteEvaluationTimeoutMs(s: { evaluateTimeoutS: number }): number {
  return Math.max(1000, s.evaluateTimeoutS * 1000 - 5000);
}
