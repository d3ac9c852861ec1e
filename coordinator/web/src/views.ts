// Renders the console's sections from plain data (no state of their own): sites, the live round, round history,
// versions and the settings form. Actions are callbacks, so main.ts owns every API call and refresh.

import { ago, bytes, duration, h, pct } from './dom';
import type {
  RoundRecord,
  RoundStage,
  Settings,
  SiteRow,
  Status,
  StrategyDescription,
  VersionRecord,
} from './api';
import { downloads } from './api';
import { ROUND_STAGES } from '@fedlora/shared/protocol/stages.ts';

/** what each stage means to an operator (docs/OPERATOR.md uses the same words) */
const STAGE_WORDS: Record<RoundStage, string> = {
  sample: 'sampling sites',
  configure: 'configuring',
  train: 'training',
  collect: 'collecting uploads',
  aggregate: 'aggregating',
  evaluate: 'evaluating',
  version: 'versioned',
};

export interface LiveRound {
  round: number;
  roundId: string;
  stage: RoundStage;
  uploads: { siteId: string; accepted: boolean; code?: string }[];
}

function siteState(s: SiteRow): { text: string; cls: string } {
  if (s.revokedAt) return { text: 'revoked', cls: 'bad' };
  if (!s.enrolledAt) return { text: 'awaiting enrollment', cls: 'muted' };
  if (s.online) return s.ready ? { text: 'online, ready', cls: 'good' } : { text: 'online', cls: 'warn' };
  return { text: 'offline', cls: 'muted' };
}

