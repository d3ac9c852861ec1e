// A coordinator in its own process (tests/measured-coordinator-main.ts) for the soak and load runs of issue 18: the
// figures sampled there (RSS, heap, open handles) are the coordinator's alone, not the fake sites' in this process.

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CoordinatorOptions } from '@fedlora/coordinator';
import type { RoundSettings } from '@fedlora/coordinator';

export interface MeasuredOptions {
  settings: Partial<RoundSettings>;
  rounds: number;
  storage?: 'dir' | 'memory';
  edge?: CoordinatorOptions['edge'];
  /** one of several processes on one federation: stores in Postgres, socket.io on Redis (coordinator/src/cluster) */
  cluster?: { databaseUrl: string; redisUrl: string; nodeId: string };
}

export interface ProcessSample {
  rss: number;
  heapUsed: number;
  external: number;
  /** process.getActiveResourcesInfo() by kind (TCPSocketWrap, Timeout, FSReqCallback, …) */
  handles: Record<string, number>;
  /** local<-remote ports of the open net.Sockets */
  peers: string[];
  cpuUs: number;
}

export interface MeasuredCoordinator {
  url: string;
  pid: number;
  sample(): Promise<ProcessSample>;
  /** writes a V8 heap snapshot of the coordinator to `path` */
  heapSnapshot(path: string): Promise<void>;
  close(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('./measured-coordinator-main.ts', import.meta.url));

export async function startMeasuredCoordinator(opts: MeasuredOptions): Promise<MeasuredCoordinator> {
  const child: ChildProcess = fork(MAIN, [], {
    execArgv: ['--import', 'tsx', '--expose-gc', '--max-old-space-size=8192'],
    env: { ...process.env, FEDLORA_MEASURED: JSON.stringify(opts) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 0;
  const waiting = new Map<number, (m: Record<string, unknown>) => void>();
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the measured coordinator exited with ${code}`)));
    child.on('message', (m: Record<string, unknown>) => {
      if (typeof m.url === 'string') resolve(m.url);
      else waiting.get(m.id as number)?.(m);
    });
  });
  const call = (type: 'sample' | 'close' | 'heap-snapshot', path?: string) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const id = ++nextId;
      waiting.set(id, (m) => (waiting.delete(id), resolve(m)));
      child.send({ id, type, path });
    });
  return {
    url,
    pid: child.pid as number,
    sample: async () => (await call('sample')).sample as ProcessSample,
    heapSnapshot: async (path) => void (await call('heap-snapshot', path)),
    close: async () => {
      if (child.exitCode === null) await Promise.race([call('close'), new Promise((r) => setTimeout(r, 10_000))]);
      child.kill();
    },
  };
}
