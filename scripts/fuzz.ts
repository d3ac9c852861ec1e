// `npm run fuzz -- --frames 10000`: issue 18's fuzz (tests/fuzz/harness.ts) at full size: fast-check frames at a live
// coordinator's site socket and admin REST API while an honest round runs; prints frames, time and the histogram of
// answers, and exits 1 when the property fails (the counterexample is printed, shrunk). `npm test` runs 500 frames.

import { parseCommandLineOrExit } from '@fedlora/shared/node/command-line.ts';
import { EXPECTED_BIAS, runFuzz } from '../tests/fuzz/harness.ts';

const USAGE = `npm run fuzz -- [--frames N] [--seed S]
  N fuzz frames (default 10000) at the site socket and the admin API during an honest round; seed default 1802`;
const { values: f } = parseCommandLineOrExit('npm run fuzz', USAGE, process.argv.slice(2), {
  frames: { type: 'string', default: '10000' },
  seed: { type: 'string', default: '1802' },
});
const frames = Number(f.frames);
const seed = Number(f.seed);
if (!Number.isInteger(frames) || frames < 10 || !Number.isInteger(seed)) {
  console.error(`npm run fuzz: --frames must be an integer ≥ 10 and --seed an integer\n${USAGE}`);
  process.exit(2);
}
try {
  const s = await runFuzz({ frames, seed, progress: (l) => console.error(l) });
  console.log(`# fuzz (${new Date().toISOString()}, node ${process.version}): ${s.frames} frames, seed ${seed}, ${s.seconds.toFixed(1)} s (${(s.frames / s.seconds).toFixed(0)} frames/s), ${s.reconnects} connections reopened after the server closed them`);
  console.log(`site events fuzzed: ${s.eventsSent.join(', ')}`);
  console.log(`admin routes fuzzed: ${s.routesSent.length} (${s.routesSent.join(', ')})`);
  console.log('| answer | frames |\n|---|---|');
  for (const [k, n] of Object.entries(s.outcomes).sort((a, b) => b[1] - a[1])) console.log(`| ${k} | ${n} |`);
  const exact = Math.abs(s.honestBias - EXPECTED_BIAS) < 1e-7;
  console.log(`honest round: ${s.honestRoundOutcome}, classifier.bias ${s.honestBias} (expected ${EXPECTED_BIAS}: ${exact ? 'exact' : 'WRONG'})`);
  process.exit(exact && s.honestRoundOutcome === 'aggregated with 2 updates' ? 0 : 1);
} catch (err) {
  console.error(String(err instanceof Error ? err.message : err).slice(0, 4000));
  process.exit(1);
}
