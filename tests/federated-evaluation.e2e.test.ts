// Issue 20 must-show 2, end to end with real processes: a coordinator with NO central held-out set
// (--heldout none --federated-eval) and three Node sites that each keep a held-out split (run --holdout 0.2). Rounds
// run; each new version gets the federated metrics, a row per site and the worst site, with no labelled data at the
// coordinator. This test then evaluates the same version's adapter centrally, here, on the union of the three sites'
// held-out splits (the same split function and files) and finds the same accuracy, macro-F1, per-class counts and
// per-site accuracies; the loss agrees to float rounding (batches pad differently). Small: 3 × 120 messages, 6 local
// steps of 48 tokens, 2 rounds. With FEDLORA_DOCS_IMG=1 it also saves the console's picture of the run to docs/img/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initNodeBackend } from '@fedlora/shared/node/backend.ts';
import { loadTabularFile } from '@fedlora/shared/node/data/tabular.ts';
import { SPAM_ASSASSIN_LABELS } from '@fedlora/shared/node/data/spam-assassin.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { loadLocalModel } from '@fedlora/shared/node/model/local-model.ts';
import { holdoutSplit } from '@fedlora/shared/data/holdout.ts';
import { decodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { encodeDataset } from '@fedlora/shared/training/encode.ts';
import { evaluateState } from '@fedlora/shared/training/local-round.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import { writeSiteFiles } from '../scripts/make-site-data';
import { ADMIN_TOKEN, Procs, launchFederation, poll, processesMentioning } from './federation-harness';
import { adminApi } from './admin-client';
import { DOCS_IMG, shootConsoleForDocs } from './console-docs-shots';

const MIN = 60_000;
const HOLDOUT = 0.2;
const MAX_LENGTH = 48;
const LABELS = [...SPAM_ASSASSIN_LABELS];

interface FederatedVersion {
  id: string;
  round: number;
  metrics: {
    accuracy: number;
    macroF1: number;
    loss: number;
    examples: number;
    source?: string;
    perClass: { label: string; support: number; precision: number; recall: number }[];
    federated?: {
      accuracy: number;
      worstSite: string;
      worstSiteAccuracy: number;
      sites: { siteId: string; examples: number; accuracy: number; loss: number }[];
      missing: { siteId: string; code: string }[];
    };
  } | null;
}

let dir: string;
let siteFiles: string[];
const procs = new Procs();

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedlora-fedeval-'));
  siteFiles = await writeSiteFiles({ out: join(dir, 'data'), sites: 3, alpha: 1, seed: 42, limit: 360, log: () => {} });
});

after(async () => {
  await procs.stopAll();
  rmSync(dir, { recursive: true, force: true });
});

