// Many fake socket sites in a child process (tests/site-swarm-main.ts), driven over IPC, for issue 18's load run:
// with 10,000 sockets the sites' own event loop (pings, configures, sealing uploads) must not be the bench's, nor
// share its measurements.

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { SiteIdentity } from './socket-sites';

export type SwarmCommand =
  | { id: number; type: 'connect'; urls: string[]; identities: SiteIdentity[]; concurrency: number; ackTimeoutMs: number }
  | { id: number; type: 'reset' | 'status' | 'close' };

export interface SwarmStatus {
  /** sites that authenticated and declared themselves ready */
  sites: number;
  /** of those, still connected */
  connected: number;
  /** sites that received a round:configure since the last reset */
  configured: number;
  /** Date.now() of the latest round:configure received (0: none) */
  lastConfigureAt: number;
  uploadsOk: number;
  /** refused uploads by the coordinator's code (or the client's error for an ack that never came) */
  uploadRefusals: Record<string, number>;
  disconnects: number;
  rss: number;
  cpuUs: number;
}

export interface SiteSwarm {
  /** connects and readies `identities`, spread over `urls` in turn; resolves when each has succeeded or failed */
  connect(urls: string[], identities: SiteIdentity[], o?: { concurrency?: number; ackTimeoutMs?: number }): Promise<{ connected: number; failed: string[]; retries: number }>;
  /** forgets the configures received so far */
  reset(): Promise<void>;
  status(): Promise<SwarmStatus>;
  close(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('./site-swarm-main.ts', import.meta.url));

export async function startSiteSwarm(): Promise<SiteSwarm> {
  const child: ChildProcess = fork(MAIN, [], {
    execArgv: ['--import', 'tsx', '--max-old-space-size=8192'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // the identities' key bytes cross as Uint8Arrays
    serialization: 'advanced',
  });
  let nextId = 0;
  const waiting = new Map<number, (m: Record<string, unknown>) => void>();
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the site swarm exited with ${code}`)));
    child.on('message', (m: Record<string, unknown>) => {
      if (m.ready) resolve();
      else waiting.get(m.id as number)?.(m);
    });
  });
  const call = (cmd: SwarmCommand extends infer C ? (C extends unknown ? Omit<C, 'id'> : never) : never) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const id = ++nextId;
      waiting.set(id, (m) => (waiting.delete(id), resolve(m)));
      child.send({ ...cmd, id });
    });
  return {
    connect: async (urls, identities, o = {}) =>
      (await call({ type: 'connect', urls, identities, concurrency: o.concurrency ?? 24, ackTimeoutMs: o.ackTimeoutMs ?? 120_000 })) as unknown as {
        connected: number;
        failed: string[];
        retries: number;
      },
    reset: async () => void (await call({ type: 'reset' })),
    status: async () => (await call({ type: 'status' })).status as SwarmStatus,
    close: async () => {
      if (child.exitCode === null) await Promise.race([call({ type: 'close' }), new Promise((r) => setTimeout(r, 10_000))]);
      child.kill();
    },
  };
}
