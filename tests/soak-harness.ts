// Issue 18, must-show 3: a soak of one coordinator (its own process, tests/measured-coordinator.ts) under socket sites
// with fake trainers (tests/socket-sites.ts) that join and leave at random, mid-round too, for many rounds. After
// every round the coordinator's RSS, heap and open handles are sampled (after a GC), so that growth over the rounds
// shows as retained memory or handles, not as garbage not yet collected. `npm run soak` prints the figures; the small
// version is tests/soak.e2e.test.ts.

import { seededRandom } from '@fedlora/shared/random.ts';
import { tinyAdapter } from '@fedlora/coordinator/testing';
import { join as joinPath } from 'node:path';
import { adminApi, adminFeed } from './admin-client';
import { startMeasuredCoordinator, type ProcessSample } from './measured-coordinator';
import { enrollSites, FakeSocketSite, type SiteIdentity } from './socket-sites';
import { within } from './federation-harness';

export interface SoakOptions {
  rounds: number;
  sites: number;
  seed?: number;
  /** each churn tick (every `tickMs`), a site leaves with this probability, or an absent one joins with `pJoin` */
  pLeave?: number;
  pJoin?: number;
  tickMs?: number;
  progress?: (line: string) => void;
  /** heap snapshots of the coordinator after these rounds, written as <heapSnapshots.dir>/round-<n>.heapsnapshot */
  heapSnapshots?: { dir: string; rounds: number[] };
}

export interface RoundSample extends ProcessSample {
  round: number;
  outcome: string;
  updates: number;
  online: number;
  ms: number;
}

export interface SoakReport {
  rounds: RoundSample[];
  warmup: number;
  seconds: number;
  joins: number;
  leaves: number;
  before: ProcessSample;
  after: ProcessSample;
  /** over the rounds after warm-up: RSS and heap min/median/max, and their extremes relative to the median */
  rss: Spread;
  heap: Spread;
  /**
   * open handles that are not sockets (timers, the server, the IPC pipe) after warm-up: min, max, and the means of
   * the first and last tenth of the rounds; timers follow the sites online (each connection has its ping timer), so
   * `online` gives the same means for the sites online
   */
  otherHandles: { min: number; max: number; first: number; last: number };
  online: { first: number; last: number };
  /** TCP sockets minus sites online, per round: constant if no socket outlives its site */
  socketsOverOnline: { min: number; max: number };
  outcomes: Record<string, number>;
  /** least-squares slope of the heap after GC over the rounds after warm-up, bytes per round */
  heapSlope: number;
  /** the round and version history the coordinator keeps and serves (GET /api/rounds + /api/versions, JSON), bytes */
  historyBytes: number;
}

export interface Spread {
  min: number;
  median: number;
  max: number;
  /** (max − median) / median and (min − median) / median */
  up: number;
  down: number;
  /** mean of the last tenth of the rounds over the mean of the first tenth after warm-up, minus 1 */
  drift: number;
}

const sockets = (s: ProcessSample) => s.handles.TCPSocketWrap ?? 0;
/** handles other than TCP sockets; in-flight requests (FSReqPromise, CloseReq, …) end by themselves and are left out */
const others = (s: ProcessSample) =>
  Object.entries(s.handles).reduce((a, [k, n]) => (k === 'TCPSocketWrap' || k.includes('Req') ? a : a + n), 0);
const tenths = (xs: number[]) => {
  const n = Math.max(1, Math.floor(xs.length / 10));
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  return { first: mean(xs.slice(0, n)), last: mean(xs.slice(-n)) };
};

