// `npm run bench -- load` (or `npx tsx scripts/load-bench.ts [--sockets 1000,5000,10000] [--uploads 1000]`), issue 18
// must-show 4: how many concurrent authenticated site sockets one coordinator holds healthy, and the time to aggregate
// 1,000 uploads of the default adapter, each against a reference measured in the same run.
//   sockets     one coordinator process (tests/measured-coordinator.ts), grown in stages to each count of authenticated,
//               ready socket sites (tests/socket-sites.ts, one shared key pair: key generation is not the subject);
//               healthy = every socket authenticated and a round's configure reaching every sampled site within the
//               ack timeout. Reference: the same round with 10 sites.
//   aggregate   1,000 sealed uploads of the default adapter (LoRA r8 on query/value of 4 layers + 2-label head, 33,282
//               floats, built without loading the model) opened, checked and accumulated as the coordinator does
//               (rounds/upload.ts openUpload + FedAvg), vs a plain Float32Array sum of the same deltas.

import { useNativeEd25519 } from '@fedlora/shared/node/native-ed25519.ts';
import { generateBoxKeyPair, generateSiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { makeUpload } from '@fedlora/coordinator/testing';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { NonceLog, openUpload } from '../coordinator/src/rounds/upload.ts';
import { adminApi, adminFeed } from '../tests/admin-client.ts';
import { startMeasuredCoordinator, type MeasuredCoordinator, type ProcessSample } from '../tests/measured-coordinator.ts';
import { startSiteSwarm, type SwarmStatus } from '../tests/site-swarm.ts';
import { enrollSites } from '../tests/socket-sites.ts';
import { serverUnavailable, startPostgres, startRedis } from '@fedlora/coordinator/testing-servers';

type Out = (line: string) => void;
const mib = (b: number) => (b / 2 ** 20).toFixed(0);

/** The default adapter's tensors: LoRA r8 on query and value of 4 layers (hidden 256) and a 2-label head. */
export function defaultAdapterShapes(): Record<string, number[]> {
  const shapes: Record<string, number[]> = {};
  for (let l = 0; l < 4; l++)
    for (const m of ['query', 'value']) {
      shapes[`encoder.layer.${l}.attention.self.${m}.lora_A`] = [8, 256];
      shapes[`encoder.layer.${l}.attention.self.${m}.lora_B`] = [256, 8];
    }
  shapes['classifier.weight'] = [2, 256];
  shapes['classifier.bias'] = [2];
  return shapes;
}

function delta(shapes: Record<string, number[]>, seed: number): NamedTensors {
  const d: NamedTensors = {};
  let s = seed;
  for (const [k, shape] of Object.entries(shapes)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 1e-3;
    d[k] = { shape, data };
  }
  return d;
}

export async function benchAggregateUploads(out: Out, n = 1000): Promise<void> {
  // as createCoordinator does: OpenSSL's Ed25519 for the signatures (shared/src/crypto/ed25519.ts)
  useNativeEd25519();
  const shapes = defaultAdapterShapes();
  const params = Object.values(shapes).reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
  const site = generateSiteKeys();
  const round = generateBoxKeyPair();
  const cfg = { roundId: 'r1', coordinatorBoxPublicKey: round.publicKey };
  const global = delta(shapes, 0);
  const deltas = Array.from({ length: n }, (_, i) => delta(shapes, i + 1));
  const tSeal = performance.now();
  const uploads = deltas.map((d, i) => makeUpload(site, `site-${i}`, cfg, d, { numExamples: 10 + (i % 7) }));
  const sealMs = performance.now() - tSeal;
  const ids = uploads.map((_, i) => `site-${i}`);
  const check = {
    roundId: 'r1',
    siteSigningKey: site.signing.publicKey,
    roundSecretKey: round.secretKey,
    sampled: new Set(ids),
    delivered: new Set<string>(),
    nonces: new NonceLog(),
    layout: global,
    maxUploadBytes: 2 * params * 4 + 64 * 1024,
    maxDeltaNorm: 1e6,
    deltaNormPolicy: 'clip' as const,
    declaredExamples: 0,
  };

  // what the coordinator does per upload (signature, decryption, decoding, layout and finite checks, norm) + FedAvg
  const t0 = performance.now();
  const agg = createStrategy('fedavg', {}).createAggregator(1, global);
  let openMs = 0;
  for (const [i, u] of uploads.entries()) {
    const o0 = performance.now();
    const opened = openUpload(u, { ...check, siteId: ids[i] });
    openMs += performance.now() - o0;
    agg.accumulate(opened.result);
  }
  const outcome = agg.finish([]);
  const fullMs = performance.now() - t0;
  if (!outcome) throw new Error('the aggregation kept the adapter');

  // FedAvg alone over the decoded deltas (best of 3: the first run includes the JIT's warm-up)
  const best = (f: () => void) =>
    Math.min(
      ...[0, 1, 2].map(() => {
        const t = performance.now();
        f();
        return performance.now() - t;
      }),
    );
  const fedavgMs = best(() => {
    const agg2 = createStrategy('fedavg', {}).createAggregator(1, global);
    for (const [i, d] of deltas.entries()) agg2.accumulate({ siteId: ids[i], numExamples: 10 + (i % 7), delta: d, metrics: { loss: 1 } });
    agg2.finish([]);
  });

  // reference: a plain weighted Float32Array sum of the same data, then the division (best of 3)
  const keys = Object.keys(shapes);
  const refMs = best(() => {
    const sums = keys.map((k) => new Float32Array(global[k].data.length));
    let total = 0;
    for (const [i, d] of deltas.entries()) {
      const w = 10 + (i % 7);
      total += w;
      for (const [j, k] of keys.entries()) {
        const a = sums[j];
        const x = d[k].data;
        for (let e = 0; e < a.length; e++) a[e] += w * x[e];
      }
    }
    for (const a of sums) for (let e = 0; e < a.length; e++) a[e] /= total;
  });

  out(`\n## Aggregating ${n} uploads of the default adapter (${params} floats, ${((params * 4) / 1e6).toFixed(3)} MB fp32 each; sealed upload ${uploads[0].envelope.ciphertext.byteLength} bytes)`);
  out('| what | ms | per upload, ms | vs reference |');
  out('|---|---|---|---|');
  out(`| full coordinator path: openUpload (Ed25519 verify in OpenSSL, X25519 box open, decode, checks) + FedAvg | ${fullMs.toFixed(0)} | ${(fullMs / n).toFixed(2)} | ${(fullMs / refMs).toFixed(1)}x |`);
  out(`| of which openUpload | ${openMs.toFixed(0)} | ${(openMs / n).toFixed(2)} | ${(openMs / refMs).toFixed(1)}x |`);
  out(`| FedAvg alone (streaming weighted sum, finish; best of 3) | ${fedavgMs.toFixed(0)} | ${(fedavgMs / n).toFixed(3)} | ${(fedavgMs / refMs).toFixed(2)}x |`);
  out(`| reference: plain weighted Float32Array sum of the same deltas (best of 3) | ${refMs.toFixed(0)} | ${(refMs / n).toFixed(3)} | 1.00x |`);
  out(`(sealing the ${n} uploads on the site side, not part of the aggregation: ${sealMs.toFixed(0)} ms)`);
}

interface Stage {
  sockets: number;
  connectS: number;
  retries: number;
  authenticated: number;
  configureMs: number;
  configured: number;
  sampled: number;
  updates: number;
  roundMs: number;
  healthzMs: number;
  disconnects: number;
  /** the round record's failures by code */
  failures: Record<string, number>;
  coordinators: ProcessSample[];
  swarm: SwarmStatus;
}

export interface SocketBenchOptions {
  /** 1: one process on its own stores in memory; 2: two processes on Postgres + Redis (a throwaway server each) */
  coordinators?: 1 | 2;
  ackTimeoutS?: number;
}

/**
 * Grows the authenticated sockets of one coordinator (or of two on one federation) to each count and runs one round
 * at each. The sites live in a process of their own (tests/site-swarm.ts); with two coordinators they are spread over
 * both in turn, as a load balancer would, and the round runs on the leader.
 */
export async function benchSockets(out: Out, counts: number[], o: SocketBenchOptions = {}): Promise<void> {
  const ackTimeoutS = o.ackTimeoutS ?? 30;
  const nCoord = o.coordinators ?? 1;
  const max = Math.max(...counts);
  const settings = { sitesPerRound: { kind: 'fraction' as const, value: 1 }, minSites: 1, sampleWaitS: 0, deadlineS: 300, ackTimeoutS, maxDeltaNorm: 10 };
  const cleanup: (() => Promise<void>)[] = [];
  try {
    const coords: MeasuredCoordinator[] = [];
    if (nCoord === 1) coords.push(await startMeasuredCoordinator({ rounds: 0, storage: 'memory', settings }));
    else {
      const pg = await startPostgres();
      cleanup.push(() => pg.stop());
      const redis = await startRedis();
      cleanup.push(() => redis.stop());
      for (const nodeId of ['a', 'b']) {
        coords.push(await startMeasuredCoordinator({ rounds: 0, settings, cluster: { databaseUrl: pg.url, redisUrl: redis.url, nodeId } }));
        // a takes the lease before b starts: the leader is known
        if (nodeId === 'a')
          for (const until = Date.now() + 60_000; ; await new Promise((r) => setTimeout(r, 200))) {
            const put = await adminApi(coords[0].url).call('/api/settings', { method: 'PUT', body: JSON.stringify({ rounds: 0 }) });
            if (put.status === 200) break;
            if (Date.now() > until) throw new Error(`coordinator a did not take the lease: ${put.status}`);
          }
      }
    }
    for (const c of coords) cleanup.push(() => c.close());
    const leader = coords[0];
    const urls = coords.map((c) => c.url);
    const api = adminApi(leader.url);
    const feed = await adminFeed(leader.url);
    cleanup.push(async () => feed.close());
    const swarm = await startSiteSwarm();
    cleanup.push(() => swarm.close());

    const keys = generateSiteKeys();
    const t0 = performance.now();
    const ids = await enrollSites(leader.url, Array.from({ length: max }, (_, i) => `Load ${i + 1}`), keys, 16);
    const enrollS = (performance.now() - t0) / 1000;
    process.stderr.write(`load: enrolled ${max} sites in ${enrollS.toFixed(0)} s\n`);
    const idle = await Promise.all(coords.map((c) => c.sample()));
    const stages: Stage[] = [];
    let round = 0;
    let connected = 0;
    const runRound = async (n: number) => {
      round++;
      await swarm.reset();
      const seen = feed.events.filter((e) => e.event === 'round:end').length;
      const put = await api.call('/api/settings', { method: 'PUT', body: JSON.stringify({ rounds: round }) });
      if (put.status !== 200) throw new Error(`PUT /api/settings: ${put.status} ${await put.text()}`);
      const t = Date.now();
      const start = await api.call('/api/federation/start', { method: 'POST' });
      if (start.status !== 200) throw new Error(`start: ${start.status} ${await start.text()}`);
      let configureMs = NaN;
      for (const until = t + ackTimeoutS * 4000 + 300_000; ; await new Promise((r) => setTimeout(r, 50))) {
        const ends = feed.events.filter((e) => e.event === 'round:end');
        const st = await swarm.status();
        // every connected site got its configure (client side): the time of the last one
        if (Number.isNaN(configureMs) && st.configured >= st.connected && st.connected > 0) configureMs = st.lastConfigureAt - t;
        if (ends.length > seen) {
          const record = ends[seen].data as { sampled: number; updates: number; outcome: string; failures?: { code: string }[] };
          const failures: Record<string, number> = {};
          for (const f of record.failures ?? []) failures[f.code] = (failures[f.code] ?? 0) + 1;
          return { configureMs, configured: st.configured, failures, sampled: record.sampled, updates: record.updates, roundMs: Date.now() - t, n };
        }
        if (Date.now() > until) throw new Error(`round ${round} did not end`);
      }
    };
    const reference = await (async () => {
      const r = await swarm.connect([leader.url], ids.slice(0, 10), { ackTimeoutMs: 60_000 });
      connected = r.connected;
      return runRound(10);
    })();
    for (const n of [...counts].sort((a, b) => a - b)) {
      const tc = performance.now();
      const before = await swarm.status();
      // at most 24 at a time per coordinator: each admits 32 unauthenticated connections per address
      const r = await swarm.connect(urls, ids.slice(connected, n), { concurrency: 24 * urls.length, ackTimeoutMs: 120_000 });
      connected = n;
      if (r.failed.length > 0) process.stderr.write(`load: sites that could not connect in 5 attempts, e.g. ${r.failed.join('; ')}\n`);
      if (r.retries > 0) process.stderr.write(`load: ${r.retries} connection attempts refused and retried\n`);
      const connectS = (performance.now() - tc) / 1000;
      const rr = await runRound(n);
      const h0 = performance.now();
      await (await fetch(`${leader.url}/healthz`)).arrayBuffer();
      const healthzMs = performance.now() - h0;
      const st = await swarm.status();
      stages.push({ sockets: n, connectS, retries: r.retries, authenticated: st.connected, ...rr, healthzMs, disconnects: st.disconnects - before.disconnects, coordinators: await Promise.all(coords.map((c) => c.sample())), swarm: st });
      process.stderr.write(
        `load: ${n} sockets: ${st.connected} connected of ${st.sites} ready (${n - st.sites} failed to connect), configure to ${rr.configured} in ${rr.configureMs.toFixed(0)} ms, round ${rr.sampled} sampled / ${rr.updates} aggregated in ${(rr.roundMs / 1000).toFixed(1)} s, failures ${JSON.stringify(rr.failures)}, uploads refused so far (site side) ${JSON.stringify(st.uploadRefusals)}\n`,
      );
    }
    const where = nCoord === 1 ? 'one coordinator' : 'two coordinators (Postgres + Redis, sites spread over both, round on the leader)';
    out(`\n## Concurrent authenticated site sockets on ${where} (ack timeout ${ackTimeoutS} s; enrolling ${max} sites took ${enrollS.toFixed(0)} s; sites in their own process)`);
    out('| sockets | connected after the round | configure reached | sampled / updates aggregated (round record) | configure to all, ms | vs 10 sites | whole round (all uploads), s | /healthz, ms | coordinator RSS, MiB | heap, MiB | sites process RSS, MiB | connect + auth of the stage, s (attempts retried) | disconnects | round failures by code | healthy |');
    out('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    const list = (xs: number[]) => xs.map(mib).join(' + ');
    out(`| 10 (reference) | 10 | ${reference.configured} | ${reference.sampled} / ${reference.updates} | ${reference.configureMs.toFixed(0)} | 1.0x | ${(reference.roundMs / 1000).toFixed(1)} | | ${list(idle.map((x) => x.rss))} (idle) | ${list(idle.map((x) => x.heapUsed))} (idle) | | | | | |`);
    for (const s of stages) {
      const healthy = s.authenticated === s.sockets && s.configured === s.sockets && s.sampled === s.sockets && s.updates === s.sockets && s.disconnects === 0;
      out(
        `| ${s.sockets} | ${s.authenticated} | ${s.configured} | ${s.sampled} / ${s.updates} | ${s.configureMs.toFixed(0)} | ${(s.configureMs / reference.configureMs).toFixed(1)}x | ${(s.roundMs / 1000).toFixed(1)} | ${s.healthzMs.toFixed(0)} | ${list(s.coordinators.map((x) => x.rss))} | ${list(s.coordinators.map((x) => x.heapUsed))} | ${mib(s.swarm.rss)} | ${s.connectS.toFixed(0)} (${s.retries}) | ${s.disconnects} | ${Object.entries(s.failures).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'} | ${healthy ? 'yes' : 'NO'} |`,
      );
    }
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => {});
  }
}

export async function runLoadBench(out: Out, opts: { sockets?: number[]; uploads?: number; coordinators?: (1 | 2)[] } = {}): Promise<void> {
  if (opts.uploads !== 0) await benchAggregateUploads(out, opts.uploads ?? 1000);
  for (const n of opts.coordinators ?? [1, 2]) {
    if (n === 2) {
      const why = serverUnavailable('postgres') ?? serverUnavailable('redis');
      if (why) {
        out(`\nTwo coordinators: skipped (${why})`);
        continue;
      }
    }
    await benchSockets(out, opts.sockets ?? [1000, 5000, 10_000], { coordinators: n });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { parseCommandLineOrExit } = await import('@fedlora/shared/node/command-line.ts');
  const { values: f } = parseCommandLineOrExit('load-bench', 'npx tsx scripts/load-bench.ts [--sockets 1000,5000,10000] [--uploads 1000 (0: skip)] [--coordinators 1,2]', process.argv.slice(2), {
    sockets: { type: 'string', default: '1000,5000,10000' },
    uploads: { type: 'string', default: '1000' },
    coordinators: { type: 'string', default: '1,2' },
  });
  console.log(`# fedlora load benchmark (${new Date().toISOString()}, ${process.platform} ${process.arch}, node ${process.version})`);
  await runLoadBench((l) => console.log(l), { sockets: f.sockets.split(',').map(Number), uploads: Number(f.uploads), coordinators: f.coordinators.split(',').map((x) => (x === '2' ? 2 : 1)) });
  process.exit(0);
}
