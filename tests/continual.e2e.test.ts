// End-to-end continual re-training (issue 20, must-show 1) with real processes: a coordinator started with
// `--rounds 1 --schedule "every 3s"` and one Node site whose JSONL data file grows by 200 rows between rounds. The
// site notices the append without a restart and reports 200 new examples; a round the schedule starts on its own
// trains on the grown file (example count 40 → 240) and its upload reports the 200 new examples. Small sizes (40 + 200
// messages, 32 tokens, 16 steps of 16) keep it within a minute on wasm. With FEDLORA_DOCS_IMG=1 it also saves the
// console's pictures of the run to docs/img/ (console-docs-shots.ts).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTabularFile } from '@fedlora/shared/node/data/tabular.ts';
import { writeSiteFiles } from '../scripts/make-site-data';
import { ADMIN_TOKEN, Procs, launchFederation, poll } from './federation-harness';
import { adminApi, type RoundRecord } from './admin-client';
import { DOCS_IMG, shootConsoleForDocs } from './console-docs-shots';

const MIN = 60_000;
const procs = new Procs();
const dir = mkdtempSync(join(tmpdir(), 'fedlora-continual-'));

after(async () => {
  await procs.stopAll();
  rmSync(dir, { recursive: true, force: true });
});

type Round = RoundRecord & { trigger?: { kind: string; detail?: string }; examples?: number; newExamples?: number };

test(
  'when a site data file grows by 200 rows between rounds, then a scheduled round starts on its own, its upload reports 200 new examples and it trains on 240',
  { timeout: 5 * MIN },
  async () => {
    // Arrange: 240 messages of the shipped SpamAssassin training part; the site starts with the first 40
    const [csv] = await writeSiteFiles({ out: join(dir, 'src'), sites: 1, alpha: 1, seed: 7, limit: 240, log: () => {} });
    const rows = loadTabularFile(csv).examples.map((e) => JSON.stringify({ text: e.text, label: e.label }) + '\n');
    assert.equal(rows.length, 240);
    const data = join(dir, 'site.jsonl');
    writeFileSync(data, rows.slice(0, 40).join(''));
    const fed = await launchFederation(procs, dir, [data], [
      ...['--rounds', '1', '--schedule', 'every 3s', '--min-sites', '1', '--sites-per-round', '1.0'],
      // one local epoch covers every example (16 × 16 ≥ 240), so the round's example count is the file's
      ...['--max-steps', '16', '--batch-size', '16', '--max-length', '32', '--heldout-limit', '40', '--sample-wait-s', '0'],
    ]);
    const api = adminApi(fed.url);
    const rounds = () => api.json<Round[]>('/api/rounds');

    // the startup run: one round on the 40 rows, all new to the site
    const first = await poll(async () => (await rounds()).find((r) => r.outcome === 'aggregated'), 3 * MIN, 'the first round');
    assert.deepEqual(first.trigger, { kind: 'startup' });
    assert.equal(first.examples, 40);
    assert.equal(first.newExamples, 40);

    // Act: the site's file grows by 200 rows while the agent runs
    appendFileSync(data, rows.slice(40).join(''));

    // Assert: the agent reloads on its own and reports the new rows
    await fed.sites[0].line(/"type":"data","numExamples":240,"newExamples":200/, MIN);
    const grown = await poll(
      async () => (await rounds()).find((r) => r.outcome === 'aggregated' && r.examples === 240),
      2 * MIN,
      'a round on the grown file',
    );
    assert.equal(grown.trigger?.kind, 'schedule', 'started by the schedule, not by hand');
    assert.equal(grown.trigger?.detail, 'every 3s');
    assert.equal(grown.newExamples, 200, 'the upload reported the 200 appended rows as new');
    const version = await api.json<{ examples: number; newExamples?: number; trigger?: { kind: string } }>(
      `/api/versions/${grown.versionId}`,
    );
    assert.equal(version.examples, 240);
    assert.equal(version.newExamples, 200);
    // once trained on, the rows are no longer new: later scheduled rounds report none
    const later = await poll(
      async () => (await rounds()).find((r) => r.round > grown.round && r.outcome === 'aggregated'),
      MIN,
      'a scheduled round after it',
    );
    assert.equal(later.newExamples, 0);
    assert.equal(later.examples, 240);
    const status = await api.json<{ retraining: { schedule: string; nextScheduledAt: string | null } }>('/api/status');
    assert.equal(status.retraining.schedule, 'every 3s');
    assert.ok(status.retraining.nextScheduledAt && Date.parse(status.retraining.nextScheduledAt) > Date.now() - 10_000);

    // the operator guide's pictures of this run (FEDLORA_DOCS_IMG=1 only): the schedule line and why each round
    // started, the versions with the examples new to the site, and the data volume over wall-clock time
    await shootConsoleForDocs('continual', fed.url, ADMIN_TOKEN, async (browser) => {
      const page = browser.page;
      await page.waitForFunction(() => /schedule "every 3s"/.test(document.getElementById('retraining')?.textContent ?? ''));
      await page.waitForSelector('#rounds-body [data-trigger=startup]');
      await page.waitForSelector('#rounds-body [data-trigger=schedule]');
      await browser.screenshot('console-retraining.png', { copyTo: DOCS_IMG, fullPage: false });
      await page.waitForSelector(`#versions-body tr[data-version="${grown.versionId}"]`);
      // the table, not its section: the table is wider than the section at 1280 px
      await browser.screenshot('console-versions-new-data.png', { copyTo: DOCS_IMG, selector: '#versions-table' });
      await browser.screenshot('console-charts-over-time.png', { copyTo: DOCS_IMG, selector: '#charts' });
    });
  },
);
