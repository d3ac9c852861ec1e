// Real processes for the end-to-end tests: a coordinator (coordinator/bin, admin token via env) and Node site agents
// (client-node/bin: join with the token via env, run) on per-site CSVs from scripts/make-site-data. Every child is
// tracked by a Procs and always stopped by its handle; readiness is read from the processes' own output or by
// polling the API with a bound and a message saying what was awaited, never by sleeping a fixed time.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSiteFiles } from '../scripts/make-site-data';
import { freePort } from '@fedlora/coordinator/testing-servers';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const COORDINATOR_BIN = join(ROOT, 'coordinator/bin/fedlora-coordinator.js');
export const SITE_BIN = join(ROOT, 'client-node/bin/fedlora-site.js');
export const ADMIN_TOKEN = 'e2e-admin-token-0123456789abcdef';
/** every child runs tfjs on wasm: the same numbers on every machine, and no native build needed */
export const CHILD_ENV = { FEDLORA_BACKEND: 'wasm' };

/** Rejects with `what` when `p` has not settled within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Calls `probe` every `everyMs` until it returns a value other than undefined; bounded by `ms`. */
export async function poll<T>(
  probe: () => Promise<T | undefined>,
  ms: number,
  what: string,
  everyMs = 500,
): Promise<T> {
  const until = Date.now() + ms;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err; // the coordinator may be restarting or busy evaluating
    }
    if (Date.now() > until)
      throw new Error(
        `timed out after ${ms / 1000} s waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export { freePort };

export interface Proc {
  name: string;
  child: ChildProcess;
  /** stdout and stderr so far */
  output(): string;
  /** resolves with the exit code (null when killed by a signal) */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** resolves with the first output line matching `re`; rejects if the process exits first */
  line(re: RegExp, ms: number): Promise<string>;
}

/**
 * The child processes of one test file; stopAll() ends every one still running (SIGTERM, then SIGKILL).
 * With a `logDir`, each process's output is also written to <logDir>/<name>.log (kept as a test artifact).
 */
export class Procs {
  readonly all: Proc[] = [];
  private readonly logs: WriteStream[] = [];

  constructor(private readonly logDir?: string) {}

  spawn(name: string, args: string[], env: Record<string, string> = {}): Proc {
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...CHILD_ENV, ...env },
    });
    let file: WriteStream | undefined;
    if (this.logDir) {
      mkdirSync(this.logDir, { recursive: true });
      file = createWriteStream(join(this.logDir, `${name.replace(/[^\w.#-]+/g, '-')}.log`), { flags: 'a' });
      this.logs.push(file);
    }
    let text = '';
    const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
    const onData = (b: Buffer) => {
      text += b.toString();
      file?.write(b);
      for (const w of [...waiters]) {
        const hit = text.split('\n').find((l) => w.re.test(l));
        if (hit !== undefined) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(hit);
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const proc: Proc = {
      name,
      child,
      output: () => text,
      exited,
      line: (re, ms) =>
        within(
          new Promise<string>((resolve, reject) => {
            const hit = text.split('\n').find((l) => re.test(l));
            if (hit !== undefined) return resolve(hit);
            waiters.push({ re, resolve });
            void exited.then(() =>
              setImmediate(() =>
                reject(new Error(`${name} exited before printing ${re}:\n${text.slice(-2000)}`)),
              ),
            );
          }),
          ms,
          `${name} to print ${re}`,
        ),
    };
    this.all.push(proc);
    return proc;
  }

  async stop(p: Proc, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return;
    p.child.kill(signal);
    const t = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
    await p.exited;
    clearTimeout(t);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.all.map((p) => this.stop(p)));
    await Promise.all(this.logs.splice(0).map((f) => new Promise((r) => f.end(r))));
  }

  /** names of started processes that are still running */
  running(): string[] {
    return this.all
      .filter((p) => p.child.exitCode === null && p.child.signalCode === null)
      .map((p) => p.name);
  }
}

/** Live processes (other than this one) whose command line contains `needle`: what a test left behind. */
export function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    if (Number(pid) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      if (cmd.includes(needle) && state !== 'Z') found.push(`${pid} ${cmd.slice(0, 160)}`);
    } catch {
      /* the process ended while we looked */
    }
  }
  return found;
}

export interface CoordinatorProc {
  proc: Proc;
  url: string;
  adminToken: string;
  /** the fingerprint of its signing key, as it printed it (join tokens carry it) */
  fingerprint: string;
}

/**
 * Starts `fedlora-coordinator` on loopback (port 0 = any free one) with its data in `dataDir` and extra flags in
 * `args`; resolves with the URL it printed once it listens. Loading the model and evaluating version 0 on wasm takes
 * a while on a small, shared CPU, hence the generous bound.
 */
