// Issue 18 must-show 1: two coordinator processes on one federation through a real Redis and a real PostgreSQL on
// loopback, behind a small round-robin TCP proxy, with 20 socket sites (fake trainers: a fixed delta, sealed and signed
// like a real site's). The leader is SIGKILLed during aggregation (held there by its fault-hold failpoint); the other
// process takes the lease, reruns the round, and the federation goes on. The registry holds each version exactly once,
// and every site reconnects by itself (through the proxy, to the surviving process).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect, createServer, type Server, type Socket as TcpSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { skipUnlessServers, startPostgres, startRedis, type TestServer } from '@fedlora/coordinator/testing-servers';
import { freePort, poll, Procs, startCoordinator, within, type CoordinatorProc } from './federation-harness';
import { adminApi, type RoundRecord, type VersionRecord } from './admin-client';
import { enrollSites, FakeSocketSite, type SiteIdentity } from './socket-sites';

const MIN = 60_000;
const SITES = 20;
const skip = skipUnlessServers('postgres', 'redis');
const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
});

/** A TCP proxy that hands each new connection to the next backend that accepts it (a dead one is skipped). */
async function roundRobinProxy(backends: number[]): Promise<{ url: string; close: () => Promise<void> }> {
  let next = 0;
  const open = new Set<TcpSocket>();
  const server: Server = createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    client.pause();
    const attempt = (tries: number) => {
      const port = backends[next++ % backends.length];
      const upstream = tcpConnect(port, '127.0.0.1');
      upstream.once('error', () => {
        upstream.destroy();
        if (tries + 1 < backends.length) attempt(tries + 1);
        else client.destroy();
      });
      upstream.once('connect', () => {
        open.add(upstream);
        upstream.on('close', () => open.delete(upstream));
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        client.pipe(upstream).pipe(client);
        client.resume();
      });
    };
    attempt(0);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** A fake site that reconnects by itself whenever its connection drops, as the real agent does. */
function keepConnected(url: string, identity: SiteIdentity, delta: () => NamedTensors): { current: () => FakeSocketSite | null; stop: () => void; reconnects: () => number } {
  let site: FakeSocketSite | null = null;
  let stopped = false;
  let reconnects = -1;
  const loop = async () => {
    while (!stopped) {
      try {
        site = await FakeSocketSite.connect(url, identity, { delta, numExamples: 10, ackTimeoutMs: 20_000 });
        reconnects++;
        await new Promise((r) => site!.socket.once('disconnect', r));
      } catch {
        /* the coordinator is down or still starting: try again */
      }
      if (!stopped) await new Promise((r) => setTimeout(r, 300 + Math.random() * 400));
    }
  };
  void loop();
  return {
    current: () => site,
    stop: () => {
      stopped = true;
      site?.close();
    },
    reconnects: () => reconnects,
  };
}

test(
  'when the leader of two coordinators is SIGKILLed during aggregation, then the other takes over and reruns the round, each version is stored once, and all 20 sites reconnect by themselves',
  { skip, timeout: 15 * MIN },
  async () => {
    const pg: TestServer = await startPostgres();
    cleanup.push(() => pg.stop());
    const redis: TestServer = await startRedis();
    cleanup.push(() => redis.stop());
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-cluster-'));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const procs = new Procs(join(dir, 'logs'));
    cleanup.push(() => procs.stopAll());

    const [portA, portB] = [await freePort(), await freePort()];
    const args = (node: string) => [
      ...['--database-url', pg.url, '--redis-url', redis.url, '--node-id', node, '--lease-s', '1'],
      ...['--heldout-limit', '40', '--min-sites', String(SITES), '--sample-wait-s', '1', '--rounds', '2'],
      ...['--deadline-s', '60', '--ack-timeout-s', '20'],
    ];
    // A leads (it starts first) and holds after collecting round 1's uploads, so the kill lands in aggregation
    const a: CoordinatorProc = await startCoordinator(procs, {
      name: 'coordinator-a',
      dataDir: join(dir, 'a'),
      port: portA,
      args: args('a'),
      env: { FEDLORA_FAULT_HOLD_AFTER_STAGE: 'collect' },
    });
    await a.proc.line(/cluster\.leader node=a/, 2 * MIN);
    const b = await startCoordinator(procs, { name: 'coordinator-b', dataDir: join(dir, 'b'), port: portB, args: args('b') });
    const proxy = await roundRobinProxy([portA, portB]);
    cleanup.push(() => proxy.close());
    const api = adminApi(proxy.url);

    // the sites upload a small fixed delta with the adapter's own names and shapes
    // the leader writes v0 (evaluated on the held-out set) once it holds the lease
    const v0 = decodeAdapter(
      await poll(async () => api.bytes('/api/versions/v0/native').catch(() => undefined), 3 * MIN, 'v0 from the leader'),
    ).adapter;
    const delta = () =>
      Object.fromEntries(Object.entries(v0).map(([k, t]) => [k, { shape: [...t.shape], data: new Float32Array(t.data.length).fill(1e-3) }]));
    const identities = await enrollSites(proxy.url, Array.from({ length: SITES }, (_, i) => `Site ${String(i).padStart(2, '0')}`));
    const sites = identities.map((id) => keepConnected(proxy.url, id, delta));
    cleanup.push(async () => sites.forEach((s) => s.stop()));

    // a follower refuses to steer the federation (the leader would never see it)
    const steer = await adminApi(b.url).call('/api/federation/pause', { method: 'POST' });
    assert.equal(steer.status, 503);
    assert.match(JSON.stringify(await steer.json()), /BUSY.*leads this federation/);

    // Act: A collects all 20 uploads of round 1 and holds; kill -9 it there
    await a.proc.line(/fault\.hold stage=collect round=1/, 5 * MIN);
    const onA = sites.filter((s) => s.current()?.connected).length;
    a.proc.child.kill('SIGKILL');
    await a.proc.exited;
    const tookOver = Date.now();
    await b.proc.line(/cluster\.leader node=b/, MIN);
    const takeoverS = (Date.now() - tookOver) / 1000;

    // Assert: B reruns round 1 and runs round 2; each version exactly once
    const versions = await poll(
      async () => {
        const v = (await api.json<{ versions: VersionRecord[] }>('/api/versions')).versions;
        return v.some((x) => x.round === 2) ? v : undefined;
      },
      8 * MIN,
      'version of round 2 on the surviving coordinator',
      1000,
    );
    assert.deepEqual(versions.map((v) => [v.id, v.round]), [['v0', 0], ['v1', 1], ['v2', 2]]);
    const rounds = await api.json<RoundRecord[]>('/api/rounds');
    const aggregated = rounds.filter((r) => r.outcome === 'aggregated').map((r) => r.round);
    assert.deepEqual(aggregated, [1, 2], 'each round aggregated once');
    const r2 = rounds.find((r) => r.round === 2 && r.outcome === 'aggregated')!;
    assert.equal(r2.updates, SITES, 'all 20 sites took part in round 2 after the takeover');
    assert.ok(sites.every((s) => s.current()?.connected), 'every site is connected again');
    const moved = sites.filter((s) => s.reconnects() >= 1).length;
    assert.ok(moved >= 1, 'the sites that were on the killed process reconnected');
    assert.equal((await within(a.proc.exited, 1000, 'A exited')).signal, 'SIGKILL');
    console.log(
      `# cluster: ${onA} sites connected when A was killed, ${moved} reconnected; B led ${takeoverS.toFixed(1)} s after the kill; ` +
        `round 1 reran in ${rounds.find((r) => r.round === 1)?.durationMs} ms`,
    );
  },
);
