// `npm start`: the main job. A local federation on the shipped defaults: one coordinator and N site agents as child
// processes, each site holding a non-IID (Dirichlet label-skew) share of the SpamAssassin training part; the
// coordinator evaluates every new adapter version on the held-out part. Prints each version's held-out accuracy.
// Without --rounds it runs 5 rounds, stops the sites and leaves the coordinator serving (URL printed; Ctrl-C ends it).
// With --json it exits after the rounds, stopping every process it started, and prints a JSON summary last.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseCommandLineOrExit } from '@fedlora/shared/node/command-line.ts';
import { pinnedJoinToken } from '@fedlora/shared/protocol/join-token.ts';
import { siteName, writeSiteFiles } from './make-site-data';
import { coordinatorCommand, siteJoinCommand, siteRunCommand, type ChildCommand } from './start-commands';

const HELP = `npm start [-- options]
  Runs a local federation: a coordinator + --sites site agents (child processes) on a non-IID split of the embedded
  SpamAssassin training part, the shipped fedlora-bert-mini, FedAvg; prints each new version's held-out accuracy.
  --rounds N (5)          rounds to run
  --json                  exit after the rounds (stopping every process) and print a JSON summary as the last line
  --sites N (3)           --alpha X (1.0: Dirichlet label skew; smaller = more skewed)   --seed N (42)
  --site-limit N          use a stratified subset of N training messages in all (quick demos and tests)
  --heldout-limit N       evaluate on N held-out messages (default: the 612-message evaluation subset)
  --max-steps N (12)      local optimizer steps per site per round   --lr X (0.002)   --max-length N (64)
  --strategy fedavg|fedprox|fedadam|fedavgm (fedavg)   --encoding fp32|fp16|int8 (fp32)
  --port N (0 = any free port)   --dir DIR (default .fedlora/runs/<time>: coordinator data, site states, logs)`;

const repo = fileURLToPath(new URL('..', import.meta.url));
const { values: f } = parseCommandLineOrExit('npm start', HELP, process.argv.slice(2), {
  rounds: { type: 'string', default: '5' }, json: { type: 'boolean', default: false }, sites: { type: 'string', default: '3' },
  alpha: { type: 'string', default: '1' }, seed: { type: 'string', default: '42' }, 'site-limit': { type: 'string' },
  'heldout-limit': { type: 'string' }, 'max-steps': { type: 'string', default: '12' }, lr: { type: 'string', default: '0.002' },
  'max-length': { type: 'string', default: '64' }, strategy: { type: 'string', default: 'fedavg' },
  encoding: { type: 'string', default: 'fp32' }, port: { type: 'string', default: '0' }, dir: { type: 'string' },
});
const rounds = Number(f.rounds);
const numSites = Number(f.sites);
if (!Number.isInteger(rounds) || rounds < 1) fail(`--rounds must be a positive integer, got ${f.rounds}`);
if (!Number.isInteger(numSites) || numSites < 1 || numSites > 26) fail(`--sites must be 1..26, got ${f.sites}`);

const say = (line: string) => process.stderr.write(`[fedlora] ${line}\n`);
function fail(msg: string): never {
  process.stderr.write(`npm start: ${msg}\n`);
  process.exit(2);
}

const children: ChildProcess[] = [];
function stopAll(which = children): Promise<void> {
  return Promise.all(
    which.map(
      (c) =>
        new Promise<void>((done) => {
          if (c.exitCode !== null || c.signalCode !== null) return done();
          const t = setTimeout(() => c.kill('SIGKILL'), 5000);
          c.once('exit', () => {
            clearTimeout(t);
            done();
          });
          c.kill('SIGTERM');
        }),
    ),
  ).then(() => undefined);
}
process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
process.on('SIGTERM', () => void stopAll().then(() => process.exit(143)));

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

function launch(name: string, { args, env }: ChildCommand, logDir: string): ChildProcess {
  const log = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
  const child = spawn(process.execPath, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  children.push(child);
  return child;
}

/** GET with the admin token; retried for up to 2 minutes, since the coordinator may be busy evaluating on a small CPU. */
async function api<T>(url: string, token: string): Promise<T> {
  const until = Date.now() + 120_000;
  for (;;) {
    try {
      const r = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30_000) });
      if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
      return (await r.json()) as T;
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((res) => setTimeout(res, 1000));
    }
  }
}

interface Version { id: string; round: number; sites: number; metrics: { accuracy: number; macroF1: number } | null; uploadedBytes?: number }
interface RoundRecord { round: number; outcome: string; updates: number; uploadedBytes: number; durationMs: number; failures: { siteId: string; code: string }[]; rejections: { siteId: string; code: string }[] }

