// The child process of tests/measured-coordinator.ts: one coordinator (tiny fake task, FedAvg, autostart off) whose
// own RSS, heap and open handles the soak and load runs sample over IPC, apart from the sites' sockets in the parent.
// Options arrive as JSON in FEDLORA_MEASURED (MeasuredOptions); the URL goes back as the first IPC message.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { createCoordinator, openPostgresStores, DirStorage, MemoryStorage, DEFAULT_SETTINGS, DEFAULT_STOP, hashModelFiles, silentLogger } from '@fedlora/coordinator';
import { tinyFakeTask, writeTinyModelDir } from '@fedlora/coordinator/testing';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { ADMIN_TOKEN } from './federation-harness';
import type { MeasuredOptions, ProcessSample } from './measured-coordinator';

const opts = JSON.parse(process.env.FEDLORA_MEASURED ?? '{}') as MeasuredOptions;
const dir = mkdtempSync(join(tmpdir(), 'fedlora-measured-'));
const modelDir = writeTinyModelDir(dir);
const pg = opts.cluster ? await openPostgresStores(opts.cluster.databaseUrl) : null;
const coord = await createCoordinator({
  adminToken: ADMIN_TOKEN,
  storage: opts.storage === 'memory' ? new MemoryStorage() : new DirStorage(join(dir, 'data')),
  ...(pg && opts.cluster
    ? {
        adapterStore: pg.adapters,
        siteStore: pg.sites,
        identityStore: { where: 'postgres', read: () => pg.identity.read(), write: (r) => pg.identity.write(r) },
        sessionStore: pg.sessions,
        cluster: { redisUrl: opts.cluster.redisUrl, pool: pg.pool, nodeId: opts.cluster.nodeId },
      }
    : {}),
  strategy: createStrategy('fedavg', {}),
  settings: { ...DEFAULT_SETTINGS, ...opts.settings } as typeof DEFAULT_SETTINGS,
  stop: { ...DEFAULT_STOP, rounds: opts.rounds },
  task: tinyFakeTask(await hashModelFiles(modelDir)),
  autostart: false,
  log: silentLogger,
  retryDelayMs: 0,
  edge: opts.edge,
});
const url = await coord.listen(0);

function sample(): ProcessSample {
  (globalThis as { gc?: () => void }).gc?.(); // retained memory, not garbage not yet collected
  const handles: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) handles[r] = (handles[r] ?? 0) + 1;
  const m = process.memoryUsage();
  // the peers of the open TCP sockets, to tell a lingering connection from a leak
  const peers = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles()
    .filter((h): h is { remotePort?: number; localPort?: number; constructor: { name: string } } => (h as object)?.constructor?.name === 'Socket')
    .map((h) => `${h.localPort}<-${h.remotePort}`);
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, handles, peers, cpuUs: process.cpuUsage().user + process.cpuUsage().system };
}

process.on('message', (msg: { id: number; type: 'sample' | 'close' | 'heap-snapshot'; path?: string }) => {
  if (msg.type === 'sample') process.send?.({ id: msg.id, sample: sample() });
  // a V8 heap snapshot (scripts/heap-diff.ts compares two), to find what grows
  if (msg.type === 'heap-snapshot') process.send?.({ id: msg.id, path: writeHeapSnapshot(msg.path) });
  if (msg.type === 'close')
    void coord.close().then(() => pg?.pool.end()).finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.send?.({ id: msg.id, closed: true });
      process.exit(0);
    });
});
process.send?.({ url });
