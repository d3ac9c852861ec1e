// Issue 21 must-show 1 with real processes: one fedlora-coordinator hosting its default project (SpamAssassin's ham
// and spam) and a 'triage' project made with POST /api/projects (three other labels, its own held-out file), each
// with two `fedlora-site` agents that joined with tokens of their project; both projects are started together and
// each trains a version on its own sites, evaluated on its own held-out set. Kept small: 2 steps, 32 tokens.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { joinSite, poll, Procs, runSite, siteFiles, startCoordinator, type CoordinatorProc } from './federation-harness';
import { adminApi } from './admin-client';

const dir = mkdtempSync(join(tmpdir(), 'fedlora-projects-agents-'));
const procs = new Procs(process.env.FEDLORA_TEST_LOGS ? join(process.env.FEDLORA_TEST_LOGS, 'projects-agents') : undefined);
const SMALL = { maxSteps: 2, maxLength: 32, minSites: 2, sampleWaitS: 0, rounds: 1 };
const TRIAGE = ['billing', 'shipping', 'tech'];
const PHRASES: Record<string, string[]> = {
  billing: ['I was charged twice for my invoice', 'please refund the payment on my card', 'the bill shows a wrong amount'],
  shipping: ['my parcel has not arrived yet', 'the courier left the package at the wrong door', 'when will my order be delivered'],
  tech: ['the app crashes when I log in', 'I cannot reset my password on the website', 'the screen stays blank after the update'],
};

/** A text,label CSV of `n` rows per label: the label's phrases with a numbered tail, so no two rows are equal. */
function triageCsv(path: string, n: number, seed: number): string {
  const rows: string[] = [];
  for (let i = 0; i < n; i++)
    for (const label of TRIAGE) rows.push(`"${PHRASES[label][(i + seed) % 3]} (ticket ${seed * 1000 + i})",${label}`);
  writeFileSync(path, `text,label\n${rows.join('\n')}\n`);
  return path;
}

let coord: CoordinatorProc;

before(async () => {
  mkdirSync(join(dir, 'triage'), { recursive: true });
});

after(async () => {
  await procs.stopAll();
  rmSync(dir, { recursive: true, force: true });
});

test('when two projects with different labels and their own two sites each are started together, then both train a version at the same time, each on its own sites and held-out set', { timeout: 600_000 }, async () => {
  const spamFiles = await siteFiles(dir, 2, 60);
  coord = await startCoordinator(procs, {
    dataDir: join(dir, 'coordinator'),
    args: ['--paused', '--heldout-limit', '40', ...['--max-steps', '2', '--max-length', '32', '--min-sites', '2', '--sample-wait-s', '0', '--rounds', '1']],
  });
  const api = adminApi(coord.url);
  const made = await api.json<{ id: string; labels: string[] }>('/api/projects', {
    method: 'POST',
    body: JSON.stringify({ id: 'triage', labels: TRIAGE, heldout: triageCsv(join(dir, 'triage', 'heldout.csv'), 10, 7), settings: SMALL }),
  });
  assert.deepEqual(made.labels, TRIAGE);

  const members = [
    { project: null, name: 'clinic-a', data: spamFiles[0] },
    { project: null, name: 'clinic-b', data: spamFiles[1] },
    { project: 'triage', name: 'desk-1', data: triageCsv(join(dir, 'triage', 'desk-1.csv'), 20, 1) },
    { project: 'triage', name: 'desk-2', data: triageCsv(join(dir, 'triage', 'desk-2.csv'), 20, 2) },
  ];
  const sites = [];
  for (const m of members) {
    const prefix = m.project ? `/api/projects/${m.project}` : '/api';
    const { joinToken } = await api.json<{ joinToken: string }>(`${prefix}/sites`, { method: 'POST', body: JSON.stringify({ name: m.name }) });
    const joined = await joinSite(procs, { dir, name: m.name, url: coord.url, token: joinToken, data: m.data });
    assert.equal(joined.code, 0, joined.output);
    // the agent learned the project's labels from its project's manifest
    const state = JSON.parse(readFileSync(join(dir, m.name, 'site.json'), 'utf8')) as { project?: string };
    assert.equal(state.project, m.project ?? undefined);
    sites.push(runSite(procs, { dir, name: m.name, args: ['--json', '--quiet'] }));
  }
  for (const prefix of ['/api', '/api/projects/triage'])
    await poll(async () => ((await api.json<{ ready: boolean }[]>(`${prefix}/sites`)).filter((s) => s.ready).length === 2 ? true : undefined), 240_000, `${prefix}: 2 ready sites`);
  await api.json('/api/federation/start', { method: 'POST' });
  await api.json('/api/projects/triage/federation/start', { method: 'POST' });

  const versions: Record<string, { id: string; metrics: { perClass: { label: string }[]; examples: number } }> = {};
  for (const prefix of ['/api', '/api/projects/triage'])
    versions[prefix] = await poll(
      async () => (await api.json<{ versions: (typeof versions)[string][] }>(`${prefix}/versions`)).versions.find((v) => v.id === 'v1'),
      300_000,
      `${prefix}: v1`,
    );
  const rounds: Record<string, { startedAt: string; durationMs: number; outcome: string; participants: number }> = {};
  for (const prefix of ['/api', '/api/projects/triage']) {
    const [r] = await api.json<(typeof rounds)[string][]>(`${prefix}/rounds`);
    assert.deepEqual([r.outcome, r.participants], ['aggregated', 2], `${prefix}: ${JSON.stringify(r)}`);
    rounds[prefix] = r;
  }
  // each version was scored on its own project's held-out set, with its own labels
  assert.deepEqual(versions['/api'].metrics.perClass.map((c) => c.label), ['ham', 'spam']);
  assert.deepEqual(versions['/api/projects/triage'].metrics.perClass.map((c) => c.label), TRIAGE);
  assert.deepEqual([versions['/api'].metrics.examples, versions['/api/projects/triage'].metrics.examples], [40, 30]);
  // the two rounds ran at the same time: each started before the other ended
  const span = (r: (typeof rounds)[string]) => [Date.parse(r.startedAt), Date.parse(r.startedAt) + r.durationMs];
  const [a0, a1] = span(rounds['/api']);
  const [b0, b1] = span(rounds['/api/projects/triage']);
  assert.ok(a0 < b1 && b0 < a1, `rounds overlap: default ${a0}-${a1}, triage ${b0}-${b1}`);
  // each project's sites took part in its own round only
  const contributed = async (prefix: string) => (await api.json<{ id: string; roundsContributed: number }[]>(`${prefix}/sites`)).map((s) => [s.id, s.roundsContributed]);
  assert.deepEqual(await contributed('/api'), [['clinic-a', 1], ['clinic-b', 1]]);
  assert.deepEqual(await contributed('/api/projects/triage'), [['desk-1', 1], ['desk-2', 1]]);
  for (const s of sites) assert.equal(s.child.exitCode, null, `${s.name} is still running:\n${s.output().slice(-1000)}`);
});
