// Raw argv → typed options for the site CLI, on node:util parseArgs; errors name the flag and say what is expected.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { FedloraError } from '@fedlora/shared/errors.ts';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export function parseFlags(argv: string[], options: OptionSpec): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false })
      .values as Record<string, string | boolean | undefined>;
  } catch (err) {
    throw new FedloraError('CONFIG_INVALID', (err as Error).message, { cause: err });
  }
}

export function intFlag(v: string | boolean | undefined, name: string, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new FedloraError('CONFIG_INVALID', `--${name} must be an integer ≥ ${min}, got "${String(v)}"`);
  return n;
}

export function numFlag(v: string | boolean | undefined, name: string, fallback: number, min = 0): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new FedloraError('CONFIG_INVALID', `--${name} must be a number ≥ ${min}, got "${String(v)}"`);
  return n;
}

export function strFlag(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
