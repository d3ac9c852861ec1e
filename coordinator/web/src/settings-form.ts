// The round settings form: one field per round setting and stop rule, the strategy, and the selected strategy's own
// options as its schema declares them (GET /api/strategies). Sends only the fields that changed; main.ts saves.

import { h } from './dom';
import type { Settings, StrategyDescription } from './api';

type FieldKind = 'int' | 'num' | 'sites' | 'encoding' | 'bool' | 'int?' | 'num?' | 'text?';
type RoundField = Exclude<keyof Settings, 'strategy' | 'strategyOptions'>;
const FIELDS: { key: RoundField; label: string; kind: FieldKind; help: string }[] = [
  {
    key: 'sitesPerRound',
    label: 'Sites per round',
    kind: 'sites',
    help: 'fraction in (0, 1] such as 0.5 or 1.0, or a count ≥ 1',
  },
  { key: 'minSites', label: 'Minimum sites', kind: 'int', help: 'fewer updates: no new version' },
  { key: 'deadlineS', label: 'Deadline (s)', kind: 'num', help: 'from configure until uploads are refused' },
  {
    key: 'sampleWaitS',
    label: 'Sample wait (s)',
    kind: 'num',
    help: 'wait for other enrolled sites before sampling',
  },
  { key: 'localEpochs', label: 'Local epochs', kind: 'int', help: '' },
  { key: 'batchSize', label: 'Batch size', kind: 'int', help: '' },
  { key: 'learningRate', label: 'Learning rate', kind: 'num', help: '' },
  { key: 'maxSteps', label: 'Max steps', kind: 'int', help: 'local optimizer steps per round' },
  { key: 'maxLength', label: 'Max length', kind: 'int', help: 'tokens per example' },
  { key: 'encoding', label: 'Upload encoding', kind: 'encoding', help: '' },
  {
    key: 'secureAggregation',
    label: 'Secure aggregation',
    kind: 'bool',
    help: 'SecAgg+: the coordinator sees only the sum of each round (averaging strategies only; docs/PRIVACY.md)',
  },
  {
    key: 'secaggDegree',
    label: 'SecAgg degree',
    kind: 'int?',
    help: 'neighbours per site; empty = 2⌈log2 n⌉+1',
  },
  {
    key: 'secaggThreshold',
    label: 'SecAgg threshold',
    kind: 'int?',
    help: 'shares that rebuild a secret (k/2 < t ≤ k); lower survives more drops; empty = ⌈k/2⌉+1',
  },
  {
    key: 'dpClipNorm',
    label: 'DP clip norm',
    kind: 'num?',
    help: 'client-level DP: sites clip their delta to this L2 norm; empty = DP off',
  },
  {
    key: 'dpNoiseMultiplier',
    label: 'DP noise multiplier',
    kind: 'num?',
    help: 'noise std over the clip norm; empty = found from the target ε and the rounds rule',
  },
  {
    key: 'dpTargetEpsilon',
    label: 'DP target ε',
    kind: 'num?',
    help: 'no round starts that would spend more; empty = no budget',
  },
  { key: 'dpDelta', label: 'DP δ', kind: 'num', help: 'the δ of (ε, δ); keep it below 1 / enrolled sites' },
  {
    key: 'rounds',
    label: 'Stop after rounds',
    kind: 'int?',
    help: 'rounds that made a version (counted across restarts); empty = no limit',
  },
  {
    key: 'patience',
    label: 'Patience',
    kind: 'int?',
    help: 'versions without a better accuracy; empty = off',
  },
  { key: 'targetAccuracy', label: 'Target accuracy', kind: 'num?', help: 'empty = off' },
  {
    key: 'schedule',
    label: 'Schedule',
    kind: 'text?',
    help: 'start a round on a timer: "every 6h" or a cron expression ("0 3 * * *"); empty = off',
  },
  {
    key: 'retrainMinSites',
    label: 'Retrain: sites',
    kind: 'int?',
    help: 'data trigger: start a round once this many sites have enough new examples; empty = off',
  },
  {
    key: 'retrainMinNew',
    label: 'Retrain: new examples',
    kind: 'int?',
    help: 'data trigger: examples a site has not trained on yet; empty = off',
  },
];

function fieldText(v: unknown, kind: FieldKind): string {
  if (v === null || v === undefined) return '';
  if (kind === 'sites') {
    const s = v as Settings['sitesPerRound'];
    // a fraction is written with a dot so that 1.0 (all sites) stays a fraction, not a count of 1
    return s.kind === 'fraction' && Number.isInteger(s.value) ? s.value.toFixed(1) : String(s.value);
  }
  return String(v);
}

