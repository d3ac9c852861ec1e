// Federated evaluation from a browser site (issue 20): a coordinator with no held-out data (--heldout none
// --federated-eval) and two sites, a Node agent (run --holdout 0.25) and a browser tab (Chromium, WebGPU on
// SwiftShader) whose enrollment link presets the same held-out share (?holdout=0.25). One round runs; the version's
// federated metrics have a row for each site, and the browser's row counts exactly its held-out split (shared
// data/holdout.ts) and has the accuracy that a central evaluation of the same adapter on that split finds, here, on
// wasm. The browser offers the rounds only its training split.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pinnedJoinToken } from '@fedlora/shared/protocol/join-token.ts';
import { holdoutSplit } from '@fedlora/shared/data/holdout.ts';
import { initNodeBackend } from '@fedlora/shared/node/backend.ts';
import { loadTabularFile } from '@fedlora/shared/node/data/tabular.ts';
import { SPAM_ASSASSIN_LABELS } from '@fedlora/shared/node/data/spam-assassin.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { loadLocalModel } from '@fedlora/shared/node/model/local-model.ts';
import { decodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { encodeDataset } from '@fedlora/shared/training/encode.ts';
import { evaluateState } from '@fedlora/shared/training/local-round.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import { browserUnavailable, ensureSiteBuild, openBrowser } from './browser';
import { launchFederation, poll, Procs, siteFiles } from './federation-harness';
import { adminApi, type SiteRecord } from './admin-client';

const skip = browserUnavailable();
if (skip) console.log(`# skipping the browser federated-evaluation e2e test: ${skip}`);
const MIN = 60_000;
const HOLDOUT = 0.25;
const MAX_LENGTH = 32;
const LABELS = [...SPAM_ASSASSIN_LABELS];

const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
});

interface FederatedMetrics {
  accuracy: number;
  source?: string;
  federated?: { sites: { siteId: string; examples: number; accuracy: number; loss: number }[]; missing: { siteId: string; code: string }[] };
}

test(
  'when a browser site with a held-out share takes part in federated evaluation, then its row counts its held-out split and matches a central evaluation of it',
  { skip: skip ?? false, timeout: 15 * MIN },
  async () => {
    // Arrange: the coordinator (no labelled data), a Node site with a held-out split, a preset token for the browser
    ensureSiteBuild();
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-web-fedeval-'));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const csvs = await siteFiles(dir, 2, 480);
    const procs = new Procs(join(dir, 'logs'));
    cleanup.push(() => procs.stopAll());
    const browserToken = `site-b.e2e-join-token-${Math.random().toString(36).slice(2)}`;
    const fed = await launchFederation(
      procs,
      dir,
      csvs.slice(0, 1),
      [
        ...['--site-token', `site-b=${browserToken}`],
        ...['--heldout', 'none', '--labels', LABELS.join(','), '--federated-eval'],
        ...['--max-steps', '2', '--batch-size', '4', '--max-length', String(MAX_LENGTH)],
        ...['--min-sites', '2', '--sites-per-round', '1.0', '--rounds', '1', '--paused', '--ack-timeout-s', '120'],
      ],
      { siteArgs: ['--holdout', String(HOLDOUT)] },
    );
    const browser = await openBrowser('browser-federated-evaluation');
    cleanup.push(async () => {
      await browser.close();
      cpSync(join(dir, 'logs'), join(browser.artifacts, 'logs'), { recursive: true });
    });
    const api = adminApi(fed.url);
    const page = await browser.newPage('site', { isolated: true });
    const token = encodeURIComponent(pinnedJoinToken(browserToken, fed.fingerprint));
    await page.goto(`${fed.url}/site?holdout=${HOLDOUT}#token=${token}`);
    assert.equal(await page.inputValue('#holdout'), String(HOLDOUT), 'the link presets the held-out share');
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.click('#data-file')]);
    await chooser.setFiles(csvs[1]);
    await page.locator('#join:not([disabled])').click();
    await poll(
      async () => {
        const sites = await api.json<SiteRecord[]>('/api/sites');
        return sites.length === 2 && sites.every((s) => s.online && s.ready) ? sites : undefined;
      },
      8 * MIN,
      'both sites online and ready',
    );

    // Act: one round; the candidate is scored at both sites before it is published
    await api.json('/api/federation/start', { method: 'POST' });
    const version = await poll(
      async () => {
        const { versions } = await api.json<{ versions: { id: string; round: number; metrics: FederatedMetrics | null }[] }>('/api/versions');
        return versions.find((v) => v.round === 1 && v.metrics?.source === 'federated');
      },
      10 * MIN,
      'v1 with federated metrics',
      2000,
    );

    // Assert: a row per site; the browser's counts its held-out split, and scores what a central evaluation scores
    const fedMetrics = (version.metrics as FederatedMetrics).federated as NonNullable<FederatedMetrics['federated']>;
    assert.deepEqual(fedMetrics.sites.map((s) => s.siteId).sort(), ['site-a', 'site-b']);
    assert.deepEqual(fedMetrics.missing, []);
    const split = holdoutSplit(loadTabularFile(csvs[1]), HOLDOUT);
    assert.ok(split.heldout.examples.length >= 10 && split.train.examples.length > 0, `held out ${split.heldout.examples.length}`);
    const row = fedMetrics.sites.find((s) => s.siteId === 'site-b') as (typeof fedMetrics.sites)[number];
    assert.equal(row.examples, split.heldout.examples.length);
    await page.locator('#heldout', { hasText: `on ${split.heldout.examples.length} examples` }).waitFor({ timeout: MIN });
    const pageLog = await page.locator('#log').innerText();
    assert.match(pageLog, new RegExp(`held-out split: ${split.heldout.examples.length} of ${split.heldout.examples.length + split.train.examples.length} examples`));
    assert.match(pageLog, /scored candidate \S+ on \d+ held-out examples: accuracy/);

    await initNodeBackend({ force: 'wasm', log: () => {} });
    const model = loadLocalModel({ modelDir: DEFAULT_MODEL_DIR, lora: DEFAULT_RECIPE.lora, labels: LABELS, pooling: 'mean', seed: 0 });
    try {
      const state = decodeAdapter(await api.bytes(`/api/versions/${version.id}/native`)).adapter;
      const len = Math.min(MAX_LENGTH, model.tokenizer.maxLength, model.bert.config.maxPositions);
      const encoded = encodeDataset(model.tokenizer, split.heldout, LABELS, len);
      const central = await evaluateState(model.classifier, state, encoded, model.tokenizer.special.pad);
      console.log(
        `# browser site's held-out split: ${row.examples} examples, accuracy ${row.accuracy.toFixed(4)} (WebGPU in the tab) vs ` +
          `${central.report.accuracy.toFixed(4)} (wasm, here); loss ${row.loss.toFixed(5)} vs ${central.loss.toFixed(5)}`,
      );
      assert.equal(row.accuracy, central.report.accuracy);
      assert.ok(Math.abs(row.loss - central.loss) < 1e-3, `loss ${row.loss} in the tab vs ${central.loss} here`);
    } finally {
      model.dispose();
    }
    assert.deepEqual(browser.log.filter((l) => l.includes('[pageerror]')), [], 'no uncaught error on the site page');
  },
);
