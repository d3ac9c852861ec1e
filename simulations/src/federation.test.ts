// The plan of samples per round (plannedSamplesPerRound: the centralized baseline's budget and the check of every
// federated arm) against the trainer itself, on the tiny fixture BERT and synthetic examples (seconds): sites smaller
// than steps × batch, several local epochs, and epochs that end on a partial batch.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { initNodeBackend } from '@fedlora/shared/node/backend.ts';
import { loadBertCheckpoint } from '@fedlora/shared/node/model/load.ts';
import { BertModel } from '@fedlora/shared/model/bert.ts';
import { SequenceClassifier } from '@fedlora/shared/model/classifier.ts';
import { LoraAdapter } from '@fedlora/shared/lora/adapter.ts';
import { cloneNamed } from '@fedlora/shared/tensor.ts';
import { localRoundSeed } from '@fedlora/shared/round/participant.ts';
import { runLocalRound } from '@fedlora/shared/training/local-round.ts';
import type { EncodedExample } from '@fedlora/shared/training/batches.ts';
import { plannedSamplesPerRound } from './federation';

const FIXTURE = fileURLToPath(new URL('../../tests/fixtures/bert-reference/', import.meta.url));
const PAD = 0;

/** `n` short examples of varied length (fixture vocab: [CLS]=101, [SEP]=102), labels alternating. */
function examples(n: number): EncodedExample[] {
  return Array.from({ length: n }, (_, i) => {
    const inputIds = [101, ...Array.from({ length: 2 + (i % 5) }, (_, j) => 200 + ((i * 7 + j) % 500)), 102];
    return { inputIds, tokenTypeIds: inputIds.map(() => 0), label: i % 2 };
  });
}

before(async () => {
  await initNodeBackend({ log: () => {} });
});

test('when sites are smaller than steps × batch or an epoch ends on a partial batch, then the plan equals the samples the trainer trained on', async () => {
  const bert = new BertModel(loadBertCheckpoint(FIXTURE));
  const lora = new LoraAdapter({ r: 4, alpha: 8, dropout: 0, targetModules: ['query', 'value'], layers: null }, bert.config, 0);
  const clf = new SequenceClassifier(bert, lora, ['a', 'b'], 'mean', 0);
  const start = cloneNamed(clf.getTrainableState());
  const rounds = 6;
  const cases = [
    // smaller than the cap's 3 × 8 = 24 samples: the second epoch is cut after one batch (8 or 5), never 24
    { n: 13, localEpochs: 2, batchSize: 8, maxSteps: 3 },
    // one example, 100 epochs, 2 steps: 2 samples, not 2 × 4
    { n: 1, localEpochs: 100, batchSize: 4, maxSteps: 2 },
    // one batch smaller than a full one
    { n: 5, localEpochs: 1, batchSize: 8, maxSteps: 4 },
    // larger than 2 × 8: whether the partial batch of 4 is among the first 2 of the 3 shuffled batches varies by round
    { n: 20, localEpochs: 1, batchSize: 8, maxSteps: 2 },
  ];
  try {
    for (const c of cases) {
      const data = examples(c.n);
      const trained: number[] = [];
      for (let round = 1; round <= rounds; round++) {
        let seen = 0;
        await runLocalRound(clf, data, PAD, start, { ...c, learningRate: 1e-3, proximalMu: 0 }, {
          seed: localRoundSeed(round),
          onStep: (p) => (seen = p.samplesSeen),
        });
        trained.push(seen);
      }
      const one = [Array.from({ length: c.n }, (_, i) => i)]; // one site, sampled every round
      const plan = plannedSamplesPerRound(one, { ...c, seed: 0, rounds, sitesPerRound: 1, stragglerProb: 0, dropoutProb: 0 });
      assert.deepEqual(plan, trained, `plan vs trainer for ${JSON.stringify(c)}`);
      if (c.n === 20) assert.ok(trained.includes(12) && trained.includes(16), `both batch orders occur: ${trained.join(',')}`);
    }
  } finally {
    clf.dispose();
    bert.dispose();
  }
});
