// Zod at fedlora's config and admin edges: a failed parse as one sentence that names the field (after PEFT's config
// checks: "minSites must be an integer in [1, 10000]"), and an options object described from its schema (type,
// default, bounds, description, command-line flag) for --help, flags, the settings API and the console's form.
// Pure (no Node, no DOM). Peer messages use protocol/schemas.ts parseWith instead, which never names a peer's keys.

import { z } from 'zod';
import { FedloraError, type FedloraErrorCode } from './errors';

type Issue = z.core.$ZodRawIssue;

/** What a schema's own messages leave unsaid, worded as the end of "<field> …". */
function defaultText(iss: Issue): string | undefined {
  const cmp = (inclusive: boolean | undefined, strict: string, loose: string) => (inclusive ? loose : strict);
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'is required';
      return (
        {
          int: 'must be an integer',
          number: 'must be a finite number',
          string: 'must be a string',
          boolean: 'must be true or false',
          object: 'must be an object',
          record: 'must be an object',
          array: 'must be a list',
          null: 'must be null',
        }[iss.expected as string] ?? `must be of type ${iss.expected}`
      );
    case 'too_small':
      if (iss.origin === 'string') return `must be at least ${iss.minimum} characters`;
      if (iss.origin === 'array') return `must have at least ${iss.minimum} items`;
      return `must be ${cmp(iss.inclusive, '>', '≥')} ${iss.minimum}`;
    case 'too_big':
      if (iss.origin === 'string') return `must be at most ${iss.maximum} characters`;
      if (iss.origin === 'array') return `must have at most ${iss.maximum} items`;
      return `must be ${cmp(iss.inclusive, '<', '≤')} ${iss.maximum}`;
    case 'invalid_value':
      return `must be ${iss.values.length === 1 ? JSON.stringify(iss.values[0]) : `one of ${iss.values.join(', ')}`}`;
    case 'invalid_format':
      return 'has the wrong format';
    default:
      return undefined;
  }
}

/** Per-parse error map (`schema.safeParse(x, fieldErrors)`): a schema's own message wins, this words the rest. */
export const fieldErrors = { error: (iss: Issue) => defaultText(iss) };

export interface FieldParseOptions {
  /** the error code (default CONFIG_INVALID) */
  code?: FedloraErrorCode;
  /** named before every path, e.g. "strategyOptions.fedprox" */
  prefix?: string;
  /** what to call the whole input when it is wrong as a whole (default: the prefix), e.g. "settings must be an object" */
  root?: string;
  /** how an unknown key is refused, e.g. (key) => `${key} is not a setting (known: …)`; default "is not allowed here" */
  unknown?: (key: string, path: string) => string;
}

const pathOf = (prefix: string | undefined, path: readonly PropertyKey[]) =>
  [...(prefix ? [prefix] : []), ...path.map(String)].join('.');

/** The first few issues of a failed parse as sentences that each start with the field's path. */
export function fieldProblems(error: z.ZodError, opts: FieldParseOptions = {}): string[] {
  return error.issues.slice(0, 3).flatMap((iss) => {
    const at = pathOf(opts.prefix, iss.path);
    if (iss.code === 'unrecognized_keys')
      return iss.keys.map((k) => {
        const full = at ? `${at}.${k}` : k;
        return opts.unknown ? opts.unknown(k, full) : `${full} is not allowed here`;
      });
    const field = at || opts.root;
    return [field ? `${field} ${iss.message}` : iss.message];
  });
}

/** Parses `input` or throws a FedloraError (CONFIG_INVALID by default) whose message names the offending field. */
export function parseFields<S extends z.ZodType>(schema: S, input: unknown, opts: FieldParseOptions = {}): z.output<S> {
  const r = schema.safeParse(input, fieldErrors);
  if (r.success) return r.data;
  throw new FedloraError(opts.code ?? 'CONFIG_INVALID', fieldProblems(r.error, opts).join('; '), { cause: r.error });
}

/** One option of an options object, as its schema declares it (JSON Schema's words for the bounds). */
export interface OptionField {
  key: string;
  /** its command-line flag without the dashes: the schema's meta `flag`, or the key in kebab-case */
  flag: string;
  description: string;
  type: 'number' | 'integer' | 'boolean' | 'string';
  default?: number | boolean | string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  /** the allowed values of a string option */
  enum?: string[];
  /** the bounds in words: "≥ 0", "in [0, 1)" (boundsText) */
  bounds: string;
}

export const kebabCase = (key: string) => key.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

/** The fields of an options object, described from its schema (z.toJSONSchema, plus the `flag` meta). */
export function optionFields(schema: z.ZodObject): OptionField[] {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as {
    properties?: Record<string, Record<string, unknown>>;
  };
  return Object.entries(json.properties ?? {}).map(([key, p]) => {
    const type = (Array.isArray(p.enum) ? 'string' : p.type) as OptionField['type'];
    const f: OptionField = {
      key,
      flag: typeof p.flag === 'string' ? p.flag : kebabCase(key),
      description: typeof p.description === 'string' ? p.description : '',
      type,
      bounds: '',
    };
    for (const k of ['default', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'enum'] as const)
      if (p[k] !== undefined && !(k === 'maximum' && p[k] === Number.MAX_SAFE_INTEGER))
        (f as unknown as Record<string, unknown>)[k] = p[k];
    f.bounds = boundsText(f);
    return f;
  });
}

/** "≥ 0", "> 0", "in [0, 1)", "one of a, b" (empty when unbounded). */
export function boundsText(f: OptionField): string {
  if (f.enum) return `one of ${f.enum.join(', ')}`;
  const lo = f.exclusiveMinimum ?? f.minimum;
  const hi = f.exclusiveMaximum ?? f.maximum;
  const lb = f.exclusiveMinimum !== undefined ? '(' : '[';
  const rb = f.exclusiveMaximum !== undefined ? ')' : ']';
  const int = f.type === 'integer' ? 'an integer ' : '';
  if (lo !== undefined && hi !== undefined) return `${int}in ${lb}${lo}, ${hi}${rb}`;
  if (lo !== undefined) return `${int}${lb === '(' ? '>' : '≥'} ${lo}`;
  if (hi !== undefined) return `${int}${rb === ')' ? '<' : '≤'} ${hi}`;
  return int.trim();
}

/**
 * A flag's text as the option's type (the schema checks the value afterwards): numbers stay NaN when they are not
 * numbers, so that the schema's message says what is expected.
 */
export function flagValue(f: OptionField, text: string): unknown {
  if (f.type === 'number' || f.type === 'integer') return text.trim() === '' ? NaN : Number(text);
  if (f.type === 'boolean') return text === 'true' ? true : text === 'false' ? false : text;
  return text;
}
