// Renders the console's sections from plain data (no state of their own): sites, the live round, round history and
// versions (the settings form: settings-form.ts; the privacy display: privacy.ts). Actions are callbacks, so main.ts
// owns every API call and refresh.

import { ago, bytes, duration, h, pct } from './dom';
import type { RoundRecord, RoundStage, SiteRow, Status, VersionRecord } from './api';
import { downloads } from './api';
import { aggregationText, cell, roundEpsilonText, versionMode } from './privacy';
import { ROUND_STAGES, SECURE_ROUND_STAGES } from '@fedlora/shared/protocol/stages.ts';

/** what each stage means to an operator (docs/OPERATOR.md uses the same words) */
const STAGE_WORDS: Record<RoundStage, string> = {
  sample: 'sampling sites',
  configure: 'configuring',
  setup: 'exchanging keys',
  'share-keys': 'sharing mask secrets',
  train: 'training',
  collect: 'collecting uploads',
  unmask: 'unmasking the sum',
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
  // a secure round has three more stages; one of them live, or secure aggregation on, shows that list
  const secure =
    status?.settings.secureAggregation === true ||
    (stage !== null && !(ROUND_STAGES as readonly string[]).includes(stage));
  const stages: readonly RoundStage[] = secure ? SECURE_ROUND_STAGES : ROUND_STAGES;
  const idx = stage ? stages.indexOf(stage) : -1;
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
      ...stages.map((s, i) => h('li', { class: i < idx ? 'done' : i === idx ? 'now' : '' }, STAGE_WORDS[s])),
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

const TRIGGER_WORDS: Record<string, string> = {
  manual: 'started by an admin',
  startup: 'the run started with the coordinator',
  schedule: 'started by the schedule',
  data: 'started by the data trigger',
};

/** why a round (or the round that made a version) started: a small badge, its detail in the title */
function triggerBadge(t: RoundRecord['trigger']): HTMLElement | string {
  if (!t) return '';
  return h(
    'span',
    { class: 'badge muted', 'data-trigger': t.kind, title: [TRIGGER_WORDS[t.kind] ?? t.kind, t.detail].filter(Boolean).join(': ') },
    t.kind,
  );
}

/** The header's line on continual re-training: the schedule and its next run, and the data trigger. */
export function retrainingText(s: Pick<Status, 'retraining'>): string {
  const r = s.retraining;
  if (!r) return '';
  const parts: string[] = [];
  if (r.schedule)
    parts.push(
      `schedule "${r.schedule}", next round ${r.nextScheduledAt ? new Date(r.nextScheduledAt).toLocaleString() : '–'}`,
    );
  if (r.dataTrigger)
    parts.push(
      `data trigger: ${r.dataTrigger.minSites} site(s) with ≥ ${r.dataTrigger.minNew} new examples (${r.sitesWithNewData ?? 0} now)`,
    );
  return parts.length ? `Re-training: ${parts.join(' · ')}` : 'Re-training: no schedule, no data trigger';
}

export function renderRounds(tbody: HTMLElement, rounds: readonly RoundRecord[]): void {
  const rows = [...rounds].sort((a, b) => b.round - a.round);
  tbody.replaceChildren(
    ...rows.map((r) =>
      h(
        'tr',
        { 'data-round': r.round },
        h('td', { class: 'num' }, r.round),
        h('td', {}, new Date(r.startedAt).toLocaleString(), ' ', triggerBadge(r.trigger)),
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
        cell(aggregationText(r), { 'data-col': 'aggregation' }),
        cell(roundEpsilonText(r), { 'data-col': 'epsilon', class: 'num' }),
        h('td', {}, r.failures.length ? r.failures.map((f) => `${f.siteId}: ${f.code}`).join(', ') : '–'),
        h('td', { class: 'num' }, bytes(r.uploadedBytes)),
        h('td', { class: 'mono' }, r.versionId ?? '–'),
      ),
    ),
  );
  if (rows.length === 0)
    tbody.append(h('tr', {}, h('td', { colspan: 11, class: 'muted' }, 'No rounds yet.')));
}

/**
 * A version's promotion status (current, candidate, rejected, or promoted earlier) and its last decision; every
 * decision (who, why, the metric compared) in the cell's title.
 */
function versionStatus(v: VersionRecord, current: boolean): HTMLElement {
  const status = current ? 'current' : (v.status ?? 'promoted');
  const cls = { current: 'badge good', candidate: 'badge warn', rejected: 'badge bad', promoted: 'badge' }[status];
  const decisions = v.decisions ?? [];
  const lastDecision = decisions.at(-1);
  const describe = (d: (typeof decisions)[number]) =>
    `${new Date(d.at).toLocaleString()} ${d.action} by ${d.actor}: ${d.reason}`;
  return h(
    'td',
    { 'data-col': 'status', title: decisions.map(describe).join('\n') },
    h('span', { class: cls }, status),
    lastDecision ? h('div', { class: 'muted decision' }, shortDecision(lastDecision)) : '',
  );
}

/** "reject by admin (token): worse on site B": a person's reason is shown (cut at 80 characters), the policy's is in the title */
function shortDecision(d: NonNullable<VersionRecord['decisions']>[number]): string {
  const who = `${d.action} by ${d.actor}`;
  if (d.actor === 'policy' || d.actor === 'system') return who;
  return `${who}: ${d.reason.length > 80 ? `${d.reason.slice(0, 79)}…` : d.reason}`;
}

/**
 * Federated evaluation (--federated-eval): the combined accuracy and the worst site in the cell, a table of every
 * site's figures under it (fairness: a badly served site stays visible), and the sites left out in the title.
 */
function federatedCell(v: VersionRecord): HTMLElement {
  const f = v.metrics?.federated;
  if (!f) return h('td', { 'data-col': 'federated', class: 'muted' }, '–');
  const central = v.metrics?.source !== 'federated';
  const rows = f.sites.map((s) =>
    h(
      'tr',
      { 'data-site': s.siteId, class: s.siteId === f.worstSite ? 'worst' : '' },
      h('td', { class: 'mono' }, s.siteId),
      h('td', { class: 'num' }, s.examples),
      h('td', { class: 'num' }, pct(s.accuracy)),
      h('td', { class: 'num' }, pct(s.macroF1)),
      h('td', { class: 'num' }, s.loss.toFixed(4)),
    ),
  );
  return h(
    'td',
    { 'data-col': 'federated', title: f.missing.length ? `left out: ${f.missing.map((m) => `${m.siteId} (${m.code})`).join(', ')}` : '' },
    h('div', {}, central ? `${pct(f.accuracy)} on ${f.examples}` : `${f.examples} examples`),
    h('div', { class: 'muted', 'data-worst': f.worstSite }, `worst: ${f.worstSite} ${pct(f.worstSiteAccuracy)}`),
    h(
      'details',
      {},
      h('summary', {}, `${f.sites.length} site${f.sites.length === 1 ? '' : 's'}`),
      h(
        'table',
        { class: 'per-site' },
        h('thead', {}, h('tr', {}, ...['Site', 'Examples', 'Accuracy', 'Macro-F1', 'Loss'].map((t) => h('th', {}, t)))),
        h('tbody', {}, ...rows),
      ),
    ),
  );
}

export function renderVersions(
  tbody: HTMLElement,
  versions: readonly VersionRecord[],
  currentId: string | null,
  onPromote: (id: string) => void,
  onDecide: (id: string, action: 'approve' | 'reject') => void = () => {},
  onMerge: (id: string) => void = () => {},
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
        h(
          'td',
          { class: 'mono' },
          v.id,
          current ? h('span', { class: 'badge good' }, 'current') : '',
          // a masked-LM (domain adaptation) version: its loss is masked-LM loss, its accuracy masked-token accuracy
          v.task === 'mlm' ? h('span', { class: 'badge', 'data-task': 'mlm', title: 'masked-LM version: loss = masked-LM loss, accuracy = masked-token accuracy' }, 'MLM') : '',
        ),
        versionStatus(v, current),
        h('td', { class: 'num' }, v.round, ' ', triggerBadge(v.trigger)),
        h('td', { class: 'mono' }, v.parent ?? '–'),
        h('td', { class: 'num' }, v.sites),
        h('td', { 'data-col': 'mode' }, versionMode(v)),
        h(
          'td',
          { class: 'num', title: v.newExamples !== undefined ? `${v.newExamples} new to the sites` : '' },
          v.examples,
          v.newExamples !== undefined && v.round > 0 ? h('span', { class: 'muted' }, ` (+${v.newExamples} new)`) : '',
        ),
        h('td', { class: 'num', 'data-metric': 'accuracy' }, pct(v.metrics?.accuracy)),
        h('td', { class: 'num', 'data-metric': 'macroF1' }, pct(v.metrics?.macroF1)),
        h('td', { class: 'num' }, v.metrics ? v.metrics.loss.toFixed(4) : '–'),
        federatedCell(v),
        h(
          'td',
          { class: 'num' },
          typeof v.trainMetrics.loss === 'number' ? v.trainMetrics.loss.toFixed(4) : '–',
        ),
        h('td', {}, new Date(v.createdAt).toLocaleString()),
        h(
          'td',
          { class: 'actions' },
          v.status === 'candidate'
            ? h(
                'span',
                {},
                h('button', { class: 'small', type: 'button', 'data-action': 'approve', onclick: () => onDecide(v.id, 'approve') }, 'Approve'),
                h('button', { class: 'small', type: 'button', 'data-action': 'reject', onclick: () => onDecide(v.id, 'reject') }, 'Reject'),
              )
            : current
              ? ''
              : h(
                  'button',
                  { class: 'small', type: 'button', 'data-action': 'promote', onclick: () => onPromote(v.id) },
                  v.round < curRound ? 'Roll back' : 'Promote',
                ),
          v.task === 'mlm'
            ? h('button', { class: 'small', type: 'button', 'data-action': 'merge', onclick: () => onMerge(v.id) }, 'Merge into base')
            : '',
          h('a', { href: d.peftConfig, download: 'adapter_config.json' }, 'PEFT config'),
          h('a', { href: d.peftWeights, download: 'adapter_model.safetensors' }, 'PEFT weights'),
          h('a', { href: d.native, download: `${v.id}.fedlora-adapter` }, 'native'),
        ),
      );
    }),
  );
}
