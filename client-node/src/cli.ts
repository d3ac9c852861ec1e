// fedlora-site: the site agent's command line. One file per command under commands/, each with parse() and run().

import { usageErrorText, USAGE_EXIT_CODE } from '@fedlora/shared/node/command-line.ts';
import { useNativeEd25519 } from '@fedlora/shared/node/native-ed25519.ts';
import { describeError, FedloraError, isFedloraError } from '@fedlora/shared/errors.ts';
import * as trainLocal from './commands/train-local';
import * as inspect from './commands/inspect';
import * as pretrain from './commands/pretrain';
import * as merge from './commands/merge';
import * as join from './commands/join';
import * as runAgent from './commands/run';
import * as predict from './commands/predict';
import * as serve from './commands/serve';

interface Command {
  help: string;
  parse(argv: string[]): unknown;
  run(opts: never): Promise<number>;
}

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> | Command }> = {
  'train-local': { summary: 'train an adapter on this site alone and report held-out accuracy', load: () => trainLocal as unknown as Command },
  pretrain: { summary: 'continue masked-LM pretraining of the model on this site\'s unlabelled text', load: () => pretrain as unknown as Command },
  merge: { summary: 'merge a finished adapter into its base model, writing a new base directory with lineage', load: () => merge as unknown as Command },
  inspect: { summary: 'tokenize a text and print the model\'s [CLS] and mean-pooled vectors', load: () => inspect as unknown as Command },
  join: { summary: 'enroll this site with a coordinator (one-time token) and check its data', load: () => join as unknown as Command },
  run: { summary: 'take part in federated rounds until stopped (reconnects with backoff)', load: () => runAgent as unknown as Command },
  predict: { summary: 'classify a text or a CSV/JSONL file with the global adapter or a saved one', load: () => predict as unknown as Command },
  serve: { summary: 'serve predictions over HTTP (POST /predict), hot-swapping to each new current version', load: () => serve as unknown as Command },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return `fedlora-site <command> [options]   (fedlora-site <command> --help for its options)\n\ncommands:\n${rows.join('\n')}`;
}

export async function main(argv: string[]): Promise<number> {
  // OpenSSL's Ed25519 for the challenge and upload signatures (shared/src/crypto/ed25519.ts)
  useNativeEd25519();
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!entry) {
    const why = name.startsWith('-') ? `Unknown option '${name}' (options come after the command)` : `unknown command "${name}"`;
    console.error(usageErrorText('fedlora-site', new FedloraError('CONFIG_INVALID', why), usage()));
    return USAGE_EXIT_CODE;
  }
  const cmd = await entry.load();
  let parsed = false;
  try {
    const opts = cmd.parse(rest);
    parsed = true;
    if (opts === 'help') {
      console.log(cmd.help);
      return 0;
    }
    return await cmd.run(opts as never);
  } catch (err) {
    // a bad command line (unknown flag, bad value): one line, then this command's usage
    if (!parsed && isFedloraError(err, 'CONFIG_INVALID')) {
      console.error(usageErrorText(`fedlora-site ${name}`, err, cmd.help));
      return USAGE_EXIT_CODE;
    }
    console.error(`fedlora-site ${name}: ${describeError(err)}`);
    if (!isFedloraError(err) && err instanceof Error && err.stack) console.error(err.stack);
    return isFedloraError(err, 'CONFIG_INVALID') ? 2 : 1;
  }
}
