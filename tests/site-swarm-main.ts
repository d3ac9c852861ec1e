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

let retries = 0;

/** Connects and readies each site, retrying a refused connection a few times with backoff, as the agent does. */
async function connectAll(urls: string[], identities: SiteIdentity[], concurrency: number, ackTimeoutMs: number): Promise<{ connected: number; failed: string[]; retries: number }> {
  let next = 0;
  const failed: string[] = [];
  const retriesBefore = retries;
  const connectOne = async (i: number) => {
    // sites spread over the coordinators in turn, as a load balancer would
    const url = urls[i % urls.length];
    for (let attempt = 1; ; attempt++) {
      try {
        const s = await FakeSocketSite.connect(url, identities[i], {
          ackTimeoutMs,
          delta: () => tinyAdapter(1e-4),
          onConfigure: (x) => configuredAt.set(x, Date.now()),
        });
        sites.push(s);
        s.socket.on('disconnect', () => disconnects++);
        return;
      } catch (err) {
        if (attempt === 5) {
          failed.push(`${identities[i].siteId}: ${describeConnectError(err)}`);
          return;
        }
        retries++;
        await new Promise((r) => setTimeout(r, 200 * 2 ** attempt * (0.5 + Math.random())));
      }
    }
  };
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < identities.length; i = next++) await connectOne(i);
    }),
  );
  return { connected: sites.length, failed: failed.slice(0, 5), retries: retries - retriesBefore };
}

/** socket.io-client's connect_error says 'websocket error'; the cause (an HTTP refusal, a reset) is in its description */
function describeConnectError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const d = (err as Error & { description?: unknown }).description;
  const why = d instanceof Error ? d.message : typeof d === 'object' && d && 'message' in d ? String((d as { message: unknown }).message) : '';
  return why ? `${err.message} (${why})` : err.message;
}

/** the codes of the refused uploads (an ack timeout counts under its message) */
function refusals(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of sites) for (const u of s.uploads) if (!u.ok) out[u.code ?? '?'] = (out[u.code ?? '?'] ?? 0) + 1;
  return out;
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
    uploadRefusals: refusals(),
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
