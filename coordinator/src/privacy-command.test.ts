// Tests for fedlora-privacy (privacy-command.ts): both subcommands in-process with --json and as a sentence, the
// refusals of a bad command line (exit 2), and one run of the installed bin as a child process.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { main, type CommandOutput } from './privacy-command';

function run(argv: string[]): { code: number; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const output: CommandOutput = { out: (l) => out.push(l), err: (l) => err.push(l) };
  return { code: main(argv, output), out, err };
}

const OPACUS_EPSILON = ['--noise-multiplier', '1.5', '--sample-rate', '0.04', '--rounds', '2250', '--delta', '1e-5'];
const OPACUS_NOISE = ['--target-epsilon', '8', '--sample-rate', '0.04', '--rounds', '2000', '--delta', '1e-5'];

test('when epsilon runs with --json, then it prints {"epsilon", "order"} for the Opacus reference case', () => {
  const r = run(['epsilon', ...OPACUS_EPSILON, '--json']);
  assert.equal(r.code, 0);
  assert.deepEqual(r.err, []);
  const printed = JSON.parse(r.out.join('\n')) as { epsilon: number; order: number };
  assert.deepEqual(Object.keys(printed), ['epsilon', 'order']);
  assert.ok(Math.abs(printed.epsilon - 7.32911117) <= 1e-6, `ε = ${printed.epsilon}`);
});

test('when epsilon runs with --orders tf and no --json, then it prints one sentence with ε and the order', () => {
  // TF Privacy's DP-SGD Test0: n 60000, batch 150 (q = 0.0025), 15 epochs (6000 steps), z 1.3, δ 1e-5
  const r = run(['epsilon', '--noise-multiplier', '1.3', '--sample-rate', '0.0025', '--rounds', '6000', '--delta', '1e-5', '--orders', 'tf']);
  assert.equal(r.code, 0);
  assert.equal(r.out.length, 1);
  assert.match(r.out[0], /^ε = 0\.7242234\d* .*RDP order 19\b/);
});

test('when noise runs with --json, then it prints {"noiseMultiplier"} for the Opacus reference case', () => {
  const r = run(['noise', ...OPACUS_NOISE, '--json']);
  assert.equal(r.code, 0);
  const printed = JSON.parse(r.out.join('\n')) as { noiseMultiplier: number };
  assert.deepEqual(Object.keys(printed), ['noiseMultiplier']);
  assert.ok(Math.abs(printed.noiseMultiplier - 1.3562) <= 1e-4, `z = ${printed.noiseMultiplier}`);
  assert.match(run(['noise', ...OPACUS_NOISE]).out[0], /^noise multiplier 1\.356\d* keeps 2000 rounds/);
});

test('when a flag is mistyped, missing or not a number, then exit 2 with the problem and the usage on stderr', () => {
  const mistyped = run(['epsilon', ...OPACUS_EPSILON, '--nosie', '1']);
  assert.equal(mistyped.code, 2);
  assert.deepEqual(mistyped.out, []);
  assert.match(mistyped.err[0], /^fedlora-privacy epsilon: CONFIG_INVALID: Unknown option '--nosie'/);
  assert.match(mistyped.err[0], /--noise-multiplier Z/); // the usage follows
  assert.match(run(['noise', '--sample-rate', '0.1', '--rounds', '5', '--delta', '1e-5']).err[0], /--target-epsilon is required/);
  assert.match(run(['epsilon', ...OPACUS_EPSILON, '--rounds', 'many']).err[0], /--rounds must be a number, got "many"/);
  assert.match(run(['epsilon', ...OPACUS_EPSILON, '--orders', 'pytorch']).err[0], /--orders must be one of opacus, tf/);
  assert.match(run(['budget']).err[0], /unknown command "budget"/);
});

test('when a parameter is out of range, then exit 2 with CONFIG_INVALID naming it', () => {
  for (const [flag, value, why] of [
    ['--sample-rate', '1.5', /sample rate q must be in \(0, 1\]/],
    ['--noise-multiplier', '0', /noise multiplier z must be/],
    ['--delta', '1', /delta must be in \(0, 1\)/],
    ['--rounds', '2.5', /rounds must be a whole number/],
  ] as const) {
    const r = run(['epsilon', ...OPACUS_EPSILON, flag, value]);
    assert.equal(r.code, 2, flag);
    assert.match(r.err[0], /CONFIG_INVALID/);
    assert.match(r.err[0], why);
  }
});

test('when --help is asked, then the usage is printed with exit 0', () => {
  for (const argv of [['--help'], ['epsilon', '--help'], ['noise', '-h']]) {
    const r = run(argv);
    assert.equal(r.code, 0, argv.join(' '));
    assert.match(r.out[0], /^fedlora-privacy/);
  }
});

test('when the bin runs as a process, then it prints the JSON and exits 0', () => {
  const bin = fileURLToPath(new URL('../bin/fedlora-privacy.js', import.meta.url));
  const stdout = execFileSync(process.execPath, [bin, 'epsilon', ...OPACUS_EPSILON, '--json'], { encoding: 'utf8' });
  assert.ok(Math.abs((JSON.parse(stdout) as { epsilon: number }).epsilon - 7.32911117) <= 1e-6);
});
