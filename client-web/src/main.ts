// The site page: wires the form (join token, local data file) to BrowserSite and renders its events. The token comes
// from the form or from the enrollment link's #token=… fragment (a fragment is never sent in HTTP requests), is
// wiped from the address bar at once, and is only ever sent in the coordinator's 'site:enroll' event.

import { describeError, FedloraError, isFedloraError } from '@fedlora/shared/errors.ts';
import { holdoutSplit } from '@fedlora/shared/data/holdout.ts';
import { countByLabel, type LabeledDataset } from '@fedlora/shared/data/dataset.ts';
import { datasetFromTable, parseTabularText } from '@fedlora/shared/data/tabular-text.ts';
import type { LabelMapping } from '@fedlora/shared/data/site-data.ts';
import { initWebBackend, type WebBackendInfo, type WebBackendName } from './backend';
import { BrowserSite, type SiteEvent } from './site-client';
import { SiteStore } from './store';
import { parseJoinToken, projectNamespace } from '@fedlora/shared/protocol/join-token.ts';
import { computeDelta, type ComputeDeltaInput } from './test-hook';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function readFragment(): URLSearchParams {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.has('token')) history.replaceState(null, '', location.pathname + location.search);
  return params;
}

const fragment = readFragment();
const query = new URLSearchParams(location.search);
if (fragment.get('token')) $<HTMLInputElement>('token').value = fragment.get('token') as string;
// an enrollment link may preset the held-out share (?holdout=0.2) for a federation that evaluates at the sites
if (query.get('holdout')) $<HTMLInputElement>('holdout').value = query.get('holdout') as string;
// served by the coordinator at /site: the coordinator is this page's origin (?coordinator= for a standalone build)
const coordinator = (query.get('coordinator') ?? location.origin).replace(/\/+$/, '');

/**
 * Where this site talks to, by its project (issue 21): a join token that names a project connects to the project's
 * namespace (socket.io reads it from the URL's path), and the address keeps the project (?project=…) for the visits
 * after enrollment, which come without the token. The identity kept in this browser is per project as well.
 */
function projectCoordinator(token: string | null): string {
  const kept = query.get('project');
  let project = kept !== null && /^[a-z][a-z0-9-]{0,31}$/.test(kept) ? kept : null;
  if (token) {
    project = parseJoinToken(token).project;
    if (project !== kept) {
      if (project) query.set('project', project);
      else query.delete('project');
      const search = query.toString();
      history.replaceState(null, '', location.pathname + (search ? `?${search}` : ''));
    }
  }
  return project ? `${coordinator}${projectNamespace(project)}` : coordinator;
}

