// The strategy registry (after tfjs's kernel_registry and PEFT's register_peft_method): a strategy is one file that
// exports its definition (name, one-line summary, its own options as a zod schema with defaults, bounds and
// descriptions, and a constructor) plus one registerStrategy line in index.ts. Whatever lists strategies or their
// options reads them from here: the coordinator's flags, help and settings, the console's form, the simulator's flags.
// Import it through index.ts, which registers the built-in strategies.

import { z } from 'zod';
import { FedloraError } from '../errors';
import { flagValue, optionFields, parseFields, type OptionField } from '../schema-fields';
import { CommonOptionsSchema, type ResolvedCommonOptions, type Strategy } from './strategy';

/** A strategy's name: what --strategy, PUT /api/settings {strategy} and the version records say. */
export type StrategyName = string;

/** A strategy's own options as they are stored and sent: plain JSON values keyed by option. */
export type StrategyOptionValues = Record<string, unknown>;

export interface StrategyDefinition<S extends z.ZodObject = z.ZodObject> {
  readonly name: StrategyName;
  /** one line for --help and the console */
  readonly summary: string;
  /**
   * The strategy's own options (not minResults/acceptFailures, which the coordinator sets). Every field has a default
   * (the strategy runs with `{}`), bounds and a description; meta `flag` names its command-line flag (default: the
   * key in kebab-case). Strategies whose options mean the same share a flag (FedAdam's and FedAvgM's eta: --server-lr).
   */
  readonly options: S;
  create(options: z.output<S> & ResolvedCommonOptions): Strategy;
}

const NAME = /^[a-z][a-z0-9-]{0,31}$/;

/** Declares a strategy: checks the name and that its options schema gives a complete default. */
export function defineStrategy<S extends z.ZodObject>(def: StrategyDefinition<S>): StrategyDefinition<S> {
  if (!NAME.test(def.name))
    throw new FedloraError('CONFIG_INVALID', `strategy name "${def.name}" must match ${NAME}`);
  const common = Object.keys(CommonOptionsSchema.shape).filter((k) => Object.hasOwn(def.options.shape, k));
  if (common.length)
    throw new FedloraError('CONFIG_INVALID', `${def.name}: ${common.join(', ')} is set by the coordinator, not an option`);
  parseFields(def.options, {}, { prefix: `${def.name} default options` });
  return def;
}

const REGISTRY = new Map<StrategyName, StrategyDefinition>();

/** Adds a strategy; a second registration of a name is refused (tfjs warns; a silent replacement hides a typo). */
export function registerStrategy<S extends z.ZodObject>(def: StrategyDefinition<S>): void {
  if (REGISTRY.has(def.name))
    throw new FedloraError('CONFIG_INVALID', `strategy ${def.name} is already registered`);
  REGISTRY.set(def.name, defineStrategy(def) as unknown as StrategyDefinition);
}

/** Registered strategy names, in registration order. */
export function strategyNames(): StrategyName[] {
  return [...REGISTRY.keys()];
}

export function isStrategyName(s: unknown): s is StrategyName {
  return typeof s === 'string' && REGISTRY.has(s);
}

/** The definition of a registered strategy; CONFIG_INVALID naming the known ones otherwise. */
export function strategyDefinition(name: unknown): StrategyDefinition {
  const def = typeof name === 'string' ? REGISTRY.get(name) : undefined;
  if (!def)
    throw new FedloraError(
      'CONFIG_INVALID',
      `unknown strategy ${JSON.stringify(name)} (known: ${strategyNames().join(', ')})`,
    );
  return def;
}

/** A strategy's own options with its defaults filled in; CONFIG_INVALID naming the option otherwise. */
export function parseStrategyOptions(name: StrategyName, input: unknown = {}): StrategyOptionValues {
  const def = strategyDefinition(name);
  return parseFields(def.options.strict(), input, {
    prefix: name,
    unknown: (_k, at) => `${at} is not an option of ${name} (known: ${Object.keys(def.options.shape).join(', ') || 'none'})`,
  });
}

/** Every registered strategy's options with their defaults: what the coordinator's settings start from. */
export function defaultStrategyOptions(): Record<StrategyName, StrategyOptionValues> {
  return Object.fromEntries(strategyNames().map((n) => [n, parseStrategyOptions(n)]));
}

