// fedlora-privacy: the RDP accountant (shared/src/privacy/) on the command line, so an operator can size DP-FedAvg
// before a federation starts. `epsilon` answers "what does this noise cost over T rounds?", `noise` answers "how much
// noise does this budget need?". Each prints one readable line, or with --json one JSON object for scripts.

import { parseCommandLine, usageErrorText, USAGE_EXIT_CODE, type FlagSpec } from '@fedlora/shared/node/command-line.ts';
import { describeError, FedloraError, isFedloraError } from '@fedlora/shared/errors.ts';
import {
  noiseMultiplierFor,
  ORDER_GRID_NAMES,
  privacySpent,
  type OrderGridName,
} from '@fedlora/shared/privacy/index.ts';

const PROGRAM = 'fedlora-privacy';

/** Where the command writes: stdout and stderr in the bin, captured lines in tests. */
export interface CommandOutput {
  out(line: string): void;
  err(line: string): void;
}

const CONSOLE_OUTPUT: CommandOutput = { out: (l) => console.log(l), err: (l) => console.error(l) };

const COMMON_FLAGS = {
  'sample-rate': { type: 'string' },
  rounds: { type: 'string' },
  delta: { type: 'string' },
  orders: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies FlagSpec;

const COMMON_HELP = `  --sample-rate Q        chance that a site takes part in a round (sampled / enrolled sites), in (0, 1]
  --rounds T             number of rounds
  --delta D              the δ of (ε, δ)-DP, in (0, 1); at most 1 / enrolled sites is the usual choice
  --orders opacus|tf     the RDP orders to optimise over: Opacus's (default) or TF Privacy's
  --json                 print one JSON object instead of a sentence`;

const EPSILON_HELP = `${PROGRAM} epsilon --noise-multiplier Z --sample-rate Q --rounds T --delta D [--orders opacus|tf] [--json]

The ε that T rounds of DP-FedAvg with noise multiplier Z spend (RDP accountant, Balle et al. 2020 conversion).
With --json: {"epsilon": …, "order": …} (order: the RDP order at which the bound is tightest).

  --noise-multiplier Z   noise std over the clip norm, above 0
${COMMON_HELP}`;

const NOISE_HELP = `${PROGRAM} noise --target-epsilon E --sample-rate Q --rounds T --delta D [--orders opacus|tf] [--json]

The smallest noise multiplier whose ε after T rounds stays within E (bisection on the accountant).
With --json: {"noiseMultiplier": …}.

  --target-epsilon E     the privacy budget, above 0
${COMMON_HELP}`;

function usage(): string {
  return `${PROGRAM} <command> [options]   (${PROGRAM} <command> --help for its options)

commands:
  epsilon      the ε spent by T rounds with a given noise multiplier
  noise        the noise multiplier that keeps T rounds within a target ε`;
}

/** A flag's value as a finite number; CONFIG_INVALID naming the flag when it is missing or not a number. */
function numberFlag(value: string | undefined, flag: string): number {
  if (value === undefined) throw new FedloraError('CONFIG_INVALID', `--${flag} is required`);
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new FedloraError('CONFIG_INVALID', `--${flag} must be a number, got "${value}"`);
  return n;
}

function ordersFlag(value: string | undefined): OrderGridName {
  if (value === undefined) return 'opacus';
  if (!(ORDER_GRID_NAMES as string[]).includes(value))
    throw new FedloraError('CONFIG_INVALID', `--orders must be one of ${ORDER_GRID_NAMES.join(', ')}, got "${value}"`);
  return value as OrderGridName;
}

interface Subcommand {
  help: string;
  /** argv → a function that computes and prints, or 'help'; throws CONFIG_INVALID for a bad command line */
  parse(argv: string[]): ((o: CommandOutput) => void) | 'help';
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  epsilon: {
    help: EPSILON_HELP,
    parse(argv) {
      const { values: f } = parseCommandLine(argv, { ...COMMON_FLAGS, 'noise-multiplier': { type: 'string' } });
      if (f.help) return 'help';
      const p = {
        noiseMultiplier: numberFlag(f['noise-multiplier'], 'noise-multiplier'),
        sampleRate: numberFlag(f['sample-rate'], 'sample-rate'),
        rounds: numberFlag(f.rounds, 'rounds'),
        delta: numberFlag(f.delta, 'delta'),
        orders: ordersFlag(f.orders),
      };
      return (o) => {
        const { epsilon, order } = privacySpent(p);
        o.out(
          f.json
            ? JSON.stringify({ epsilon, order })
            : `ε = ${epsilon.toPrecision(8)} for δ = ${p.delta} after ${p.rounds} rounds at sample rate ${p.sampleRate} and noise multiplier ${p.noiseMultiplier} (RDP order ${order}, ${p.orders} orders)`,
        );
      };
    },
  },
  noise: {
    help: NOISE_HELP,
    parse(argv) {
      const { values: f } = parseCommandLine(argv, { ...COMMON_FLAGS, 'target-epsilon': { type: 'string' } });
      if (f.help) return 'help';
      const s = {
        targetEpsilon: numberFlag(f['target-epsilon'], 'target-epsilon'),
        sampleRate: numberFlag(f['sample-rate'], 'sample-rate'),
        rounds: numberFlag(f.rounds, 'rounds'),
        delta: numberFlag(f.delta, 'delta'),
        orders: ordersFlag(f.orders),
      };
      return (o) => {
        const noiseMultiplier = noiseMultiplierFor(s);
        o.out(
          f.json
            ? JSON.stringify({ noiseMultiplier })
            : `noise multiplier ${noiseMultiplier.toPrecision(6)} keeps ${s.rounds} rounds at sample rate ${s.sampleRate} within ε = ${s.targetEpsilon} for δ = ${s.delta} (${s.orders} orders)`,
        );
      };
    },
  },
};

/** Runs the command line; returns the exit status (0 done, 2 bad command line or parameters, 1 anything else). */
export function main(argv: readonly string[], output: CommandOutput = CONSOLE_OUTPUT): number {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    output.out(usage());
    return name ? 0 : USAGE_EXIT_CODE;
  }
  const sub = Object.hasOwn(SUBCOMMANDS, name) ? SUBCOMMANDS[name] : undefined;
  if (!sub) {
    const why = name.startsWith('-') ? `Unknown option '${name}' (options come after the command)` : `unknown command "${name}"`;
    output.err(usageErrorText(PROGRAM, new FedloraError('CONFIG_INVALID', why), usage()));
    return USAGE_EXIT_CODE;
  }
  let run: ((o: CommandOutput) => void) | 'help';
  try {
    run = sub.parse(rest);
  } catch (err) {
    output.err(usageErrorText(`${PROGRAM} ${name}`, err, sub.help));
    return isFedloraError(err, 'CONFIG_INVALID') ? USAGE_EXIT_CODE : 1;
  }
  if (run === 'help') {
    output.out(sub.help);
    return 0;
  }
  try {
    run(output);
    return 0;
  } catch (err) {
    // parameters that parse but are out of range (q > 1, δ ≥ 1, an unreachable target): one line, no usage
    output.err(`${PROGRAM} ${name}: ${describeError(err)}`);
    return isFedloraError(err, 'CONFIG_INVALID') ? USAGE_EXIT_CODE : 1;
  }
}
