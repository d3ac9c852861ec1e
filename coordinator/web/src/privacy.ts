// The console's privacy display (issue 17): per round, how it aggregated (plaintext, or SecAgg+ with its counts) and
// Multi-Krum's kept sites; what client-level DP spent; and the Privacy panel from GET /api/privacy. The words come
// from pure functions, and the render functions only put them in elements (coordinator/src/http/console.test.ts
// renders them).

import { h } from './dom';
import type { PrivacyReport, RoundRecord, VersionRecord } from './api';

/** One table cell's words: the text, a second muted line, the hover title and the badge class. */
export interface CellText {
  text: string;
  detail: string | null;
  title: string;
  cls: string;
}

/** ε with two decimals, enough to read a budget by; "–" when absent. */
const eps = (x: number | null | undefined): string => (typeof x === 'number' ? x.toFixed(2) : '–');

/** δ as 1e-5 or 3.3e-4. */
const delta = (d: number): string => Number(d.toPrecision(2)).toExponential();

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The round's aggregation: secure (with how many sites are in the sum and how many dropped) or plaintext. */
export function aggregationText(r: RoundRecord): CellText {
  if (r.mode === 'secure') {
    const s = r.secureAggregation;
    if (!s)
      return {
        text: 'secure',
        detail: null,
        title: 'SecAgg+: the round ended before its setup ran',
        cls: 'good',
      };
    return {
      text: 'secure',
      detail: `${plural(s.contributors, 'site')} in the sum · ${s.dropped} dropped`,
      title:
        `SecAgg+: the coordinator held only the sum of ${plural(s.contributors, 'masked update')}; ` +
        `${s.dropped} dropped after share keys (their masks removed through their neighbours' shares). ` +
        `Graph degree ${s.degree}, threshold ${s.threshold}; quantization clip ±${s.clip}, ${s.levels} levels, ` +
        `max weight ${s.maxWeight}.`,
      cls: 'good',
    };
  }
  const kept = r.selected;
  return {
    text: 'plaintext',
    detail: kept ? `Multi-Krum kept ${kept.length} of ${r.updates}: ${kept.join(', ')}` : null,
    title: kept
      ? `the coordinator saw each update; Multi-Krum averaged ${kept.join(', ')} and left ${r.updates - kept.length} out`
      : 'the coordinator saw each update',
    cls: 'muted',
  };
}

/** What the round spent under client-level DP: its own ε and the total after it; none without DP. */
export function roundEpsilonText(r: RoundRecord): CellText {
  const p = r.privacy;
  if (!p) return { text: '–', detail: null, title: 'no client-level DP in this round', cls: '' };
  return {
    text: `ε ${eps(p.roundEpsilon)}`,
    detail: `total ${eps(p.epsilon)}`,
    title:
      `δ = ${delta(p.delta)}; noise multiplier z = ${p.noiseMultiplier}, clip S = ${p.clipNorm}, ` +
      `m = ${p.expectedParticipants}, q = ${p.sampleRate}, noise std ${p.noiseStd.toPrecision(3)} per coordinate`,
    cls: '',
  };
}

/** A version's aggregation mode: versions before issue 17 have none and were plaintext. */
export const versionMode = (v: VersionRecord): string => v.mode ?? 'plaintext';

/** The Privacy panel's lines (label, value), from GET /api/privacy and whether rounds run under SecAgg+. */
export function privacyLines(p: PrivacyReport, secureAggregation: boolean): [string, string][] {
  const lines: [string, string][] = [
    [
      'Aggregation',
      secureAggregation
        ? 'secure (SecAgg+): the coordinator sees only the sum of each round'
        : "plaintext: the coordinator sees each site's update",
    ],
  ];
  const last = p.rounds.at(-1);
  if (!p.enabled) {
    lines.push(['Differential privacy', 'off: published versions carry no (ε, δ) guarantee']);
    if (last)
      lines.push([
        'ε spent',
        `${eps(p.epsilon)} (δ = ${delta(p.delta)}) by ${plural(p.rounds.length, 'earlier DP round')}`,
      ]);
    return lines;
  }
  const target = p.targetEpsilon === null ? 'no target' : `of the target ${p.targetEpsilon}`;
  const z =
    p.noiseMultiplier !== null
      ? String(p.noiseMultiplier)
      : last
        ? `${last.noiseMultiplier.toPrecision(4)} (found from the target)`
        : 'found from the target when the first round starts';
  lines.push(
    ['Differential privacy', 'on: client-level DP-FedAvg'],
    ['ε spent', `${eps(p.epsilon)} ${target}`],
    ['δ', delta(p.delta)],
    ['Noise multiplier z', z],
    ['Clip norm S', String(p.clipNorm)],
    [
      'DP rounds',
      last
        ? `${p.rounds.length} (last: round ${last.round}, ε ${eps(last.roundEpsilon)})` +
          (p.order === null ? '' : `; tightest at RDP order ${p.order}`)
        : 'none yet',
    ],
  );
  return lines;
}

/** A cell with a badge or plain text, the detail on a muted line below. */
export function cell(t: CellText, attrs: Record<string, string> = {}): HTMLTableCellElement {
  return h(
    'td',
    { title: t.title, ...attrs },
    t.cls ? h('span', { class: `badge ${t.cls}` }, t.text) : t.text,
    t.detail ? h('div', { class: 'muted' }, t.detail) : null,
  );
}

export function renderPrivacy(el: HTMLElement, p: PrivacyReport | null, secureAggregation: boolean): void {
  if (!p) {
    el.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    return;
  }
  el.dataset.dp = String(p.enabled);
  el.replaceChildren(
    h(
      'dl',
      { class: 'facts' },
      ...privacyLines(p, secureAggregation).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
    ),
  );
}
