// Entry of `npm run simulate:adapt`: issue 24's two-phase recipe (adapt.ts). Its own flags (--adaptation, --seeds,
// --mlm-*) are taken out of argv; the rest are `npm run simulate`'s flags for phase 2 (parseSimArgs). Progress lines on
// stderr; the study folder gets cells/, metrics.json, summary.md and accuracy.png/.svg. Exit codes: 0 ok, 1 error, 2 usage.

import { parseCommandLine, usageErrorText, USAGE_EXIT_CODE } from '@fedlora/shared/node/command-line.ts';
import { describeError, FedloraError, isFedloraError } from '@fedlora/shared/errors.ts';
import { LORA_TARGETS, validateLoraConfig, type LoraTarget } from '@fedlora/shared/lora/config.ts';
import { ADAPTATIONS, adaptSummaryMarkdown, runAdaptStudy, type Adaptation, type AdaptOptions } from './adapt';
import { parseSimArgs, simHelp } from './options';
import { defaultRunDir } from './report';

export const adaptHelp = (): string => `npm run simulate:adapt -- [adaptation options] [npm run simulate options]
  Issue 24's two-phase recipe. Phase 1 adapts the base to the sites' unlabelled text with the masked-LM objective:
  federated (FedAvg of LoRA deltas from the product's masked-LM round, mlmLocalRound, on each site's share of the
  training split's text; the sites sampled per round as in classification) or centralized (the same total number of
  steps on the pooled training text: the upper bound), then merges the adapter into the base (W + (alpha/r)·B·A).
  Phase 2 runs the classification federation of \`npm run simulate\` (its flags below; --strategy arms only, no
  classification baselines) on the merged base, or on the shipped base for "none" (same budget). Only the training
  split's text is adapted on; the held-out MLM loss is measured on the held-out split's text, masks fixed once.

  --adaptation LIST (${ADAPTATIONS.join(',')})   arms to run
  --seeds LIST (0,1,2)  each seed is its own partition, sampling and initialisation (replaces --seed)
  --mlm-rounds N (5)    federated masked-LM rounds      --mlm-steps N (6) AdamW steps per sampled site and round
  --mlm-batch-size N (8)   --mlm-lr X (0.001)   --mlm-max-length N (64) tokens per packed sequence
  --mlm-rank N (8)  --mlm-lora-alpha X (16)  --mlm-targets LIST (every linear layer: ${LORA_TARGETS.join(',')})
  --mlm-head-transform  train, average and merge the MLM head's transform too
  --mlm-heldout-docs N (100)  held-out documents the MLM loss is measured on (a fixed sample of the held-out split)
  --out DIR             the study folder (default runs/<timestamp>-<dataset>-adapt). Finished (seed, arm) cells are
                        kept in DIR/cells and skipped on a rerun, so several processes may share one folder, e.g. one
                        per --adaptation; each rewrites the report from every cell there when it ends
  --summarize           only rewrite the report from DIR's cells

 phase 2 (classification) options, as npm run simulate:
${simHelp().split('\n').slice(1).join('\n')}`;

/** The flags of this command, with whether they take a value; everything else goes to parseSimArgs. */
const OWN_FLAGS: Record<string, boolean> = {
  adaptation: true, seeds: true, 'mlm-rounds': true, 'mlm-steps': true, 'mlm-batch-size': true, 'mlm-lr': true,
  'mlm-max-length': true, 'mlm-rank': true, 'mlm-lora-alpha': true, 'mlm-targets': true, 'mlm-head-transform': false,
  'mlm-heldout-docs': true, summarize: false,
};

const bad = (flag: string, why: string, got: unknown) => new FedloraError('CONFIG_INVALID', `--${flag} ${why}, got "${String(got)}"`);

function int(v: unknown, flag: string, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw bad(flag, `must be an integer >= ${min}`, v);
  return n;
}

