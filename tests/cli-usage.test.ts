// Every command-line entry point answers --help with its usage, and an unknown flag with one line naming the flag,
// then the usage, exit status 2, and no stack trace (issue 16). Each entry runs as a real process, as a user starts it.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Cli {
  /** the program name that starts its one-line error */
  program: string;
  entry: string;
  /** arguments before the flag under test (the site CLI's command) */
  args: string[];
  /** the first line of its usage */
  usage: string;
}

const site = (command: string, usage: string): Cli => ({
  program: `fedlora-site ${command}`,
  entry: 'client-node/bin/fedlora-site.js',
  args: [command],
  usage,
});

const CLIS: Cli[] = [
  { program: 'npm run bench', entry: 'scripts/bench.ts', args: [], usage: 'npm run bench [-- section…]' },
  { program: 'make-site-data', entry: 'scripts/make-site-data.ts', args: [], usage: 'npx tsx scripts/make-site-data.ts [options]' },
  { program: 'npm start', entry: 'scripts/start.ts', args: [], usage: 'npm start [-- options]' },
  { program: 'simulate', entry: 'simulations/src/main.ts', args: [], usage: 'npm run simulate -- [options]' },
  { program: 'simulate:grid', entry: 'simulations/src/grid.ts', args: [], usage: 'npm run simulate:grid -- [options]' },
  { program: 'fedlora-coordinator', entry: 'coordinator/bin/fedlora-coordinator.js', args: [], usage: 'fedlora-coordinator [options]' },
  { program: 'fedlora-site', entry: 'client-node/bin/fedlora-site.js', args: [], usage: 'fedlora-site <command> [options]' },
  site('train-local', 'fedlora-site train-local [options]'),
  site('pretrain', 'fedlora-site pretrain --text FILE --out DIR [options]'),
  site('merge', 'fedlora-site merge --base DIR --adapter DIR --out DIR [--force] [--json] [--quiet]'),
  site('inspect', 'fedlora-site inspect --text T [--pair T2] [--model DIR] [--json] [--backend NAME]'),
  site('join', 'fedlora-site join --coordinator URL --token TOKEN --data FILE [options]'),
  site('run', 'fedlora-site run [options]'),
  site('predict', 'fedlora-site predict (--text TEXT | --file FILE) [options]'),
  site('serve', 'fedlora-site serve [options]'),
];

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(cli: Cli, flag: string): Promise<Exit> {
  return new Promise((done, fail) => {
    // no FEDLORA_* settings from the caller's shell: the flag alone decides what happens
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FEDLORA_')));
    const child = spawn(process.execPath, ['--import', 'tsx', cli.entry, ...cli.args, flag], { cwd: ROOT, env, timeout: 60_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** Runs the jobs at most `limit` at a time (each is a node process starting tsx), results in job order. */
async function bounded<T>(jobs: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const out = new Array<T>(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  return out;
}

const STACK_LINE = /^\s+at /m;
const runs = new Map<string, Exit>();

before(async () => {
  const cases = CLIS.flatMap((cli) => ['--help', '--no-such-flag'].map((flag) => ({ cli, flag })));
  const exits = await bounded(
    cases.map(({ cli, flag }) => () => runCli(cli, flag)),
    4,
  );
  cases.forEach(({ cli, flag }, i) => runs.set(`${cli.program} ${flag}`, exits[i]));
});

for (const cli of CLIS) {
  test(`when ${cli.program} gets --help, then it prints its usage on stdout and exits 0`, () => {
    const r = runs.get(`${cli.program} --help`) as Exit;
    assert.equal(r.code, 0, `stderr: ${r.stderr}`);
    assert.ok(r.stdout.startsWith(cli.usage), `stdout: ${r.stdout.slice(0, 300)}`);
    assert.doesNotMatch(r.stderr, STACK_LINE);
  });

  test(`when ${cli.program} gets an unknown flag, then it prints one line naming it, then its usage, and exits 2`, () => {
    const r = runs.get(`${cli.program} --no-such-flag`) as Exit;
    assert.equal(r.code, 2, `stderr: ${r.stderr}`);
    assert.equal(r.stdout, '');
    const [first, blank, usage] = r.stderr.split('\n');
    assert.ok(first.startsWith(`${cli.program}: `), first);
    assert.match(first, /'--no-such-flag'/);
    assert.equal(blank, '');
    assert.ok(usage.startsWith(cli.usage), usage);
    assert.doesNotMatch(r.stderr, STACK_LINE);
  });
}