function log(line: string): void {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${line}`;
  $('log').append(li);
  $('status').textContent = line;
}

function showError(message: string): void {
  const el = $('error');
  el.textContent = message;
  el.hidden = false;
  log(`error: ${message}`);
}

function setProgress(label: string, value: number, max: number): void {
  $('progress-label').textContent = label;
  const p = $<HTMLProgressElement>('progress');
  p.max = Math.max(1, max);
  p.value = value;
}

function renderMapping(m: LabelMapping): void {
  const body = $('mapping').querySelector('tbody') as HTMLElement;
  body.replaceChildren();
  const row = (cells: string[], cls: string) => {
    const tr = document.createElement('tr');
    tr.className = cls;
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = c;
      tr.append(td);
    }
    body.append(tr);
  };
  for (const r of m.rows) row([r.label, String(r.classId), String(r.count)], r.count === 0 ? 'missing' : '');
  for (const u of m.unknown) row([u, 'not in the federation', '–'], 'unknown');
}

function onSiteEvent(e: SiteEvent): void {
  switch (e.type) {
    case 'status':
      return log(e.text);
    case 'enrolled':
      $('site-id').textContent = e.siteId;
      return log(`enrolled as ${e.siteId}`);
    case 'mapping':
      renderMapping(e.mapping);
      return log(e.mapping.unknown.length ? `labels not in the federation: ${e.mapping.unknown.join(', ')}` : `label mapping checked: ${e.labels.length} federation labels`);
    case 'download':
      setProgress(`${e.cached ? 'cached (sha256 checked)' : 'download'} ${e.path}`, e.done, e.total);
      if (e.done === e.total) log(`${e.path}: ${e.total} bytes, sha256 verified${e.cached ? ' (from the cache)' : ''}`);
      return;
    case 'ready':
      return setProgress('waiting for a round', 0, 1);
    case 'step':
      setProgress(`round ${e.round}: step ${e.step}/${e.totalSteps}, loss ${e.loss.toFixed(4)}`, e.step, e.totalSteps);
      $('sps').textContent = e.samplesPerSecond.toFixed(1);
      return;
    case 'uploaded':
      $('sps').textContent = e.samplesPerSecond.toFixed(1);
      return log(`round ${e.round}: uploaded ${e.bytes} bytes, loss ${e.loss.toFixed(4)}`);
    case 'evaluated':
      $('heldout').textContent = `${e.versionId}: accuracy ${e.accuracy.toFixed(4)} on ${e.numExamples} examples`;
      return log(`scored candidate ${e.versionId} on ${e.numExamples} held-out examples: accuracy ${e.accuracy.toFixed(4)}, loss ${e.loss.toFixed(4)}`);
    case 'version':
      $('version').textContent = `${e.versionId}${e.accuracy === undefined ? '' : ` (held-out accuracy ${e.accuracy.toFixed(4)})`}`;
      return;
    case 'fatal':
      $<HTMLButtonElement>('join').disabled = false;
      return showError(`${e.code}: ${e.message}`);
  }
}

let dataset: LabeledDataset | null = null;
let site: BrowserSite | null = null;

async function loadData(): Promise<void> {
  const file = $<HTMLInputElement>('data-file').files?.[0];
  dataset = null;
  $<HTMLButtonElement>('join').disabled = true;
  if (!file) return;
  try {
    const text = await file.text();
    const opts = { textColumn: $<HTMLInputElement>('text-column').value.trim() || undefined, labelColumn: $<HTMLInputElement>('label-column').value.trim() || undefined };
    dataset = datasetFromTable(file.name, parseTabularText(file.name, text), opts);
    const counts = countByLabel(dataset);
    $('data-summary').textContent = `${file.name}: ${dataset.examples.length} examples, ${Object.keys(counts).length} labels`;
    $('error').hidden = true;
    $<HTMLButtonElement>('join').disabled = false;
    log(`data: ${dataset.examples.length} examples read in this tab`);
  } catch (err) {
    showError(describeError(err));
  }
}

const backendReady: Promise<WebBackendInfo> = initWebBackend((query.get('backend') as WebBackendName | null) ?? undefined).then(
  (b) => {
    $('backend').textContent = b.name + (b.skipped.length ? ` (skipped ${b.skipped.join('; ')})` : '');
    return b;
  },
  (err: unknown) => {
    $('backend').textContent = 'none';
    showError(describeError(err));
    throw err;
  },
);

async function join(): Promise<void> {
  if (!dataset) return;
  $<HTMLButtonElement>('join').disabled = true;
  $('error').hidden = true;
  try {
    const token = $<HTMLInputElement>('token').value.trim() || null;
    const target = projectCoordinator(token);
    const store = await SiteStore.open();
    const id = await store.identity(target);
    if (id?.siteId) $('site-id').textContent = id.siteId;
    site?.stop();
    const holdout = Number($<HTMLInputElement>('holdout').value || '0');
    if (!(holdout >= 0 && holdout < 1)) throw new FedloraError('CONFIG_INVALID', `the held-out share must be a fraction in [0, 1), e.g. 0.2; got ${$<HTMLInputElement>('holdout').value}`);
    if (holdout > 0) log(`held-out split: ${holdoutSplit(dataset, holdout).heldout.examples.length} of ${dataset.examples.length} examples, never trained on`);
    site = new BrowserSite({ coordinator: target, token, dataset, holdout, store, backend: await backendReady, on: onSiteEvent });
    await site.run();
  } catch (err) {
    $<HTMLButtonElement>('join').disabled = false;
    showError(isFedloraError(err) ? `${err.code}: ${err.message}` : describeError(err));
  }
}

$('data-file').addEventListener('change', () => void loadData());
$('text-column').addEventListener('change', () => void loadData());
$('label-column').addEventListener('change', () => void loadData());
$('join').addEventListener('click', () => void join());

// test hook (tests/web-node-delta.e2e.test.ts): the shared round core on given files, data, seed and state
declare global {
  interface Window {
    __fedlora: { backend: Promise<WebBackendInfo>; computeDelta: (i: ComputeDeltaInput) => ReturnType<typeof computeDelta> };
  }
}
window.__fedlora = { backend: backendReady, computeDelta: async (i) => computeDelta(i, await backendReady) };