function fieldValue(text: string, kind: FieldKind): unknown {
  const t = text.trim();
  if (kind === 'sites' || kind === 'encoding') return t;
  if (kind === 'text?') return t === '' ? null : t;
  if (kind === 'bool') return t === 'true';
  if (kind.endsWith('?') && t === '') return null;
  return Number(t);
}

type Option = StrategyDescription['options'][number];

function optionText(v: unknown): string {
  return v === null || v === undefined ? '' : String(v);
}

function optionValue(text: string, o: Option): unknown {
  const t = text.trim();
  if (o.type === 'number' || o.type === 'integer') return Number(t);
  if (o.type === 'boolean') return t === 'true';
  return t;
}

/**
 * The strategy's own options as its schema declares them (GET /api/strategies): one field each, titled with the
 * description, bounds and default. Returns the inputs and the values they started from.
 */
function optionFields(strategy: StrategyDescription | undefined, values: Record<string, unknown>) {
  const inputs = new Map<string, { el: HTMLInputElement | HTMLSelectElement; option: Option; was: string }>();
  const rows = (strategy?.options ?? []).map((o) => {
    const was = optionText(values[o.key] ?? o.default);
    const id = `set-opt-${o.key}`;
    const choices = o.type === 'boolean' ? ['true', 'false'] : o.enum;
    const el = choices
      ? h(
          'select',
          { name: o.key, id },
          ...choices.map((c) => h('option', { value: c, selected: c === was }, c)),
        )
      : h('input', { name: o.key, id, value: was, inputmode: 'decimal', autocomplete: 'off' });
    inputs.set(o.key, { el, option: o, was });
    const title = [o.description, o.bounds, `default ${optionText(o.default)}`].filter(Boolean).join('; ');
    return h('label', { for: id, title }, h('span', {}, `${strategy?.name} ${o.key}`), el);
  });
  return { inputs, rows };
}

export function renderSettings(
  form: HTMLFormElement,
  s: Settings,
  strategy: string,
  strategies: readonly StrategyDescription[],
  onSave: (patch: Record<string, unknown>) => void,
): void {
  const inputs = new Map<
    RoundField,
    { el: HTMLInputElement | HTMLSelectElement; kind: FieldKind; was: string }
  >();
  const strategySelect = h(
    'select',
    { name: 'strategy', id: 'set-strategy' },
    ...strategies.map((d) =>
      h('option', { value: d.name, selected: d.name === strategy, title: d.summary }, d.name),
    ),
  ) as HTMLSelectElement;
  const rows = FIELDS.map((f) => {
    const was = fieldText(s[f.key], f.kind);
    const choices =
      f.kind === 'encoding' ? ['fp32', 'fp16', 'int8'] : f.kind === 'bool' ? ['false', 'true'] : null;
    const el = choices
      ? h(
          'select',
          { name: f.key, id: `set-${f.key}` },
          ...choices.map((e) => h('option', { value: e, selected: e === was }, e)),
        )
      : h('input', {
          name: f.key,
          id: `set-${f.key}`,
          value: was,
          inputmode: 'decimal',
          autocomplete: 'off',
        });
    inputs.set(f.key, { el, kind: f.kind, was });
    return h('label', { for: `set-${f.key}`, title: f.help }, h('span', {}, f.label), el);
  });
  // the selected strategy's options; choosing another strategy shows its options, as stored for it
  const optionBox = h('div', { class: 'fields', id: 'strategy-options' });
  let options = optionFields(undefined, {});
  const showOptions = () => {
    const name = strategySelect.value;
    options = optionFields(
      strategies.find((d) => d.name === name),
      s.strategyOptions[name] ?? {},
    );
    optionBox.replaceChildren(...options.rows);
  };
  strategySelect.onchange = showOptions;
  showOptions();
  form.replaceChildren(
    h(
      'div',
      { class: 'fields' },
      h(
        'label',
        {
          for: 'set-strategy',
          title: 'aggregation strategy from the next round (a new one starts without server state)',
        },
        h('span', {}, 'Strategy'),
        strategySelect,
      ),
      ...rows,
    ),
    optionBox,
    h('button', { type: 'submit' }, 'Save settings'),
    h('span', { class: 'muted' }, ' Changes apply from the next round.'),
  );
  form.onsubmit = (e) => {
    e.preventDefault();
    const patch: Record<string, unknown> = {};
    for (const [k, i] of inputs) if (i.el.value.trim() !== i.was) patch[k] = fieldValue(i.el.value, i.kind);
    const name = strategySelect.value;
    if (name !== strategy) patch.strategy = name;
    const changed: Record<string, unknown> = {};
    for (const [k, i] of options.inputs)
      if (i.el.value.trim() !== i.was) changed[k] = optionValue(i.el.value, i.option);
    if (Object.keys(changed).length) patch.strategyOptions = { [name]: changed };
    onSave(patch);
  };
}
