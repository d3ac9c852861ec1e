// Real processes for the end-to-end tests: a coordinator (coordinator/bin, port 0, admin token via env) and Node
// site agents (client-node/bin: join, run) on per-site CSVs from scripts/make-site-data. Readiness is read from the
// processes' own output, never guessed with sleeps; every process is killed by its handle when the test ends.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { REPO } from './browser';
import { writeSiteFiles } from '../scripts/make-site-data';

export interface Proc {
  child: ChildProcess;
  /** stdout + stderr so far */
  output(): string;
  /** resolves with the exit code */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

function launch(name: string, args: string[], o: { logDir: string; env?: Record<string, string> }): Proc {
  mkdirSync(o.logDir, { recursive: true });
  const file = createWriteStream(join(o.logDir, `${name}.log`), { flags: 'a' });
  const child = spawn(process.execPath, args, {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...o.env },
  });
  let out = '';
  for (const s of [child.stdout, child.stderr]) {
    s?.setEncoding('utf8');
    s?.on('data', (d: string) => {
      out += d;
      file.write(d);
    });
  }
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    output: () => out,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      file.end();
    },
  };
}

/** Resolves with the first match of `re` in the process's output; rejects if it exits first. */
export function waitForOutput(p: Proc, re: RegExp): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = re.exec(p.output());
      if (m) {
        done();
        resolve(m);
      }
    };
    const onExit = (code: number | null) => {
      done();
      reject(new Error(`process exited (${code}) before printing ${re}:\n${p.output().slice(-3000)}`));
    };
    const done = () => {
      p.child.stdout?.off('data', check);
      p.child.stderr?.off('data', check);
      p.child.off('exit', onExit);
    };
    p.child.stdout?.on('data', check);
    p.child.stderr?.on('data', check);
    p.child.once('exit', onExit);
    check();
  });
}

export interface CoordinatorProc extends Proc {
  url: string;
  adminToken: string;
}

/** Starts `fedlora-coordinator --port 0` in `dir`; resolves once it listens. Extra flags go in `args`. */
export async function startCoordinator(
  dir: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<CoordinatorProc> {
  const adminToken = randomBytes(24).toString('base64url');
  const p = launch(
    'coordinator',
    [
      'coordinator/bin/fedlora-coordinator.js',
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--data-dir',
      join(dir, 'coordinator'),
      ...args,
    ],
    { logDir: join(dir, 'logs'), env: { FEDLORA_ADMIN_TOKEN: adminToken, ...env } },
  );
  const m = await waitForOutput(p, /listening on (http:\/\/\S+)/);
  return { ...p, url: m[1], adminToken };
}

/** One CSV per site (stratified subset of the SpamAssassin training part, Dirichlet label skew). */
export function siteFiles(dir: string, sites: number, limit: number): Promise<string[]> {
  return writeSiteFiles({ out: join(dir, 'sites'), sites, alpha: 1, seed: 42, limit, log: () => {} });
}

/** `fedlora-site join` (token via env, never argv); resolves with its exit code and output. */
export async function joinSite(o: {
  dir: string;
  name: string;
  url: string;
  token: string;
  data: string;
  env?: Record<string, string>;
}): Promise<{ code: number | null; output: string }> {
  const p = launch(
    `${o.name}-join`,
    [
      'client-node/bin/fedlora-site.js',
      'join',
      '--coordinator',
      o.url,
      '--data',
      o.data,
      '--state-dir',
      join(o.dir, o.name),
    ],
    { logDir: join(o.dir, 'logs'), env: { FEDLORA_TOKEN: o.token, ...o.env } },
  );
  const code = await p.exited;
  await p.stop();
  return { code, output: p.output() };
}

/** `fedlora-site run` for an enrolled state dir; stop() ends it. */
export function runSite(o: { dir: string; name: string; env?: Record<string, string> }): Proc {
  return launch(o.name, ['client-node/bin/fedlora-site.js', 'run', '--state-dir', join(o.dir, o.name)], {
    logDir: join(o.dir, 'logs'),
    env: o.env,
  });
}