/** least-squares slope of xs over their index */
function slope(xs: number[]): number {
  const n = xs.length;
  const mx = (n - 1) / 2;
  const my = xs.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (const [i, y] of xs.entries()) {
    num += (i - mx) * (y - my);
    den += (i - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function spread(xs: number[]): Spread {
  const sorted = [...xs].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const tenth = Math.max(1, Math.floor(xs.length / 10));
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  return {
    min: sorted[0],
    median,
    max: sorted.at(-1) as number,
    up: (sorted.at(-1)! - median) / median,
    down: (sorted[0] - median) / median,
    drift: mean(xs.slice(-tenth)) / mean(xs.slice(0, tenth)) - 1,
  };
}

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const rnd = seededRandom(o.seed ?? 18_03);
  const minOnline = 3;
  const coord = await startMeasuredCoordinator({
    rounds: o.rounds,
    settings: {
      sitesPerRound: { kind: 'fraction', value: 1 },
      minSites: minOnline,
      sampleWaitS: 0,
      deadlineS: 20,
      ackTimeoutS: 5,
      maxDeltaNorm: 10,
    },
  });
  const online: (FakeSocketSite | null)[] = new Array(o.sites).fill(null);
  const joining = new Set<number>();
  const inFlight = new Set<Promise<void>>();
  let joins = 0;
  let leaves = 0;
  let ticker: NodeJS.Timeout | undefined;
  const feed = await adminFeed(coord.url);
  try {
    const before = await coord.sample();
    const ids: SiteIdentity[] = await enrollSites(coord.url, Array.from({ length: o.sites }, (_, i) => `Soak Site ${i + 1}`));
    const delta = () => {
      const d = tinyAdapter(0);
      d['classifier.bias'].data.fill(1e-4);
      return d;
    };
    const join = async (i: number) => {
      joining.add(i);
      try {
        online[i] = await FakeSocketSite.connect(coord.url, ids[i], { numExamples: 5 + (i % 7), delta });
        joins++;
      } finally {
        joining.delete(i);
      }
    };
    const count = () => online.filter((s) => s?.connected).length;
    await Promise.all(ids.map((_, i) => join(i)));

    // churn: every tick one random site leaves (if enough stay) or an absent one joins; ticks fall anywhere in a round
    ticker = setInterval(() => {
      const i = Math.floor(rnd() * o.sites);
      const s = online[i];
      if (s && rnd() < (o.pLeave ?? 0.5) && count() > minOnline + 1) {
        s.close();
        online[i] = null;
        leaves++;
      } else if (!s && !joining.has(i) && rnd() < (o.pJoin ?? 0.5)) {
        const p = join(i).catch(() => {});
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
    }, o.tickMs ?? 25);

    const samples: RoundSample[] = [];
    const t0 = performance.now();
    let last = t0;
    const done = new Promise<void>((resolve, reject) => {
      let sampling = Promise.resolve();
      feed.socket.on('round:end', (r: { round: number; outcome: string; updates: number }) => {
        const n = count();
        // in order, one sample at a time: a sample taken while the next round runs is still that round's state
        sampling = sampling.then(async () => {
          const s = await coord.sample();
          if (o.heapSnapshots?.rounds.includes(r.round)) await coord.heapSnapshot(joinPath(o.heapSnapshots.dir, `round-${r.round}.heapsnapshot`));
          const now = performance.now();
          samples.push({ ...s, round: r.round, outcome: r.outcome, updates: r.updates, online: n, ms: now - last });
          last = now;
          if (r.round % 50 === 0) o.progress?.(`soak: round ${r.round}, RSS ${(s.rss / 2 ** 20).toFixed(1)} MiB, heap ${(s.heapUsed / 2 ** 20).toFixed(1)} MiB, handles ${JSON.stringify(s.handles)}, ${n} online`);
          if (samples.length >= o.rounds) resolve();
        }, reject);
      });
    });
    const started = await adminApi(coord.url).call('/api/federation/start', { method: 'POST' });
    if (started.status !== 200) throw new Error(`federation start: ${started.status}`);
    await within(done, Math.max(120_000, o.rounds * 20_000), `${o.rounds} soak rounds`);
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(ticker);
    ticker = undefined;

    // what the coordinator keeps by design: every round's and version's record, as the API serves them
    const api = adminApi(coord.url);
    const historyBytes = (await (await api.call('/api/rounds')).text()).length + (await (await api.call('/api/versions')).text()).length;

    // everyone leaves (joins under way first finish): what the coordinator still holds is what it leaked
    await Promise.all(inFlight);
    for (const [i, s] of online.entries()) {
      s?.close();
      online[i] = null;
    }
    feed.close();
    let after = await coord.sample();
    // up to 10 s: an HTTP keep-alive connection of the admin calls lingers for the server's keepAliveTimeout (5 s)
    for (let i = 0; i < 100 && (sockets(after) > 0 || others(after) > others(before)); i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await coord.sample();
    }

    const warmup = Math.max(5, Math.floor(o.rounds / 10));
    const post = samples.slice(warmup);
    const outcomes: Record<string, number> = {};
    for (const s of samples) outcomes[s.outcome] = (outcomes[s.outcome] ?? 0) + 1;
    const over = post.map((s) => sockets(s) - s.online);
    return {
      rounds: samples,
      warmup,
      seconds,
      joins,
      leaves,
      before,
      after,
      rss: spread(post.map((s) => s.rss)),
      heap: spread(post.map((s) => s.heapUsed)),
      otherHandles: { min: Math.min(...post.map(others)), max: Math.max(...post.map(others)), ...tenths(post.map(others)) },
      online: tenths(post.map((s) => s.online)),
      socketsOverOnline: { min: Math.min(...over), max: Math.max(...over) },
      outcomes,
      heapSlope: slope(post.map((s) => s.heapUsed)),
      historyBytes,
    };
  } finally {
    if (ticker) clearInterval(ticker);
    for (const s of online) s?.close();
    feed.close();
    await coord.close();
  }
}

export const otherHandles = others;
export const tcpSockets = sockets;
