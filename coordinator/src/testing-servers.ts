// Throwaway PostgreSQL and Redis servers for tests and benchmarks: each in its own temp dir, on a free loopback port,
// started from Debian's packages (`.ci/run` installs them) and stopped by the handle. Nothing is shared between
// tests and nothing listens beyond 127.0.0.1. Outside CI a missing server is a skip with a printed reason; in CI
// (CI=true) it is an error, so that a test that needs a server can never pass by not running.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestServer {
  /** postgres://… or redis://… on 127.0.0.1 */
  url: string;
  stop(): Promise<void>;
}

/** A port on 127.0.0.1 that nothing listens on right now. */
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

/** The directory of Debian's PostgreSQL server binaries (the newest major installed), or null. */
function postgresBin(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const majors = readdirSync(root)
    .filter((d) => existsSync(join(root, d, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return majors.length ? join(root, majors[0], 'bin') : null;
}

function redisBin(): string | null {
  for (const p of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) if (existsSync(p)) return p;
  return null;
}

/** Why the server cannot run here, or null when it can. */
export function serverUnavailable(kind: 'postgres' | 'redis'): string | null {
  if (kind === 'postgres')
    return postgresBin() ? null : 'PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)';
  return redisBin() ? null : 'redis-server not found (apt-get install redis-server)';
}

/**
 * The skip reason for a test that needs `kinds`, or false when they are all there. In CI a missing server throws:
 * the test must fail loudly rather than skip.
 */
export function skipUnlessServers(...kinds: ('postgres' | 'redis')[]): string | false {
  const why = kinds.map(serverUnavailable).filter((x): x is string => x !== null);
  if (why.length === 0) return false;
  const reason = why.join('; ');
  if (process.env.CI) throw new Error(`CI needs these servers and cannot start them: ${reason}`);
  console.log(`# skipping: ${reason}`);
  return reason;
}

/** Postgres refuses to run as root: as root, the server runs as the `postgres` user Debian's package creates. */
function asServerUser(cmd: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [cmd, args];
  return ['runuser', ['-u', 'postgres', '--', cmd, ...args]];
}

function run(cmd: string, args: string[], what: string): void {
  const [c, a] = asServerUser(cmd, args);
  const r = spawnSync(c, a, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}): ${r.stderr || r.stdout}`);
}

async function waitFor(child: ChildProcess, output: () => string, ready: RegExp, what: string, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ready.test(output())) {
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode}):\n${output().slice(-2000)}`);
    if (Date.now() > until) throw new Error(`${what} not ready after ${ms / 1000} s:\n${output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stopper(child: ChildProcess, dir: string): () => Promise<void> {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
}

/** A fresh PostgreSQL cluster (trust auth on loopback only) with a database `fedlora`. */
export async function startPostgres(): Promise<TestServer> {
  const bin = postgresBin();
  if (!bin) throw new Error(serverUnavailable('postgres') as string);
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-pg-'));
  if (process.getuid?.() === 0) {
    const pw = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    chownSync(dir, Number(pw.stdout.trim()), Number(gid.stdout.trim()));
  }
  const data = join(dir, 'data');
  run(join(bin, 'initdb'), ['-D', data, '-U', 'fedlora', '--auth=trust', '--no-sync', '-E', 'UTF8'], 'initdb');
  const port = await freePort();
  const [c, a] = asServerUser(join(bin, 'postgres'), [
    '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off',
  ]);
  const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  await waitFor(child, () => out, /database system is ready to accept connections/, 'postgres');
  run(join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'fedlora', 'fedlora'], 'createdb');
  return { url: `postgres://fedlora@127.0.0.1:${port}/fedlora`, stop: stopper(child, dir) };
}

/** A fresh Redis without persistence. */
export async function startRedis(): Promise<TestServer> {
  const bin = redisBin();
  if (!bin) throw new Error(serverUnavailable('redis') as string);
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-redis-'));
  const port = await freePort();
  const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  await waitFor(child, () => out, /Ready to accept connections/, 'redis-server');
  return { url: `redis://127.0.0.1:${port}`, stop: stopper(child, dir) };
}
