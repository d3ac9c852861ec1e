// Shared pieces of the end-to-end tests: child processes that are always stopped (and can be checked to be gone),
// bounded waits with a message saying what was awaited, the admin REST API and the '/admin' live namespace.
// Synchronisation is by events and by polling the API, never by sleeping a fixed time.

import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { io as connect, type Socket } from 'socket.io-client';

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

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Proc {
  name: string;
  child: ChildProcess;
  /** stdout and stderr so far */
  output(): string;
  /** resolves with the exit code (null when killed by a signal) */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** resolves with the first output line matching `re` */
  line(re: RegExp, ms: number): Promise<string>;
}

/** The child processes of one test file; stopAll() ends every one still running (SIGTERM, then SIGKILL). */
export class Procs {
  readonly all: Proc[] = [];

  spawn(name: string, args: string[], env: Record<string, string> = {}): Proc {
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...CHILD_ENV, ...env },
    });
    let text = '';
    const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
    const onData = (b: Buffer) => {
      text += b.toString();
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

/** The admin REST API of a coordinator at `url`. */
export function adminApi(url: string, token: string | null = ADMIN_TOKEN) {
  const call = async (path: string, init: RequestInit = {}) =>
    fetch(url + path, {
      ...init,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      signal: AbortSignal.timeout(60_000),
    });
  return {
    call,
    async json<T>(path: string, init: RequestInit = {}): Promise<T> {
      const r = await call(path, init);
      if (!r.ok) throw new Error(`${init.method ?? 'GET'} ${path}: HTTP ${r.status} ${await r.text()}`);
      return (await r.json()) as T;
    },
    async bytes(path: string): Promise<Uint8Array> {
      const r = await call(path);
      if (!r.ok) throw new Error(`GET ${path}: HTTP ${r.status}`);
      return new Uint8Array(await r.arrayBuffer());
    },
  };
}

/** A connected '/admin' socket that records every event it receives, so a wait can never miss an early one. */
export interface AdminFeed {
  socket: Socket;
  events: { event: string; data: Record<string, unknown> }[];
  /** resolves with the first event (past or future) named `event` for which `match` holds */
  next(
    event: string,
    match: (d: Record<string, unknown>) => boolean,
    ms: number,
  ): Promise<Record<string, unknown>>;
  close(): void;
}

export async function adminFeed(url: string, token = ADMIN_TOKEN): Promise<AdminFeed> {
  const socket = connect(url + '/admin', { transports: ['websocket'], forceNew: true, auth: { token } });
  const events: AdminFeed['events'] = [];
  const waiters: {
    event: string;
    match: (d: Record<string, unknown>) => boolean;
    resolve: (d: Record<string, unknown>) => void;
  }[] = [];
  socket.onAny((event: string, data: Record<string, unknown>) => {
    events.push({ event, data });
    for (const w of [...waiters])
      if (w.event === event && w.match(data)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(data);
      }
  });
  await within(
    new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    }),
    30_000,
    `the /admin namespace of ${url}`,
  );
  return {
    socket,
    events,
    next: (event, match, ms) =>
      within(
        new Promise((resolve) => {
          const seen = events.find((e) => e.event === event && match(e.data));
          if (seen) return resolve(seen.data);
          waiters.push({ event, match, resolve });
        }),
        ms,
        `admin event ${event}`,
      ),
    close: () => socket.close(),
  };
}

/** The parts of the coordinator's records the tests read (docs/API.md). */
export interface VersionRecord {
  id: string;
  parent: string | null;
  round: number;
  sites: number;
  examples: number;
  sha256: string;
  bytes: number;
  metrics: {
    accuracy: number;
    macroF1: number;
    loss: number;
    perClass: { label: string; support: number }[];
  } | null;
}
export interface RoundRecord {
  round: number;
  outcome: string;
  versionId: string | null;
  baseVersionId: string;
  sampled: number;
  updates: number;
  failures: { siteId: string; code: string }[];
  rejections: { siteId: string; code: string }[];
  uploadedBytes: number;
  durationMs: number;
}

export interface Federation {
  url: string;
  port: number;
  dataDir: string;
  coordinator: Proc;
  /** site-a, site-b, … in order; each a running `fedlora-site run --json` */
  sites: Proc[];
  siteIds: string[];
  /** (re)starts the coordinator on the same port and data dir */
  startCoordinator(): Promise<Proc>;
}

/**
 * A coordinator process on a free loopback port plus one joined and running site agent per CSV in `siteFiles`.
 * `coordinatorArgs` are extra flags (rounds, training budget); site ids are site-a, site-b, … (preset tokens).
 */
export async function launchFederation(
  procs: Procs,
  dir: string,
  siteFiles: string[],
  coordinatorArgs: string[],
): Promise<Federation> {
  const port = await freePort();
  const dataDir = join(dir, 'coordinator');
  const siteIds = siteFiles.map((_, i) => `site-${String.fromCharCode(97 + i)}`);
  const tokens = siteIds.map((id) => `${id}.e2e-join-token-${Math.random().toString(36).slice(2)}`);
  const args = [
    COORDINATOR_BIN,
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--data-dir',
    dataDir,
    ...siteIds.flatMap((id, i) => ['--site-token', `${id}=${tokens[i]}`]),
    ...coordinatorArgs,
  ];
  let n = 0;
  const fed: Federation = {
    url: `http://127.0.0.1:${port}`,
    port,
    dataDir,
    coordinator: null as unknown as Proc,
    sites: [],
    siteIds,
    async startCoordinator() {
      const p = procs.spawn(`coordinator#${++n}`, args, { FEDLORA_ADMIN_TOKEN: ADMIN_TOKEN });
      // loading the model and evaluating version 0 on wasm takes a while on a small, shared CPU
      await p.line(/listening on http/, 180_000);
      fed.coordinator = p;
      return p;
    },
  };
  await fed.startCoordinator();
  fed.sites = await Promise.all(
    siteFiles.map(async (file, i) => {
      const state = join(dir, siteIds[i]);
      const j = procs.spawn(
        `join ${siteIds[i]}`,
        [SITE_BIN, 'join', '--coordinator', fed.url, '--data', file, '--state-dir', state],
        {
          FEDLORA_TOKEN: tokens[i],
        },
      );
      const { code } = await within(j.exited, 120_000, `${siteIds[i]} to join`);
      if (code !== 0) throw new Error(`${siteIds[i]} join exited ${code}:\n${j.output()}`);
      return procs.spawn(siteIds[i], [SITE_BIN, 'run', '--state-dir', state, '--json', '--quiet']);
    }),
  );
  return fed;
}
