// Entry of `npm run simulate`: parse flags, run the simulation with a progress bar per arm on stderr, write the run
// folder, print the summary table (and with --json, a JSON line last on stdout). Exit codes: 0 ok, 1 error, 2 usage.

import cliProgress from 'cli-progress';
import { usageErrorText, USAGE_EXIT_CODE } from '@fedlora/shared/node/command-line.ts';
import { describeError, isFedloraError } from '@fedlora/shared/errors.ts';
import { parseSimArgs, simHelp } from './options';
import { jsonSummary, runSimulation, type SimEvent } from './simulate';
import { defaultRunDir, summaryMarkdown, writeRun } from './report';

function progressHandler(quiet: boolean): (e: SimEvent) => void {
  if (quiet) return () => {};
  const tty = Boolean(process.stderr.isTTY);
  let bar: cliProgress.SingleBar | null = null;
  return (e) => {
    if (e.kind === 'log') {
      process.stderr.write(e.line + '\n');
    } else if (e.kind === 'arm-start') {
      if (tty) {
        bar = new cliProgress.SingleBar(
          { format: `${e.name.padEnd(12)} [{bar}] {value}/{total} | acc {acc} | train loss {loss} | {s} s | eta {eta_formatted}`, stream: process.stderr, hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
        bar.start(e.total, 0, { acc: '-', loss: '-', s: '-' });
      }
    } else if (e.kind === 'arm-step') {
      if (bar) bar.update(e.done, e.fields);
      else process.stderr.write(`${e.name} ${e.done} ${Object.entries(e.fields).map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
    } else {
      bar?.stop();
      bar = null;
    }
  };
}

async function main(argv: string[]): Promise<number> {
  let opts;
  try {
    opts = parseSimArgs(argv);
  } catch (err) {
    process.stderr.write(usageErrorText('simulate', err, simHelp()) + '\n');
    return USAGE_EXIT_CODE;
  }
  if (opts === 'help') {
    process.stdout.write(simHelp() + '\n');
    return 0;
  }
  const command = `npm run simulate -- ${argv.join(' ')}`.trim();
  const runDir = opts.out ?? defaultRunDir(opts);
  const res = await runSimulation(opts, { onEvent: progressHandler(opts.quiet) });
  // the results first, so that a failed bookkeeping check cannot cost the rounds it checks; its warnings come after
  // (stderr) and are in metrics.json, summary.md and the JSON line too. The JSON line stays the last line of stdout.
  writeRun(res, runDir, command);
  for (const w of res.warnings ?? []) process.stderr.write(`simulate: warning: ${w}\n`);
  if (!opts.json) process.stdout.write(summaryMarkdown(res, command) + `\nrun folder: ${runDir}\n`);
  else process.stdout.write(jsonSummary(res, runDir) + '\n');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`simulate: ${describeError(err)}\n`);
    process.exit(isFedloraError(err, 'CONFIG_INVALID') ? 2 : 1);
  },
);