export function renderSites(
  tbody: HTMLElement,
  sites: readonly SiteRow[],
  onRevoke: (id: string) => void,
): void {
  tbody.replaceChildren(
    ...sites.map((s) => {
      const st = siteState(s);
      let armed = false;
      const revoke = h(
        'button',
        { class: 'small danger', type: 'button', 'data-action': 'revoke' },
        'Revoke',
      );
      // two clicks instead of a modal confirm(): the first arms, the second revokes
      revoke.addEventListener('click', () => {
        if (!armed) {
          armed = true;
          revoke.textContent = 'Confirm revoke';
          return;
        }
        onRevoke(s.id);
      });
      return h(
        'tr',
        { 'data-site': s.id, 'data-online': String(s.online) },
        h('td', {}, h('strong', {}, s.name), h('div', { class: 'muted mono' }, s.id)),
        h('td', {}, h('span', { class: `badge ${st.cls}` }, st.text)),
        h('td', { title: s.lastSeen ?? '' }, s.online ? 'now' : ago(s.lastSeen)),
        h('td', { class: 'mono' }, s.backend ?? '–'),
        h('td', { class: 'num' }, s.numExamples ?? '–'),
        h('td', { class: 'num' }, s.roundsContributed),
        h(
          'td',
          {},
          s.lastError
            ? h(
                'span',
                { class: 'badge bad', title: s.lastError.at },
                `${s.lastError.code} (round ${s.lastError.round})`,
              )
            : '–',
        ),
        h('td', {}, s.revokedAt ? '' : revoke),
      );
    }),
  );
  if (sites.length === 0)
    tbody.append(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No sites yet: enroll one above.')));
}

export function renderEnrolled(
  el: HTMLElement,
  r: { siteId: string; name: string; joinToken: string },
): void {
  const link = `${location.origin}/site#token=${encodeURIComponent(r.joinToken)}`;
  const cmd = `FEDLORA_TOKEN='${r.joinToken}' fedlora-site join --coordinator ${location.origin} --data <file.csv> --state-dir <dir>`;
  el.replaceChildren(
    h(
      'p',
      {},
      h('strong', {}, `Site “${r.name}” created (id ${r.siteId}).`),
      ' Its join token is shown only now: hand it to the site over a private channel.',
    ),
    h(
      'dl',
      {},
      h('dt', {}, 'Join token'),
      h('dd', {}, h('code', { id: 'enroll-token' }, r.joinToken)),
      h('dt', {}, 'Browser site: enrollment link'),
      h('dd', {}, h('a', { id: 'enroll-link', href: link, target: '_blank', rel: 'noopener' }, link)),
      h('dt', {}, 'Node site agent'),
      h('dd', {}, h('code', { id: 'enroll-command' }, cmd)),
    ),
  );
  el.hidden = false;
}

export function renderCurrent(el: HTMLElement, status: Status | null, live: LiveRound | null): void {
  const r = status?.round;
  const stage = live?.stage ?? r?.stage ?? null;
  const round = live?.round ?? r?.round ?? null;
  const idx = stage ? ROUND_STAGES.indexOf(stage) : -1;
  el.dataset.stage = stage ?? '';
  el.dataset.round = round === null ? '' : String(round);
  if (round === null) {
    el.replaceChildren(
      h(
        'p',
        { class: 'muted' },
        status?.state === 'running'
          ? 'Waiting for enough ready sites to start a round…'
          : 'No round running.',
      ),
    );
    return;
  }
  const accepted = live?.uploads.filter((u) => u.accepted).length ?? r?.delivered ?? 0;
  const rejected = live?.uploads.filter((u) => !u.accepted) ?? [];
  el.replaceChildren(
    h('p', {}, h('strong', {}, `Round ${round}`), ` — ${stage ? STAGE_WORDS[stage] : ''}`),
    h(
      'ol',
      { class: 'stages' },
      ...ROUND_STAGES.map((s, i) => h('li', { class: i < idx ? 'done' : i === idx ? 'now' : '' }, STAGE_WORDS[s])),
    ),
    h(
      'p',
      {},
      `sampled ${r?.sampled ?? '…'} · uploaded ${accepted}`,
      r?.deadline ? ` · deadline ${new Date(r.deadline).toLocaleTimeString()}` : '',
      rejected.length
        ? h(
            'span',
            { class: 'badge bad' },
            ` rejected: ${rejected.map((u) => `${u.siteId} ${u.code}`).join(', ')}`,
          )
        : '',
    ),
  );
}

export function renderRounds(tbody: HTMLElement, rounds: readonly RoundRecord[]): void {
  const rows = [...rounds].sort((a, b) => b.round - a.round);
  tbody.replaceChildren(
    ...rows.map((r) =>
      h(
        'tr',
        { 'data-round': r.round },
        h('td', { class: 'num' }, r.round),
        h('td', {}, new Date(r.startedAt).toLocaleString()),
        h('td', { class: 'num' }, duration(r.durationMs)),
        h(
          'td',
          {},
          h(
            'span',
            {
              class: `badge ${r.outcome === 'aggregated' ? 'good' : r.outcome === 'kept' ? 'warn' : 'muted'}`,
              title: r.reason ?? '',
            },
            r.outcome,
          ),
        ),
        h('td', { class: 'num' }, `${r.participants} / ${r.sampled}`),
        h('td', { class: 'num' }, r.updates),
        h('td', {}, r.failures.length ? r.failures.map((f) => `${f.siteId}: ${f.code}`).join(', ') : '–'),
        h('td', { class: 'num' }, bytes(r.uploadedBytes)),
        h('td', { class: 'mono' }, r.versionId ?? '–'),
      ),
    ),
  );
  if (rows.length === 0) tbody.append(h('tr', {}, h('td', { colspan: 9, class: 'muted' }, 'No rounds yet.')));
}

export function renderVersions(
  tbody: HTMLElement,
  versions: readonly VersionRecord[],
  currentId: string | null,
  onPromote: (id: string) => void,
): void {
  const rows = [...versions].sort((a, b) => b.round - a.round || b.id.localeCompare(a.id));
  const curRound = versions.find((x) => x.id === currentId)?.round ?? Infinity;
  tbody.replaceChildren(
    ...rows.map((v) => {
      const d = downloads(v.id);
      const current = v.id === currentId;
      return h(
        'tr',
        { 'data-version': v.id, class: current ? 'current' : '' },
        h('td', { class: 'mono' }, v.id, current ? h('span', { class: 'badge good' }, 'current') : ''),
        h('td', { class: 'num' }, v.round),
        h('td', { class: 'mono' }, v.parent ?? '–'),
        h('td', { class: 'num' }, v.sites),
        h('td', { class: 'num' }, v.examples),
        h('td', { class: 'num', 'data-metric': 'accuracy' }, pct(v.metrics?.accuracy)),
        h('td', { class: 'num', 'data-metric': 'macroF1' }, pct(v.metrics?.macroF1)),
        h('td', { class: 'num' }, v.metrics ? v.metrics.loss.toFixed(4) : '–'),
        h(
          'td',
          { class: 'num' },
          typeof v.trainMetrics.loss === 'number' ? v.trainMetrics.loss.toFixed(4) : '–',
        ),
        h('td', {}, new Date(v.createdAt).toLocaleString()),
        h(
          'td',
          { class: 'actions' },
          current
            ? ''
            : h(
                'button',
                { class: 'small', type: 'button', 'data-action': 'promote', onclick: () => onPromote(v.id) },
                v.round < curRound ? 'Roll back' : 'Promote',
              ),
          h('a', { href: d.peftConfig, download: 'adapter_config.json' }, 'PEFT config'),
          h('a', { href: d.peftWeights, download: 'adapter_model.safetensors' }, 'PEFT weights'),
          h('a', { href: d.native, download: `${v.id}.fedlora-adapter` }, 'native'),
        ),
      );
    }),
  );
}

type FieldKind = 'int' | 'num' | 'sites' | 'encoding' | 'int?' | 'num?';
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
      ? h('select', { name: o.key, id }, ...choices.map((c) => h('option', { value: c, selected: c === was }, c)))
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
  const inputs = new Map<RoundField, { el: HTMLInputElement | HTMLSelectElement; kind: FieldKind; was: string }>();
  const strategySelect = h(
    'select',
    { name: 'strategy', id: 'set-strategy' },
    ...strategies.map((d) => h('option', { value: d.name, selected: d.name === strategy, title: d.summary }, d.name)),
  ) as HTMLSelectElement;
  const rows = FIELDS.map((f) => {
    const was = fieldText(s[f.key], f.kind);
    const el =
      f.kind === 'encoding'
        ? h(
            'select',
            { name: f.key, id: `set-${f.key}` },
            ...['fp32', 'fp16', 'int8'].map((e) => h('option', { value: e, selected: e === was }, e)),
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