test(
  'when a coordinator with no held-out set runs rounds with federated evaluation, then each version gets federated metrics equal to a central evaluation of the union of the sites\' held-out splits',
  { timeout: 10 * MIN },
  async () => {
    // Arrange: the coordinator (no labelled data) and three sites with held-out splits
    const fedDir = join(dir, 'run');
    const f = await launchFederation(
      procs,
      fedDir,
      siteFiles,
      [
        ...['--heldout', 'none', '--labels', LABELS.join(','), '--federated-eval'],
        ...['--max-steps', '6', '--max-length', String(MAX_LENGTH), '--lr', '0.005'],
        ...['--min-sites', '3', '--sites-per-round', '1.0', '--rounds', '2'],
      ],
      { siteArgs: ['--holdout', String(HOLDOUT)] },
    );
    const { siteIds, sites } = f;
    const api = adminApi(f.url);

    // Act: two rounds, each versioned with the sites' evaluation
    const versions = await poll(
      async () => {
        const { versions: vs } = await api.json<{ versions: FederatedVersion[] }>('/api/versions');
        return vs.filter((v) => v.round > 0 && v.metrics?.source === 'federated').length >= 2 ? vs : undefined;
      },
      8 * MIN,
      'two versions with federated metrics',
      2000,
    );

    // Assert: version 0 could not be evaluated (no site was connected), the rounds' versions were, by all three
    const v0 = versions.find((v) => v.id === 'v0') as FederatedVersion;
    assert.equal(v0.metrics, null);
    const last = versions.filter((v) => v.metrics?.source === 'federated').at(-1) as FederatedVersion;
    const m = last.metrics as NonNullable<FederatedVersion['metrics']>;
    const fed = m.federated as NonNullable<typeof m.federated>;
    assert.deepEqual(fed.sites.map((s) => s.siteId), siteIds);
    assert.deepEqual(fed.missing, []);
    assert.equal(fed.worstSiteAccuracy, Math.min(...fed.sites.map((s) => s.accuracy)));
    for (const s of sites) assert.match(s.output(), /"type":"evaluated"/);
    assert.doesNotMatch(f.coordinator.output(), /heldout\.loaded/, 'the coordinator loaded no held-out data');

    // the central evaluation of the same adapter on the union of the sites' held-out splits, computed here
    await initNodeBackend({ force: 'wasm', log: () => {} });
    const heldout = siteFiles.map((f) => holdoutSplit(loadTabularFile(f), HOLDOUT).heldout);
    const model = loadLocalModel({ modelDir: DEFAULT_MODEL_DIR, lora: DEFAULT_RECIPE.lora, labels: LABELS, pooling: 'mean', seed: 0 });
    try {
      const state = decodeAdapter(await api.bytes(`/api/versions/${last.id}/native`)).adapter;
      const len = Math.min(MAX_LENGTH, model.tokenizer.maxLength, model.bert.config.maxPositions);
      const encode = (examples: (typeof heldout)[number]['examples']) =>
        encodeDataset(model.tokenizer, { name: 'union', labels: LABELS, examples }, LABELS, len);
      const union = await evaluateState(model.classifier, state, encode(heldout.flatMap((h) => h.examples)), model.tokenizer.special.pad);
      const perSite = [];
      for (const h of heldout) perSite.push(await evaluateState(model.classifier, state, encode(h.examples), model.tokenizer.special.pad));
      console.log(
        `federated evaluation of ${last.id}: accuracy ${m.accuracy.toFixed(4)} (central on the union ${union.report.accuracy.toFixed(4)}), ` +
          `macro-F1 ${m.macroF1.toFixed(4)}, loss ${m.loss.toFixed(5)} vs ${union.loss.toFixed(5)}, ${m.examples} held-out examples; ` +
          `sites ${fed.sites.map((s) => `${s.siteId} ${s.examples} ${s.accuracy.toFixed(3)}`).join(', ')}; worst ${fed.worstSite}`,
      );

      assert.equal(m.examples, union.report.n);
      assert.equal(m.accuracy, union.report.accuracy);
      assert.equal(m.macroF1, union.report.macroF1);
      assert.deepEqual(m.perClass, union.report.perClass);
      assert.ok(Math.abs(m.loss - union.loss) < 1e-4, `federated loss ${m.loss} vs central ${union.loss}`);
      assert.deepEqual(
        fed.sites.map((s) => [s.examples, s.accuracy]),
        perSite.map((r) => [r.report.n, r.report.accuracy]),
      );
    } finally {
      model.dispose();
    }

    // the operator guide's picture of this run (FEDLORA_DOCS_IMG=1 only): the versions with each site's figures
    await shootConsoleForDocs('federated-evaluation', f.url, ADMIN_TOKEN, async (browser) => {
      const cell = `#versions-body tr[data-version="${last.id}"] td[data-col=federated]`;
      await browser.page.click(`${cell} summary`);
      await browser.page.waitForSelector(`${cell} table.per-site tr.worst`);
      await browser.screenshot('console-federated-eval.png', { copyTo: DOCS_IMG, selector: '#versions-table' });
    });

    await procs.stopAll();
    assert.deepEqual(processesMentioning(fedDir), []);
  },
);