export function parseAdaptArgs(argv: string[]): { options: AdaptOptions; summarize: boolean } | 'help' {
  const own: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].startsWith('--') ? argv[i].slice(2).split('=')[0] : '';
    if (name in OWN_FLAGS) {
      own.push(argv[i]);
      if (OWN_FLAGS[name] && !argv[i].includes('=') && i + 1 < argv.length) own.push(argv[++i]);
    } else rest.push(argv[i]);
  }
  const s = { type: 'string' } as const;
  const b = { type: 'boolean' } as const;
  const spec = Object.fromEntries(Object.entries(OWN_FLAGS).map(([k, v]) => [k, v ? s : b]));
  const f = parseCommandLine(own, spec).values as Record<string, string | boolean | undefined>;
  if (rest.includes('--help')) return 'help';
  for (const flag of ['--seed', '--arms', '--no-baselines'])
    if (rest.some((a) => a === flag || a.startsWith(`${flag}=`)))
      throw bad(flag.slice(2), flag === '--seed' ? 'is replaced by --seeds here' : 'does not apply: the arms are --adaptation', flag);
  const sim = parseSimArgs(rest);
  if (sim === 'help') return 'help';
  const adaptations = String(f.adaptation ?? ADAPTATIONS.join(',')).split(',').map((x) => x.trim());
  for (const a of adaptations) if (!(ADAPTATIONS as readonly string[]).includes(a)) throw bad('adaptation', `must be a comma list of ${ADAPTATIONS.join(', ')}`, a);
  if (new Set(adaptations).size !== adaptations.length) throw bad('adaptation', 'lists an arm twice', f.adaptation);
  const seeds = String(f.seeds ?? '0,1,2').split(',').map((x) => int(x.trim(), 'seeds', 0, 0));
  if (new Set(seeds).size !== seeds.length) throw bad('seeds', 'lists a seed twice', f.seeds);
  const targets = f['mlm-targets'] === undefined ? [...LORA_TARGETS] : String(f['mlm-targets']).split(',').map((x) => x.trim());
  for (const t of targets)
    if (!(LORA_TARGETS as readonly string[]).includes(t)) throw bad('mlm-targets', `must be a comma list of ${LORA_TARGETS.join(', ')}`, t);
  const lr = Number(f['mlm-lr'] ?? 1e-3);
  if (!Number.isFinite(lr) || lr <= 0) throw bad('mlm-lr', 'must be a positive number', f['mlm-lr']);
  const alpha = Number(f['mlm-lora-alpha'] ?? 16);
  if (!Number.isFinite(alpha) || alpha <= 0) throw bad('mlm-lora-alpha', 'must be a positive number', f['mlm-lora-alpha']);
  return {
    summarize: Boolean(f.summarize),
    options: {
      sim,
      adaptations: adaptations as Adaptation[],
      seeds,
      mlmHeldoutDocs: int(f['mlm-heldout-docs'], 'mlm-heldout-docs', 100),
      mlm: {
        rounds: int(f['mlm-rounds'], 'mlm-rounds', 5),
        steps: int(f['mlm-steps'], 'mlm-steps', 6),
        batchSize: int(f['mlm-batch-size'], 'mlm-batch-size', 8),
        learningRate: lr,
        maxLength: int(f['mlm-max-length'], 'mlm-max-length', 64, 3),
        lora: validateLoraConfig({ r: int(f['mlm-rank'], 'mlm-rank', 8), alpha, dropout: 0, targetModules: targets as LoraTarget[], layers: null }),
        headTransform: Boolean(f['mlm-head-transform']),
      },
    },
  };
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseAdaptArgs(argv);
  } catch (err) {
    process.stderr.write(usageErrorText('simulate:adapt', err, adaptHelp()) + '\n');
    return USAGE_EXIT_CODE;
  }
  if (parsed === 'help') {
    process.stdout.write(adaptHelp() + '\n');
    return 0;
  }
  const o = parsed.options;
  const command = `npm run simulate:adapt -- ${argv.join(' ')}`.trim();
  const dir = o.sim.out ?? `${defaultRunDir(o.sim)}-adapt`;
  const quiet = o.sim.quiet;
  const t0 = performance.now();
  const stamp = () => `${((performance.now() - t0) / 1000).toFixed(0).padStart(5)} s`;
  const cells = await runAdaptStudy(parsed.summarize ? { ...o, seeds: [], adaptations: [] } : o, dir, command, {
    onEvent: (e) => {
      if (quiet) return;
      if (e.kind === 'log') process.stderr.write(`${stamp()} ${e.line}\n`);
      else if (e.kind === 'arm-step')
        process.stderr.write(`${stamp()} classification round ${e.done}: ${Object.entries(e.fields).map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
      else if (e.kind === 'cell-done')
        process.stderr.write(
          `${stamp()} [seed ${e.cell.seed} ${e.cell.adaptation}] done: accuracy ${(100 * e.cell.accuracy).toFixed(1)} %, macro-F1 ${(100 * e.cell.macroF1).toFixed(1)} %\n`,
        );
    },
  });
  if (o.sim.json) process.stdout.write(JSON.stringify({ dir, cells: cells.length }) + '\n');
  else process.stdout.write(adaptSummaryMarkdown(cells, command, o) + `\nstudy folder: ${dir}\n`);
  return 0;
}

// run only as the entry point (tests import parseAdaptArgs)
if (process.argv[1] && /adapt-main\.ts$/.test(process.argv[1]))
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`simulate:adapt: ${describeError(err)}\n`);
      process.exit(isFedloraError(err, 'CONFIG_INVALID') ? 2 : 1);
    },
  );
