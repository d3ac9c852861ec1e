// The site's model port (round-handler.ts RoundModel) in a masked-LM federation (manifest task 'mlm', issue 24): a
// round trains mlmLocalRound (training/mlm-round.ts, the function `fedlora-site pretrain --lora` runs) from the global
// adapter on the site's unlabelled documents, and the delta trained − global goes up exactly as a classification
// delta does, so every averaging strategy, secure aggregation and DP apply unchanged (the delta is clipped to the DP
// norm here, as local-round.ts clips a classification delta). The round's labelled examples are not used: the
// documents come from `docs` (the text column of the site's data), read when the round starts. pretrainMlm has its
// own optimizer settings: FedProx's proximal term and the round's per-step gradient clip do not apply to it.

import { FedloraError } from '../errors';
import type { LoraConfig } from '../lora/config';
import type { BertCheckpoint } from '../model/checkpoint';
import type { NamedTensors } from '../tensor';
import type { Tokenizer } from '../tokenizer/tokenizer';
import { mlmLocalRound } from '../training/mlm-round';
import { mlmStateShapes } from '../training/mlm-state';
import { clipToL2Norm } from '../privacy/clipping';
import type { RoundModel } from './round-handler';

export interface MlmRoundModelOptions {
  ckpt: BertCheckpoint;
  tokenizer: Tokenizer;
  lora: LoraConfig;
  /** the federation trains the MLM head's transform beside LoRA (manifest task.headTransform) */
  headTransform: boolean;
  /** the site's documents now (a reload between rounds is used by the next one) */
  docs: () => readonly string[];
}

export function mlmRoundModel(o: MlmRoundModelOptions): RoundModel {
  const shapes = mlmStateShapes(o.lora, o.ckpt.config, o.headTransform);
  return {
    trainableShapes: () => shapes,
    maxLength: Math.min(o.tokenizer.maxLength, o.ckpt.config.maxPositions),
    train: async (_examples, global, config, control) => {
      let loss = Number.NaN;
      const r = await mlmLocalRound({
        ckpt: o.ckpt,
        tokenizer: o.tokenizer,
        docs: o.docs(),
        lora: o.lora,
        trainHeadTransform: o.headTransform,
        start: global,
        epochs: config.localEpochs,
        batchSize: config.batchSize,
        learningRate: config.learningRate,
        maxLength: control.maxLength ?? Number.MAX_SAFE_INTEGER,
        maxSteps: config.maxSteps,
        seed: control.seed,
        // the site's own held-out tenth is not scored: forward passes over it before and after every round would cost
        // a large share of a short round (and hold the event loop); the coordinator scores versions on --mlm-text
        evaluateHeldout: false,
        // pretrainMlm reports no gradient norm (NaN here) and counts sequences, not examples
        onStep: (p) => {
          loss = p.loss;
          control.onStep({
            epoch: 0,
            step: p.step,
            totalSteps: p.totalSteps,
            loss: p.loss,
            lossStep: p.lossStep,
            gradNorm: Number.NaN,
            samplesSeen: p.step * config.batchSize,
            samplesPerSecond: p.sequencesPerSecond,
          });
        },
      });
      const trained: NamedTensors = {};
      for (const [name, g] of Object.entries(global)) {
        const t = r.state[name];
        if (!t) throw new FedloraError('INTERNAL', `the masked-LM round returned no ${name}`);
        const d = new Float32Array(t.data.length);
        for (let i = 0; i < d.length; i++) d[i] = t.data[i] - g.data[i];
        trained[name] = { shape: [...g.shape], data: d };
      }
      return {
        // client-level DP: clipped here, as local-round.ts clips a classification delta, before it can leave the site
        delta: config.dpClipNorm === undefined ? trained : clipToL2Norm(trained, config.dpClipNorm).delta,
        // FedAvg weighs a site by the sequences it trained on
        numExamples: r.trainSequences,
        // the training loss as of the last step (the mean since the read before it, as trainer.ts reports it)
        metrics: { loss, samplesPerSecond: r.sequencesPerSecond, steps: r.steps, seconds: r.seconds },
      };
    },
    evaluate: () => {
      throw new FedloraError('CONFIG_INVALID', 'federated evaluation of a masked-LM federation is not supported: the coordinator evaluates on its --mlm-text');
    },
  };
}
