// Raw argv → typed options for the site CLI, on the shared strict parser (shared/node/command-line); errors name the flag
// and say what is expected.

import { parseCommandLine, type FlagSpec } from '@fedlora/shared/node/command-line.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';

/** Flag values as the command parsers read them (none of the site's flags is `multiple`). */
export function parseFlags(argv: string[], options: FlagSpec): Record<string, string | boolean | undefined> {
  return parseCommandLine(argv, options).values as Record<string, string | boolean | undefined>;
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
