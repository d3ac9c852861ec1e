// How the Node agent shows a round that the shared round handler (shared/src/round/round-handler.ts) runs: one log
// line per stage, the AgentEvents of `run --json` and the tests, and a progress bar per local epoch on stderr.

import { describeError } from '@fedlora/shared/errors.ts';
import type { RoundEvent } from '@fedlora/shared/round/round-handler.ts';
import { progressBar, type Progress } from '../progress';
import type { AgentEvent } from './site-agent';

export function roundLog(o: {
  log: (line: string) => void;
  emit: (e: AgentEvent) => void;
  quiet?: boolean;
}): (e: RoundEvent) => void {
  const { log, emit } = o;
  let bar: Progress | null = null;
  let barEpoch = -1;
  const stopBar = () => {
    bar?.stop();
    bar = null;
    barEpoch = -1;
  };
  return (e) => {
    switch (e.type) {
      case 'configured': {
        const r = e.round;
        log(
          `round ${r.round} (${r.roundId}): ${e.accepted ? 'accepted' : 'declined'}; ${r.secureAggregation ? 'secure aggregation' : r.encoding}, config ${JSON.stringify(r.config)}`,
        );
        return emit({ type: 'configured', roundId: r.roundId, round: r.round, accepted: e.accepted });
      }
      case 'rejected':
      case 'ignored':
        return log(`${e.event} ${e.type}: ${describeError(e.error)}`);
      case 'secagg-refused':
        return log(`${e.event} refused: ${describeError(e.error)}`);
      case 'untrusted':
        return log(`refusing ${e.event}: ${describeError(e.error)}`);
      case 'step': {
        const p = e.progress;
        if (p.epoch !== barEpoch) {
          bar?.stop();
          const left = p.totalSteps - (p.step - 1);
          bar = progressBar(
            `round ${e.round.round} epoch ${p.epoch + 1}/${e.round.config.localEpochs}`,
            // a masked-LM round counts packed sequences, not the round's examples: its steps are all it knows
            e.stepsPerEpoch > 0 ? Math.min(e.stepsPerEpoch, left) : left,
            o.quiet,
          );
          barEpoch = p.epoch;
        }
        bar?.update(p.step - p.epoch * e.stepsPerEpoch, {
          loss: p.loss.toFixed(4),
          sps: p.samplesPerSecond.toFixed(1),
        });
        return;
      }
      case 'trained':
        return stopBar();
      case 'uploaded': {
        const { round: r, result } = e;
        log(
          `round ${r.round}: uploaded ${e.payloadBytes} bytes (${r.secureAggregation ? 'masked' : r.encoding}), ${result.numExamples} examples, ` +
            `loss ${result.metrics.loss.toFixed(4)}, ${result.metrics.seconds.toFixed(1)} s`,
        );
        return emit({
          type: 'uploaded',
          roundId: r.roundId,
          round: r.round,
          payloadBytes: e.payloadBytes,
          numExamples: result.numExamples,
          loss: result.metrics.loss,
          seconds: result.metrics.seconds,
        });
      }
      case 'failed':
        stopBar();
        log(`round ${e.round.round}: failed: ${describeError(e.error)}`);
        return emit({
          type: 'failed',
          roundId: e.round.roundId,
          code: e.failure.code,
          message: e.failure.message,
        });
      case 'fail-undelivered':
        return log(`round:fail not delivered: ${describeError(e.error)}`);
      case 'upload-retry':
        return log(`round ${e.round.round}: upload attempt ${e.attempt} answered ${describeError(e.error)}; sending again`);
      case 'closed': {
        const m = e.message;
        log(`round ${m.round} closed: ${m.outcome} (${m.updates} updates, ${m.failures} failures)`);
        return emit({ type: 'closed', roundId: m.roundId, outcome: m.outcome });
      }
      case 'evaluated': {
        const v = e.evaluation;
        if (!v) return log(`round:evaluate ${e.message.versionId}: declined (no held-out split; start with --holdout)`);
        const correct = v.confusion.reduce((n, row, i) => n + row[i], 0);
        log(`round:evaluate ${e.message.versionId}: ${v.n} held-out examples, accuracy ${(correct / v.n).toFixed(4)}, loss ${(v.lossSum / v.n).toFixed(4)}`);
        return emit({ type: 'evaluated', versionId: e.message.versionId, numExamples: v.n, accuracy: correct / v.n });
      }
      case 'evaluate-refused':
        return log(`round:evaluate refused: ${describeError(e.error)}`);
      case 'version': {
        const m = e.message;
        const acc = m.metrics.accuracy;
        log(
          `global adapter ${m.versionId} (round ${m.round})${acc === undefined ? '' : `: held-out accuracy ${acc.toFixed(4)}`}`,
        );
        return emit({ type: 'version', versionId: m.versionId, round: m.round, metrics: m.metrics });
      }
    }
  };
}