/**
 * Builds a registered strategy from its own options and the common ones (minResults, acceptFailures); an unknown
 * name or a bad or unknown option is CONFIG_INVALID naming it (startup stops).
 */
export function createStrategy(name: StrategyName, options: StrategyOptionValues = {}): Strategy {
  const def = strategyDefinition(name);
  const schema = CommonOptionsSchema.extend(def.options.shape).strict();
  const o = parseFields(schema, options ?? {}, {
    prefix: name,
    unknown: (_k, at) => `${at} is not an option of ${name} (known: ${Object.keys(schema.shape).join(', ')})`,
  });
  return def.create(o as z.output<typeof def.options> & ResolvedCommonOptions);
}

/** A strategy and its options as the console's form and GET /api/strategies show them. */
export interface StrategyDescription {
  name: StrategyName;
  summary: string;
  options: OptionField[];
}

export function describeStrategies(): StrategyDescription[] {
  return strategyNames().map((name) => {
    const def = REGISTRY.get(name) as StrategyDefinition;
    return { name, summary: def.summary, options: optionFields(def.options) };
  });
}

/** A command-line flag some strategies' options share, and which option of which strategy each value goes to. */
export interface StrategyFlag {
  flag: string;
  type: OptionField['type'];
  targets: { strategy: StrategyName; field: OptionField }[];
}

/** Every strategy option's flag, with the options it sets (in registration order). */
export function strategyFlags(): StrategyFlag[] {
  const flags = new Map<string, StrategyFlag>();
  for (const s of describeStrategies())
    for (const field of s.options) {
      const f = flags.get(field.flag) ?? { flag: field.flag, type: field.type, targets: [] };
      if (f.type !== field.type)
        throw new FedloraError(
          'CONFIG_INVALID',
          `--${field.flag} is a ${f.type} option of ${f.targets[0].strategy} but a ${field.type} one of ${s.name}`,
        );
      f.targets.push({ strategy: s.name, field });
      flags.set(field.flag, f);
    }
  return [...flags.values()];
}

/**
 * Help lines for the strategy option flags, one per option ("  --mu X   fedprox proximalMu: <description>, ≥ 0
 * (0.01)"); a flag that several strategies share continues on the next lines, indented to `width`.
 */
export function strategyFlagHelp(width = 25): string[] {
  return strategyFlags().flatMap((f) => {
    const head = `  --${f.flag} ${f.type === 'boolean' ? 'true|false' : 'X'}`;
    return f.targets.map(({ strategy, field }, i) => {
      const bounds = field.bounds ? `, ${field.bounds}` : '';
      const what = `${strategy} ${field.key}: ${field.description}${bounds} (${String(field.default)})`;
      const lead = i === 0 ? head : '';
      return `${lead.padEnd(width)}${lead.length >= width ? ' ' : ''}${what}`;
    });
  });
}

/**
 * node:util parseArgs specs of the strategy option flags, to add to a command's own; a strategy flag that one of the
 * command's flags already takes is refused (it would silently set both).
 */
export function strategyFlagSpec(taken: Readonly<Record<string, unknown>>): Record<string, { type: 'string' }> {
  const spec: Record<string, { type: 'string' }> = {};
  for (const f of strategyFlags()) {
    if (Object.hasOwn(taken, f.flag))
      throw new FedloraError(
        'CONFIG_INVALID',
        `--${f.flag} (an option of ${f.targets.map((t) => t.strategy).join(', ')}) is already a flag of this command`,
      );
    spec[f.flag] = { type: 'string' };
  }
  return spec;
}

/**
 * The strategy options given as flags (parseArgs values), by strategy: each flag's value goes to every strategy that
 * has that option, checked by its schema; CONFIG_INVALID naming the flag otherwise ("--server-momentum must be < 1").
 */
export function strategyOptionsFromFlags(
  values: Readonly<Record<string, unknown>>,
): Record<StrategyName, StrategyOptionValues> {
  const out: Record<StrategyName, StrategyOptionValues> = {};
  for (const f of strategyFlags()) {
    const text = values[f.flag];
    if (typeof text !== 'string') continue;
    for (const { strategy, field } of f.targets) {
      const schema = strategyDefinition(strategy).options.shape[field.key] as z.ZodType;
      (out[strategy] ??= {})[field.key] = parseFields(schema, flagValue(field, text), { root: `--${f.flag}` });
    }
  }
  return out;
}
