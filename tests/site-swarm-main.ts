// The child process of tests/site-swarm.ts: thousands of fake socket sites (tests/socket-sites.ts) in a process of
// their own, so that the load run's sites do not share an event loop with the bench that counts them, and the
// process that holds them is measured apart from the coordinator. Commands and replies travel over IPC.

import { FakeSocketSite, type SiteIdentity } from './socket-sites';
import { tinyAdapter } from '@fedlora/coordinator/testing';
import { useNativeEd25519 } from '@fedlora/shared/node/native-ed25519.ts';
import type { SwarmCommand, SwarmStatus } from './site-swarm';

// the sites sign challenges and uploads as the Node agent does: with OpenSSL's Ed25519
useNativeEd25519();

const sites: FakeSocketSite[] = [];
/** Date.now() of each site's latest round:configure (0: none since the last reset) */
const configuredAt = new Map<FakeSocketSite, number>();
let disconnects = 0;

async function connectAll(urls: string[], identities: SiteIdentity[], concurrency: number, ackTimeoutMs: number): Promise<{ connected: number; failed: string[] }> {
  let next = 0;
  const failed: string[] = [];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < identities.length; i = next++) {
        // sites spread over the coordinators in turn, as a load balancer would
        const url = urls[i % urls.length];
        await FakeSocketSite.connect(url, identities[i], {
          ackTimeoutMs,
          delta: () => tinyAdapter(1e-4),
          onConfigure: (s) => configuredAt.set(s, Date.now()),
        }).then(
          (s) => {
            sites.push(s);
            s.socket.on('disconnect', () => disconnects++);
          },
          (err: unknown) => failed.push(`${identities[i].siteId}: ${err instanceof Error ? err.message : String(err)}`),
        );
      }
    }),
  );
  return { connected: sites.length, failed: failed.slice(0, 5) };
}

function status(): SwarmStatus {
  let configured = 0;
  let lastConfigureAt = 0;
  for (const s of sites) {
    const t = configuredAt.get(s) ?? 0;
    if (t > 0) configured++;
    lastConfigureAt = Math.max(lastConfigureAt, t);
  }
  const m = process.memoryUsage();
  return {
    sites: sites.length,
    connected: sites.filter((s) => s.connected).length,
    configured,
    lastConfigureAt,
    uploadsOk: sites.reduce((a, s) => a + s.uploads.filter((u) => u.ok).length, 0),
    disconnects,
    rss: m.rss,
    cpuUs: process.cpuUsage().user + process.cpuUsage().system,
  };
}

process.on('message', (cmd: SwarmCommand) => {
  void (async () => {
    switch (cmd.type) {
      case 'connect': {
        const r = await connectAll(cmd.urls, cmd.identities, cmd.concurrency, cmd.ackTimeoutMs);
        process.send?.({ id: cmd.id, ...r });
        break;
      }
      case 'reset':
        configuredAt.clear();
        process.send?.({ id: cmd.id });
        break;
      case 'status':
        process.send?.({ id: cmd.id, status: status() });
        break;
      case 'close':
        for (const s of sites) s.close();
        process.send?.({ id: cmd.id });
        process.exit(0);
    }
  })();
});
process.send?.({ ready: true });