async function main(): Promise<void> {
  const dir = resolve(f.dir ?? join(repo, '.fedlora', 'runs', new Date().toISOString().replace(/[:.]/g, '-')));
  const logs = join(dir, 'logs');
  mkdirSync(logs, { recursive: true });
  say(`run folder ${dir} (logs in ${logs})`);
  const files = await writeSiteFiles({
    out: join(dir, 'sites'), sites: numSites, alpha: Number(f.alpha), seed: Number(f.seed),
    limit: f['site-limit'] ? Number(f['site-limit']) : undefined, log: say,
  });
  const adminToken = randomBytes(24).toString('base64url');
  const tokens = files.map((_, i) => `${siteName(i)}.${randomBytes(18).toString('base64url')}`);
  const port = Number(f.port) || (await freePort());
  const url = `http://127.0.0.1:${port}`;
  // the admin and join tokens go through the environment, not argv (argv is visible to every user of the machine)
  const coordCommand = coordinatorCommand({
    repo, port, dataDir: join(dir, 'coordinator'), rounds, minSites: Math.min(2, numSites),
    maxSteps: f['max-steps'] as string, lr: f.lr as string, maxLength: f['max-length'] as string,
    strategy: f.strategy as string, encoding: f.encoding as string, heldoutLimit: f['heldout-limit'],
    adminToken, siteTokens: tokens.map((token, i) => ({ name: siteName(i), token })),
  });
  writeFileSync(join(dir, 'admin-token'), adminToken + '\n', { mode: 0o600 });
  const coordinator = launch('coordinator', coordCommand, logs);
  coordinator.once('exit', (code) => {
    if (!finished) {
      say(`the coordinator exited early (code ${code}); see ${join(logs, 'coordinator.log')}`);
      void stopAll().then(() => process.exit(1));
    }
  });
  let finished = false;
  let siteExits = 0;
  const started = Date.now();
  for (;;) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() - started > 120_000) throw new Error(`the coordinator did not answer on ${url} within 120 s`);
    await new Promise((r) => setTimeout(r, 500));
  }
  // each site pins the coordinator's signing key from its join token (issue 21), so the tokens handed to the
  // agents carry the fingerprint the coordinator reports, exactly as POST /api/sites would hand them out
  const { coordinator: identity } = await api<{ coordinator: { fingerprint: string } }>(`${url}/api/status`, adminToken);
  say(`coordinator up at ${url} (key fingerprint ${identity.fingerprint}); evaluating version 0 and starting ${numSites} sites`);
  await Promise.all(
    files.map(async (file, i) => {
      const state = join(dir, siteName(i));
      const join_ = launch(siteName(i), siteJoinCommand({ repo, coordinator: url, data: file, stateDir: state, token: pinnedJoinToken(tokens[i]!, identity.fingerprint) }), logs);
      const code = await new Promise<number | null>((r) => join_.once('exit', r));
      if (code !== 0) throw new Error(`${siteName(i)} could not join (exit ${code}); see ${join(logs, siteName(i) + '.log')}`);
      const run = launch(siteName(i), siteRunCommand({ repo, stateDir: state }), logs);
      run.once('exit', (c, sig) => {
        if (finished || sig === 'SIGTERM') return;
        siteExits++;
        say(`${siteName(i)} stopped (exit ${c ?? sig}); see ${join(logs, siteName(i) + '.log')}`);
        if (siteExits > numSites - Math.min(2, numSites)) {
          say('too few sites left to aggregate a round; stopping');
          void stopAll().then(() => process.exit(1));
        }
      });
    }),
  );
  say(`${numSites} sites joined and running`);

  const printed = new Set<string>();
  let lastStage = '';
  for (;;) {
    const [{ versions }, status] = await Promise.all([
      api<{ versions: Version[] }>(`${url}/api/versions`, adminToken),
      api<{ state: string; lastRound: number; round: { round: number; stage: string; sampled: string[] | number } | null }>(`${url}/api/status`, adminToken),
    ]);
    for (const v of versions)
      if (!printed.has(v.id) && v.metrics) {
        printed.add(v.id);
        const what = v.round === 0 ? 'version 0 (frozen base + untrained adapter)' : `round ${v.round} → version ${v.id} (${v.sites} sites)`;
        console.log(`${what}: held-out accuracy ${v.metrics.accuracy.toFixed(4)}, macro-F1 ${v.metrics.macroF1.toFixed(4)}`);
      }
    const sampled = status.round?.sampled;
    const stage = status.round ? `round ${status.round.round}: ${status.round.stage} (${Array.isArray(sampled) ? sampled.length : Number(sampled ?? 0)} sites)` : '';
    if (stage && stage !== lastStage) say(stage);
    lastStage = stage;
    // the coordinator's --rounds counts rounds that made a version (a round without one does not use up the run)
    const versioned = versions.filter((v) => v.round > 0 && v.metrics).length;
    const done = versioned >= rounds || status.state === 'finished';
    if (done) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  finished = true;
  const { versions } = await api<{ versions: Version[] }>(`${url}/api/versions`, adminToken);
  const history = await api<RoundRecord[]>(`${url}/api/rounds`, adminToken);
  const aggregated = history.filter((r) => r.updates > 0);
  const bytesPerSiteRound = aggregated.length
    ? aggregated.reduce((a, r) => a + r.uploadedBytes / r.updates, 0) / aggregated.length
    : 0;
  for (const r of history)
    if (r.failures.length || r.rejections.length)
      say(`round ${r.round}: failures ${JSON.stringify(r.failures)} rejections ${JSON.stringify(r.rejections)}`);
  await stopAll(children.filter((c) => c !== coordinator));
  if (f.json) {
    await stopAll();
    console.log(
      JSON.stringify({
        versions: versions.map((v) => ({ id: v.id, round: v.round, accuracy: v.metrics?.accuracy ?? null, macroF1: v.metrics?.macroF1 ?? null })),
        bytesUploadedPerSitePerRound: Math.round(bytesPerSiteRound),
        roundSeconds: aggregated.map((r) => r.durationMs / 1000),
        runDir: dir,
      }),
    );
    process.exit(0);
  }
  console.log(`done: ${rounds} rounds. The coordinator keeps serving at ${url} (admin token in ${join(dir, 'admin-token')}, e.g. curl -H "Authorization: Bearer $(cat ${join(dir, 'admin-token')})" ${url}/api/versions); Ctrl-C stops it.`);
}

main().catch(async (err) => {
  say(`failed: ${(err as Error).message}`);
  await stopAll();
  process.exit(1);
});