export async function startCoordinator(
  procs: Procs,
  o: { dataDir: string; args?: string[]; port?: number; name?: string; env?: Record<string, string> },
): Promise<CoordinatorProc> {
  const proc = procs.spawn(
    o.name ?? 'coordinator',
    [
      COORDINATOR_BIN,
      ...['--port', String(o.port ?? 0), '--host', '127.0.0.1', '--data-dir', o.dataDir],
      ...(o.args ?? []),
    ],
    { FEDLORA_ADMIN_TOKEN: ADMIN_TOKEN, ...o.env },
  );
  const line = await proc.line(/listening on https?:\/\/\S+/, 180_000);
  const url = (/listening on (https?:\/\/\S+)/.exec(line) as RegExpExecArray)[1];
  return { proc, url, adminToken: ADMIN_TOKEN, fingerprint: fingerprintPrinted(proc.output()) };
}

/** The fingerprint a coordinator printed at start (the last one: a restarted coordinator prints it again). */
export function fingerprintPrinted(output: string): string {
  const all = [...output.matchAll(/coordinator fingerprint (\S+)/g)];
  if (!all.length) throw new Error(`the coordinator printed no fingerprint:\n${output}`);
  return all[all.length - 1][1];
}

/** One CSV per site under <dir>/sites (stratified subset of the SpamAssassin training part, Dirichlet label skew). */
export function siteFiles(dir: string, sites: number, limit: number): Promise<string[]> {
  return writeSiteFiles({ out: join(dir, 'sites'), sites, alpha: 1, seed: 42, limit, log: () => {} });
}

/** `fedlora-site join` into <dir>/<name> (the token via env, never argv); resolves once it has exited. */
export async function joinSite(
  procs: Procs,
  o: { dir: string; name: string; url: string; token: string; data: string; env?: Record<string, string> },
): Promise<{ code: number | null; output: string }> {
  const p = procs.spawn(
    `join ${o.name}`,
    [SITE_BIN, 'join', '--coordinator', o.url, '--data', o.data, '--state-dir', join(o.dir, o.name)],
    { FEDLORA_TOKEN: o.token, ...o.env },
  );
  const { code } = await within(p.exited, 120_000, `${o.name} to join`);
  return { code, output: p.output() };
}

/** `fedlora-site run` on the state dir <dir>/<name> that joinSite enrolled; it runs until stopped. */
export function runSite(
  procs: Procs,
  o: { dir: string; name: string; args?: string[]; env?: Record<string, string> },
): Proc {
  return procs.spawn(o.name, [SITE_BIN, 'run', '--state-dir', join(o.dir, o.name), ...(o.args ?? [])], o.env);
}

export interface Federation {
  url: string;
  port: number;
  dataDir: string;
  coordinator: Proc;
  /** site-a, site-b, … in order; each a running `fedlora-site run --json` */
  sites: Proc[];
  siteIds: string[];
  /** the fingerprint of the coordinator's signing key as it last printed it (preset tokens come without it) */
  fingerprint: string;
  /** (re)starts the coordinator on the same port and data dir, with extra environment variables */
  startCoordinator(env?: Record<string, string>): Promise<Proc>;
}

/**
 * A coordinator process on a fixed free loopback port (so that a restart keeps its URL) plus one joined and running
 * site agent per CSV in `siteFiles`. `coordinatorArgs` are extra flags; site ids are site-a, site-b, … (preset tokens).
 */
export async function launchFederation(
  procs: Procs,
  dir: string,
  siteFiles: string[],
  coordinatorArgs: string[],
  /** siteArgs: extra flags of every `fedlora-site run` (e.g. --holdout) */
  opts: { coordinatorEnv?: Record<string, string>; siteArgs?: string[] } = {},
): Promise<Federation> {
  const port = await freePort();
  const dataDir = join(dir, 'coordinator');
  const siteIds = siteFiles.map((_, i) => `site-${String.fromCharCode(97 + i)}`);
  const tokens = siteIds.map((id) => `${id}.e2e-join-token-${Math.random().toString(36).slice(2)}`);
  const args = [...siteIds.flatMap((id, i) => ['--site-token', `${id}=${tokens[i]}`]), ...coordinatorArgs];
  let n = 0;
  const fed: Federation = {
    url: `http://127.0.0.1:${port}`,
    port,
    dataDir,
    coordinator: null as unknown as Proc,
    sites: [],
    siteIds,
    fingerprint: '',
    async startCoordinator(env) {
      const c = await startCoordinator(procs, { dataDir, args, port, name: `coordinator#${++n}`, env });
      fed.coordinator = c.proc;
      fed.fingerprint = c.fingerprint;
      return c.proc;
    },
  };
  await fed.startCoordinator(opts.coordinatorEnv);
  fed.sites = await Promise.all(
    siteFiles.map(async (data, i) => {
      const name = siteIds[i];
      // preset tokens are chosen by the deployer and carry no fingerprint: it comes beside them, as the docs say
      const joined = await joinSite(procs, { dir, name, url: fed.url, token: tokens[i], data, env: { FEDLORA_COORDINATOR_FINGERPRINT: fed.fingerprint } });
      if (joined.code !== 0) throw new Error(`${name} join exited ${joined.code}:\n${joined.output}`);
      return runSite(procs, { dir, name, args: ['--json', '--quiet', ...(opts.siteArgs ?? [])] });
    }),
  );
  return fed;
}
