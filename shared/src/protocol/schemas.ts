// Primitive wire schemas (zod) shared by every message: identifiers, tensor names, binary fields, and the
// one parse step that turns untrusted `unknown` into a typed value or a FedloraError.

import { z } from 'zod';
import { FedloraError, type FedloraErrorCode } from '../errors';
import { LIMITS } from './limits';

/** Site, round and version ids: printable, no spaces, cannot start with a separator. */
export const IdSchema = z
  .string()
  .max(LIMITS.maxIdLength)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/,
    'must be letters, digits and _ . : - (starting with a letter or digit)',
  );

/** Names that must never become object keys read from untrusted input. */
const RESERVED_KEYS = new Set(['__proto__', '__proto_', 'constructor', 'prototype']);

/** Tensor and metric names: dotted identifiers (PEFT/HF layer paths). */
export const NameSchema = z
  .string()
  .min(1)
  .max(LIMITS.maxNameLength)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$/, 'must be letters, digits and _ . - /')
  .refine((s) => !RESERVED_KEYS.has(s), 'is a reserved name');

/** Lower-case hex SHA-256. */
export const Sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits');

export const FiniteNumberSchema = z.number().refine(Number.isFinite, 'must be finite');

/**
 * A binary field. socket.io hands Node a Buffer (a Uint8Array) and a browser an ArrayBuffer; both parse to
 * Uint8Array. `length` pins an exact size (keys, nonces), `max` bounds it.
 */
export function bytesSchema(opts: { length?: number; max?: number } = {}) {
  return z
    .custom<Uint8Array | ArrayBuffer>(
      (x) => x instanceof Uint8Array || x instanceof ArrayBuffer,
      'must be binary',
    )
    .transform((x) => (x instanceof Uint8Array ? x : new Uint8Array(x)))
    .refine((b) => opts.length === undefined || b.length === opts.length, `must be ${opts.length} bytes`)
    .refine((b) => opts.max === undefined || b.length <= opts.max, `must be at most ${opts.max} bytes`);
}

/**
 * Parses untrusted input. The error names the failing paths and zod's reason but never echoes the
 * input's values (a peer's bytes do not end up in logs or in another peer's error message).
 */
export function parseWith<S extends z.ZodType>(
  schema: S,
  input: unknown,
  what: string,
  code: FedloraErrorCode = 'BAD_MESSAGE',
): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.map(safePathPart).join('.') : '(root)'}: ${i.message}`)
    .join('; ');
  throw new FedloraError(code, `${what}: ${issues}`, { cause: r.error });
}

/** Keys in a path may come from the peer: keep only short, plain ones. */
function safePathPart(p: PropertyKey): string {
  const s = String(p);
  return /^[A-Za-z0-9_.\-/]{1,64}$/.test(s) ? s : '?';
}
