// Issue 20 must-show 2 with a model: three sites score one candidate adapter (the tiny random BERT fixture, with a
// trained-from-nothing head) on their own stratified held-out splits and return only aggregates; the combination
// equals the central evaluation of the union of the three splits (predictions exactly, loss to float rounding:
// batches differ in padding).

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { initNodeBackend } from '../node/backend';
import { loadBertCheckpoint } from '../node/model/load';
import { BertModel } from '../model/bert';
import { SequenceClassifier } from '../model/classifier';
import { LoraAdapter } from '../lora/adapter';
import { stratifiedSplit } from '../data/split';
import { seededRandom } from '../random';
import { evaluateState } from '../training/local-round';
import type { EncodedExample } from '../training/batches';
import { evaluateClassifier } from '../training/trainer';
import { combineEvaluations, siteEvaluation } from './federated-evaluation';

const FIXTURE = fileURLToPath(new URL('../../../tests/fixtures/bert-reference/', import.meta.url));
const LABELS = ['x', 'y', 'z'];

function examples(n: number, seed: number): EncodedExample[] {
  const rand = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => {
    const ids = Array.from({ length: 3 + Math.floor(rand() * 9) }, () => 105 + Math.floor(rand() * 895));
    const inputIds = [101, ...ids, 102];
    return { inputIds, tokenTypeIds: inputIds.map(() => 0), label: i % 3 };
  });
}

before(async () => {
  await initNodeBackend({ force: 'wasm', log: () => {} });
});

test('when three sites evaluate a candidate on their held-out splits, then the combined metrics equal a central evaluation of the union', async () => {
  const bert = new BertModel(loadBertCheckpoint(FIXTURE));
  const clf = new SequenceClassifier(bert, new LoraAdapter({ r: 4, alpha: 8, dropout: 0, targetModules: ['query', 'value'], layers: null }, bert.config, 1), LABELS, 'mean', 7);
  const candidate = clf.getTrainableState();
  try {
    // each site keeps a stratified quarter of its own data as its held-out split (never trained on)
    const heldout = [0, 1, 2].map((site) => {
      const data = examples(24 + 8 * site, 10 + site);
      const split = stratifiedSplit(data.map((e) => e.label), 0.25, 100 + site);
      return split.heldout.map((i) => data[i]);
    });
    const perSite = [];
    for (const [i, ex] of heldout.entries()) {
      // what a site computes and returns: its confusion matrix and loss sum
      const r = await evaluateClassifier(clf, ex, 0);
      perSite.push({ siteId: `site-${i}`, evaluation: siteEvaluation(ex.map((e) => e.label), r.predictions, LABELS.length, r.loss) });
    }
    const union = heldout.flat();
    const central = await evaluateState(clf, candidate, union, 0);

    const fed = combineEvaluations(LABELS, perSite);

    assert.deepEqual(fed.report, central.report);
    assert.equal(fed.report.n, union.length);
    assert.ok(Math.abs(fed.loss - central.loss) < 1e-5, `federated loss ${fed.loss} vs central ${central.loss}`);
    assert.equal(fed.worstSite.accuracy, Math.min(...fed.sites.map((s) => s.accuracy)));
  } finally {
    clf.dispose();
    bert.dispose();
  }
});
