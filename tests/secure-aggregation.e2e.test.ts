// Issue 17 must-show 7 end to end: a real coordinator with secure aggregation (SecAgg+) and client-level DP on, three
// Node site agents (wasm) and one browser site (Chromium, WebGPU on SwiftShader) run one round; a Node site is
// SIGKILLed once share-keys is over (it holds its neighbours' shares, and they hold its own), so the survivors
// unmask around it. The version is published with its held-out accuracy, the round record says "secure" with counts
// only, and the privacy report shows the ε the round spent.
// Sizes are the smallest that make a real round (40 held-out, two steps of batch 4 at 32 tokens) on 2 cores.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pinnedJoinToken } from '@fedlora/shared/protocol/join-token.ts';
import { browserUnavailable, ensureSiteBuild, openBrowser } from './browser';
import { launchFederation, poll, Procs, siteFiles } from './federation-harness';
import { adminApi, adminFeed, type RoundRecord, type SiteRecord, type VersionRecord } from './admin-client';

const skip = browserUnavailable();
if (skip) console.log(`# skipping the secure-aggregation e2e test: ${skip}`);
const MIN = 60_000;

const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
});

interface SecureRoundRecord extends RoundRecord {
  mode?: string;
  secureAggregation?: { contributors: number; dropped: number; degree: number; threshold: number };
  privacy?: { epsilon: number; noiseMultiplier: number; clipNorm: number };
}

test(
  'when 3 Node sites and 1 browser site run a secure-aggregation round with DP on and a Node site is killed after share-keys, then the survivors unmask around it and the version is published with its accuracy',
  { skip: skip ?? false, timeout: 20 * MIN },
  async () => {
    // Arrange: three Node sites (site-a..c, joined and running) and a preset token for the browser site (site-d)
    ensureSiteBuild();
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-secagg-'));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const csvs = await siteFiles(dir, 4, 40);
    const procs = new Procs(join(dir, 'logs'));
    cleanup.push(() => procs.stopAll());
    const browserToken = `site-d.e2e-join-token-${Math.random().toString(36).slice(2)}`;
    const fed = await launchFederation(procs, dir, csvs.slice(0, 3), [
      ...['--site-token', `site-d=${browserToken}`],
      ...['--heldout-limit', '40', '--max-steps', '2', '--batch-size', '4', '--max-length', '32'],
      ...['--min-sites', '3', '--rounds', '1', '--paused', '--deadline-s', '600', '--ack-timeout-s', '120'],
      // 4 sites: k = 3; t = 2 lets the round survive one drop (the default t = 3 would abort it, as the t rule says)
      ...['--secure-aggregation', '--secagg-threshold', '2'],
      ...['--dp-clip', '1', '--dp-noise-multiplier', '0.5', '--dp-delta', '1e-5'],
    ]);
    const browser = await openBrowser('secure-aggregation');
    cleanup.push(async () => {
      await browser.close();
      cpSync(join(dir, 'logs'), join(browser.artifacts, 'logs'), { recursive: true });
    });
    const api = adminApi(fed.url);
    const feed = await adminFeed(fed.url);
    cleanup.push(async () => feed.close());

    // the browser site joins from its enrollment link with its CSV; the link's token pins the coordinator's key, as
    // one from POST /api/sites does (a preset token is only the secret part)
    const page = await browser.newPage('site', { isolated: true });
    const link = `${fed.url}/site#token=${encodeURIComponent(pinnedJoinToken(browserToken, fed.fingerprint))}`;
    await page.goto(link);
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.click('#data-file')]);
    await chooser.setFiles(csvs[3]);
    await page.locator('#join:not([disabled])').click();
    await poll(
      async () => {
        const sites = await api.json<SiteRecord[]>('/api/sites');
        return sites.length === 4 && sites.every((s) => s.online && s.ready) ? sites : undefined;
      },
      8 * MIN,
      'all four sites online and ready',
    );
    assert.equal((await api.json<SiteRecord[]>('/api/sites')).find((s) => s.id === 'site-d')?.backend, 'webgpu');

    // Act: start; once share-keys is over (the train stage begins), SIGKILL site-c before it can upload
    await api.json('/api/federation/start', { method: 'POST' });
    for (const stage of ['setup', 'share-keys'])
      await feed.next('round:stage', (d) => d.round === 1 && d.stage === stage, 4 * MIN);
    await feed.next('round:stage', (d) => d.round === 1 && d.stage === 'train', 4 * MIN);
    fed.sites[2].child.kill('SIGKILL');
    const v = (await feed.next('version:new', (d) => d.round === 1, 10 * MIN)) as unknown as VersionRecord & { mode?: string };

    // Assert: the round unmasked the three survivors' sum; the registry keeps counts, never who contributed
    const [r1] = await api.json<SecureRoundRecord[]>('/api/rounds');
    assert.equal(r1.outcome, 'aggregated', JSON.stringify(r1));
    assert.equal(r1.mode, 'secure');
    assert.equal(r1.sampled, 4);
    assert.equal(r1.updates, 3);
    assert.deepEqual(r1.failures, [{ siteId: 'site-c', code: 'DISCONNECTED' }]);
    assert.deepEqual(
      [r1.secureAggregation?.contributors, r1.secureAggregation?.dropped, r1.secureAggregation?.degree, r1.secureAggregation?.threshold],
      [3, 1, 3, 2],
    );
    assert.ok(r1.privacy && r1.privacy.epsilon > 0 && r1.privacy.noiseMultiplier === 0.5);
    assert.equal(v.id, 'v1');
    assert.equal(v.mode, 'secure');
    assert.equal(v.sites, 3);
    assert.ok(v.metrics, 'v1 was evaluated on the held-out set');
    const { versions } = await api.json<{ versions: (VersionRecord & Record<string, unknown>)[] }>('/api/versions');
    const stored = JSON.stringify(versions.find((x) => x.id === 'v1'));
    for (const id of ['site-a', 'site-b', 'site-d']) assert.ok(!stored.includes(id), `v1's record names ${id}`);
    const privacy = await api.json<{ enabled: boolean; epsilon: number }>('/api/privacy');
    assert.equal(privacy.enabled, true);
    assert.equal(privacy.epsilon, r1.privacy.epsilon);

    // the browser site took part in the masked sum and shows the version it trained towards
    await page.locator('#version', { hasText: 'v1' }).waitFor({ timeout: 2 * MIN });
    await browser.screenshot('site-after-secure-round.png', { page });
    assert.deepEqual(browser.log.filter((l) => l.includes('[pageerror]')), [], 'no uncaught error on the site page');
    console.log(
      `# secure round: v1 accuracy ${v.metrics.accuracy.toFixed(3)} (macro-F1 ${v.metrics.macroF1.toFixed(3)}) from 3 of 4 sites, ε = ${r1.privacy.epsilon.toFixed(3)}, ${r1.durationMs} ms`,
    );
  },
);
