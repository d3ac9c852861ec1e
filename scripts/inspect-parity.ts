// `fedlora-site inspect` against an independent PyTorch reference (scripts/bert_reference.py) on the shipped model:
// token ids must be equal and the last layer's [CLS] vector within 2e-4, on a text of about 20 tokens and one of
// about 450 (positions version 1 did not have). Needs Debian's python3-torch; not part of `npm test`.
// Usage: npx tsx scripts/inspect-parity.ts [--model DIR] [--python PATH]

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseCommandLineOrExit } from '@fedlora/shared/node/command-line.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { inspectText } from '../client-node/src/commands/inspect';

const USAGE = `npx tsx scripts/inspect-parity.ts [--model DIR] [--python PATH]
  compares fedlora-site inspect with scripts/bert_reference.py (PyTorch) on a ~20-token and a ~450-token text:
  ids equal and max |[CLS] difference| <= 2e-4; exits 1 otherwise`;

const { values: f } = parseCommandLineOrExit('inspect-parity', USAGE, process.argv.slice(2), {
  model: { type: 'string' },
  python: { type: 'string' },
});
if (f.help) {
  console.log(USAGE);
  process.exit(0);
}
const modelDir = f.model ?? DEFAULT_MODEL_DIR;
// Debian's python3-torch lives under /usr/bin/python3 (a pyenv python3 earlier on PATH would not see it)
const python = f.python ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const reference = fileURLToPath(new URL('./bert_reference.py', import.meta.url));

const SHORT = 'Your account has been suspended! Verify your password today at the link below, or lose access.';
// ~450 tokens: an ordinary mail body, repeated sentences with numbers, punctuation and a few rare words
const LONG = Array.from(
  { length: 11 },
  (_, i) =>
    `Paragraph ${i + 1}: the quarterly meeting moved to room ${200 + i}; please bring the signed forms, ` +
    `your badge and the revised budget (version ${i}.${i + 2}) — questions to the office before Friday.`,
).join(' ');

const TOLERANCE = 2e-4;
let failed = false;
for (const [name, text] of [
  ['short', SHORT],
  ['long', LONG],
] as const) {
  const ours = await inspectText({ modelDir, text, json: true, backend: 'cpu' });
  const r = spawnSync(python, [reference, '--model', modelDir, '--text', text], { encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(`inspect-parity: the reference failed (${python} ${reference}): ${r.stderr.trim().split('\n').at(-1)}`);
    process.exit(2);
  }
  const ref = JSON.parse(r.stdout) as { inputIds: number[]; cls: number[]; mean: number[] };
  const idsEqual = JSON.stringify(ref.inputIds) === JSON.stringify(ours.inputIds);
  const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
  const cls = maxDiff(ours.cls, ref.cls);
  const mean = maxDiff(ours.meanPooled, ref.mean);
  const ok = idsEqual && cls <= TOLERANCE;
  failed ||= !ok;
  console.log(
    `${name}: ${ours.inputIds.length} tokens, ids ${idsEqual ? 'equal' : 'DIFFER'}, max |CLS diff| ${cls.toExponential(2)}, ` +
      `max |mean diff| ${mean.toExponential(2)} → ${ok ? 'ok' : 'FAIL'}`,
  );
}
process.exit(failed ? 1 : 0);
