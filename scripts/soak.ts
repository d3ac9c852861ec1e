// `npm run soak -- --rounds 500 --sites 50`: issue 18's soak (tests/soak-harness.ts): one coordinator process, socket
// sites with fake trainers joining and leaving at random; prints its RSS, heap and open handles over the rounds and
// judges them: RSS after warm-up within ±10% of its median, no growth in handles. Exit 1 when either fails.

import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseCommandLineOrExit } from '@fedlora/shared/node/command-line.ts';
import { runSoak, otherHandles, tcpSockets } from '../tests/soak-harness.ts';

const USAGE = `npm run soak -- [--rounds N] [--sites S] [--seed X] [--heap-snapshots R1,R2]
  N rounds (default 500) with S socket sites (default 50) joining and leaving at random; --heap-snapshots writes the
  coordinator's heap after those rounds to ./soak-heap/round-R.heapsnapshot (compare: npx tsx scripts/heap-diff.ts)`;
const { values: f } = parseCommandLineOrExit('npm run soak', USAGE, process.argv.slice(2), {
  rounds: { type: 'string', default: '500' },
  sites: { type: 'string', default: '50' },
  seed: { type: 'string', default: '1803' },
  'heap-snapshots': { type: 'string' },
});
const [rounds, sites, seed] = [Number(f.rounds), Number(f.sites), Number(f.seed)];
if (![rounds, sites, seed].every(Number.isInteger) || rounds < 10 || sites < 5) {
  console.error(`npm run soak: --rounds must be an integer ≥ 10 and --sites ≥ 5\n${USAGE}`);
  process.exit(2);
}
const snapshotRounds = f['heap-snapshots']?.split(',').map(Number) ?? [];
if (snapshotRounds.length > 0) mkdirSync('soak-heap', { recursive: true });
const r = await runSoak({ rounds, sites, seed, progress: (l) => console.error(l), heapSnapshots: { dir: resolve('soak-heap'), rounds: snapshotRounds } });
const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const pct = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;
console.log(`# soak (${new Date().toISOString()}, node ${process.version}): ${rounds} rounds, ${sites} sites, seed ${seed}, ${r.seconds.toFixed(0)} s (${((1000 * r.seconds) / rounds).toFixed(0)} ms/round), ${r.joins} joins, ${r.leaves} leaves`);
console.log(`round outcomes: ${JSON.stringify(r.outcomes)}; warm-up: the first ${r.warmup} rounds`);
console.log('| | min | median | max | max vs median | min vs median | last tenth vs first tenth |\n|---|---|---|---|---|---|---|');
console.log(`| RSS, MiB | ${mib(r.rss.min)} | ${mib(r.rss.median)} | ${mib(r.rss.max)} | ${pct(r.rss.up)} | ${pct(r.rss.down)} | ${pct(r.rss.drift)} |`);
console.log(`| heap used (after GC), MiB | ${mib(r.heap.min)} | ${mib(r.heap.median)} | ${mib(r.heap.max)} | ${pct(r.heap.up)} | ${pct(r.heap.down)} | ${pct(r.heap.drift)} |`);
console.log(`heap after GC grows ${(r.heapSlope / 1024).toFixed(1)} KiB per round (least squares after warm-up); the round and version history the coordinator keeps and serves is ${(r.historyBytes / 1024).toFixed(0)} KiB of JSON, ${(r.historyBytes / rounds / 1024).toFixed(1)} KiB per round`);
console.log(`open handles other than sockets after warm-up (timers follow the sites online): min ${r.otherHandles.min}, max ${r.otherHandles.max}, mean of the first tenth of the rounds ${r.otherHandles.first.toFixed(1)} with ${r.online.first.toFixed(1)} sites online, of the last tenth ${r.otherHandles.last.toFixed(1)} with ${r.online.last.toFixed(1)} online; TCP sockets − sites online: ${r.socketsOverOnline.min}..${r.socketsOverOnline.max}`);
console.log(`before any site: ${JSON.stringify(r.before.handles)}, RSS ${mib(r.before.rss)} MiB; after all left: ${JSON.stringify(r.after.handles)}, RSS ${mib(r.after.rss)} MiB`);
console.log('\n| round | outcome | sites online | RSS MiB | heap MiB | handles |\n|---|---|---|---|---|---|');
const every = Math.max(1, Math.floor(rounds / 20));
for (const s of r.rounds.filter((x, i) => i % every === 0 || i === r.rounds.length - 1))
  console.log(`| ${s.round} | ${s.outcome} | ${s.online} | ${mib(s.rss)} | ${mib(s.heapUsed)} | ${JSON.stringify(s.handles)} |`);
const flat = Math.max(r.rss.up, -r.rss.down) <= 0.1;
// all sites gone: no socket left, and no more other handles than before the first site came
const noGrowth = tcpSockets(r.after) === 0 && otherHandles(r.after) <= otherHandles(r.before);
console.log(`\nRSS flat within ±10% after warm-up: ${flat ? 'yes' : 'NO'}; no growth in open handles: ${noGrowth ? 'yes' : 'NO'}`);
process.exit(flat && noGrowth ? 0 : 1);
