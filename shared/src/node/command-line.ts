// The command line of every fedlora entry point (npm start, bench, simulate, simulate:grid, make-site-data,
// fedlora-coordinator, fedlora-site): strict node:util parseArgs, and one way to report a bad command line. That
// report is one line naming the program and the problem, then the usage, with exit status 2. A mistyped flag then
// never ends in a stack trace, and never in a long run that ignored it. Node only (process, node:util).

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { describeError, FedloraError } from '../errors';

export type FlagSpec = NonNullable<ParseArgsConfig['options']>;
type WithHelp<T extends FlagSpec> = T & { help: { type: 'boolean'; short: 'h' } };
/** The flag values node's parseArgs types for these flags (string, boolean, string[] by spec; defaults applied). */
export type FlagValues<T extends FlagSpec> = ReturnType<typeof parseArgs<{ options: WithHelp<T>; strict: true }>>['values'];

export interface CommandLine<T extends FlagSpec> {
  values: FlagValues<T>;
  positionals: string[];
}

/** Exit status of a command line that could not be parsed (the getopt convention). */
export const USAGE_EXIT_CODE = 2;

/**
 * argv → flag values (and positionals where the command takes them). Every command accepts --help / -h. An unknown
 * flag, a flag without its value or an unexpected positional throws CONFIG_INVALID with node's one-line message,
 * which names the flag.
 */
export function parseCommandLine<const T extends FlagSpec>(
  argv: readonly string[],
  flags: T,
  opts: { positionals?: boolean } = {},
): CommandLine<T> {
  try {
    const r = parseArgs({
      args: [...argv],
      options: { ...flags, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: opts.positionals ?? false,
    });
    return { values: r.values as FlagValues<T>, positionals: r.positionals };
  } catch (err) {
    // With positionals allowed, node adds a hint about a `--` separator, which is noise when a flag was mistyped.
    const message = (err as Error).message.replace(/\. To specify a positional argument starting with a '-'.*$/, '');
    throw new FedloraError('CONFIG_INVALID', message, { cause: err });
  }
}

/** The report of a bad command line: `<program>: <CODE>: <problem>`, a blank line, then the usage. */
export function usageErrorText(program: string, err: unknown, usage: string): string {
  return `${program}: ${describeError(err)}\n\n${usage}`;
}

/** Prints the report of a bad command line on stderr and exits with USAGE_EXIT_CODE. */
export function exitWithUsageError(program: string, err: unknown, usage: string): never {
  process.stderr.write(usageErrorText(program, err, usage) + '\n');
  process.exit(USAGE_EXIT_CODE);
}

/**
 * For scripts that parse at their top level: the parsed command line; or, on --help, the usage on stdout and exit 0;
 * or, on a parse error, the report of a bad command line and exit 2.
 */
export function parseCommandLineOrExit<const T extends FlagSpec>(
  program: string,
  usage: string,
  argv: readonly string[],
  flags: T,
  opts: { positionals?: boolean } = {},
): CommandLine<T> {
  let parsed: CommandLine<T>;
  try {
    parsed = parseCommandLine(argv, flags, opts);
  } catch (err) {
    exitWithUsageError(program, err, usage);
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(usage + '\n');
    process.exit(0);
  }
  return parsed;
}
