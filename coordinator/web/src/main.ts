// The admin console: login (the token is posted once to /api/login and forgotten; an HttpOnly cookie carries the
// session), then the Sites, Rounds, Privacy, Versions and Charts sections, kept live by the /admin socket.io
// namespace.

import './style.css';
import { io, type Socket } from 'socket.io-client';
import {
  api,
  ApiError,
  currentProject,
  feedNamespace,
  useProject,
  type AdminServerEvents,
  type PrivacyReport,
  type RoundRecord,
  type Settings,
  type SiteRow,
  type Status,
  type StrategyDescription,
  type VersionRecord,
} from './api';
import { Charts } from './charts';
import { byId } from './dom';
import { renderPrivacy } from './privacy';
import { renderSettings } from './settings-form';
import { applyRole, renderAudit, renderUsers } from './governance';
import {
  renderCurrent,
  renderEnrolled,
  renderRounds,
  renderSites,
  renderVersions,
  retrainingText,
  type LiveRound,
} from './views';

const state = {
  status: null as Status | null,
  sites: [] as SiteRow[],
  rounds: [] as RoundRecord[],
  versions: [] as VersionRecord[],
  currentId: null as string | null,
  settings: null as Settings | null,
  strategies: [] as StrategyDescription[],
  privacy: null as PrivacyReport | null,
  live: null as LiveRound | null,
};
let socket: Socket<AdminServerEvents, Record<string, never>> | null = null;
let charts: Charts | null = null;

const el = {
  login: byId('login'),
  loginForm: byId<HTMLFormElement>('login-form'),
  token: byId<HTMLInputElement>('token'),
  username: byId<HTMLInputElement>('username'),
  password: byId<HTMLInputElement>('password'),
  loginError: byId('login-error'),
  app: byId('app'),
  message: byId('message'),
  fedState: byId('fed-state'),
  start: byId<HTMLButtonElement>('btn-start'),
  pause: byId<HTMLButtonElement>('btn-pause'),
  logout: byId<HTMLButtonElement>('btn-logout'),
  enrollForm: byId<HTMLFormElement>('enroll-form'),
  enrollName: byId<HTMLInputElement>('enroll-name'),
  enrolled: byId('enroll-result'),
  sites: byId('sites-body'),
  current: byId('current-round'),
  rounds: byId('rounds-body'),
  settings: byId<HTMLFormElement>('settings-form'),
  versions: byId('versions-body'),
  privacy: byId('privacy-panel'),
  project: byId<HTMLSelectElement>('project'),
};

function say(text: string, kind: 'info' | 'error' = 'info'): void {
  el.message.textContent = text;
  el.message.className = kind;
  el.message.hidden = text === '';
}

const READS = new Set(['refresh', 'status', 'sites', 'audit']);
/** Runs an action; a lost session sends the operator back to the login form, other errors are shown. */
async function guarded(what: string, action: () => Promise<unknown>): Promise<void> {
  try {
    await action();
    // an action leaves an audit entry: show it (the refreshes that run through here do not need to)
    if (!READS.has(what)) void refreshAudit().catch(() => {});
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return showLogin('Your session ended: log in again.');
    say(`${what}: ${err instanceof ApiError ? `${err.code}: ${err.message}` : String(err)}`, 'error');
  }
}

function renderHeader(): void {
  const s = state.status;
  const st = s?.state ?? 'idle';
  el.fedState.textContent = s?.finishedReason && st === 'finished' ? `${st} (${s.finishedReason})` : st;
  el.fedState.dataset.state = st;
  el.start.disabled = st === 'running';
  el.pause.disabled = st !== 'running';
  byId('summary').textContent = s
    ? `strategy ${s.strategy} · current version ${s.currentVersionId ?? '–'} · sites: ${s.sitesOnline} online, ${s.sitesAvailable} ready, ${s.sitesEnrolled} enrolled`
    : '';
  byId('retraining').textContent = s ? retrainingText(s) : '';
  byId('fingerprint').textContent = s
    ? `Coordinator fingerprint ${s.coordinator.fingerprint}: every join token carries it, and sites trust only this key. ` +
      'Read it to a site operator who enrolls by hand (fedlora-site join --coordinator-fingerprint).'
    : '';
}

const renderSitesNow = () =>
  renderSites(
    el.sites,
    state.sites,
    (id) =>
      void guarded(`revoke ${id}`, async () => {
        await api.revoke(id);
        say(`Site ${id} revoked: its token and keys no longer work.`);
        await refreshSites();
      }),
  );
const renderVersionsNow = () => {
  renderVersions(
    el.versions,
    state.versions,
    state.currentId,
    (id) =>
      void guarded(`promote ${id}`, async () => {
        await api.promote(id);
        say(`${id} is now the current version; the next round trains from it.`);
        await refreshVersions();
      }),
    (id, action) => {
      // the reason is recorded with the decision (required, at most 500 characters)
      const reason = window.prompt(`Reason to ${action} ${id} (recorded with your decision):`)?.trim();
      if (!reason) return say(`${action} ${id}: cancelled (a reason is required).`);
      void guarded(`${action} ${id}`, async () => {
        await (action === 'approve' ? api.approve(id, reason) : api.reject(id, reason));
        say(action === 'approve' ? `${id} approved: it is the current version now.` : `${id} rejected: it stays out of use.`);
        await refreshVersions();
      });
    },
    (id) => {
      if (!window.confirm(`Merge ${id} into the base model? This writes a new base directory in the coordinator's data dir (for a classification federation's --model).`))
        return say(`merge ${id}: cancelled.`);
      void guarded(`merge ${id}`, async () => {
        const b = await api.merge(id);
        say(`${id} merged: new base ${b.sha256.slice(0, 16)}… in ${b.dir} (parent ${b.parentBaseSha256.slice(0, 16)}…).`);
      });
    },
  );
  charts?.update(state.versions, state.rounds);
};

async function refreshStatus(): Promise<void> {
  state.status = await api.status();
  if (!state.status.round) state.live = null;
  renderHeader();
  renderCurrent(el.current, state.status, state.live);
}
async function refreshSites(): Promise<void> {
  state.sites = await api.sites();
  renderSitesNow();
}
async function refreshVersions(): Promise<void> {
  const v = await api.versions();
  state.versions = v.versions;
  state.currentId = v.currentId;
  renderVersionsNow();
}
async function refreshRounds(): Promise<void> {
  state.rounds = await api.rounds();
  renderRounds(el.rounds, state.rounds);
  charts?.update(state.versions, state.rounds);
}
/** The Privacy panel: GET /api/privacy, and whether rounds run under SecAgg+ (from the settings in the status). */
async function refreshPrivacy(): Promise<void> {
  state.privacy = await api.privacy();
  renderPrivacy(el.privacy, state.privacy, state.status?.settings.secureAggregation ?? false);
}
async function refreshSettings(): Promise<void> {
  // the strategies and their option schemas do not change while the coordinator runs: fetched once
  if (state.strategies.length === 0) state.strategies = await api.strategies();
  state.settings = await api.settings();
  renderSettings(
    el.settings,
    state.settings,
    state.status?.strategy ?? '',
    state.strategies,
    (patch) =>
      void guarded('settings', async () => {
        if (Object.keys(patch).length === 0) return say('No setting changed.');
        await api.saveSettings(patch);
        say(`Saved ${Object.keys(patch).join(', ')}; applies from the next round.`);
        await Promise.all([refreshSettings(), refreshStatus()]);
        await refreshPrivacy();
      }),
  );
}
/** who is logged in: their role decides which controls show (the coordinator enforces it either way) */
let role: Awaited<ReturnType<typeof api.me>>['role'] = 'viewer';
async function refreshMe(): Promise<void> {
  const me = await api.me();
  role = me.role;
  byId('who').textContent = `${me.actor} (${me.role})`;
  applyRole(me.role);
}
async function refreshAudit(): Promise<void> {
  const [page, check] = await Promise.all([api.audit(), api.auditVerify()]);
  renderAudit(byId('audit-body'), page.entries);
  byId('audit-check').textContent = check.ok ? `Hash chain verified (${page.total} entries).` : `Hash chain BROKEN at seq ${check.seq}.`;
}
async function refreshUsers(): Promise<void> {
  if (role !== 'admin') return;
  const act = (what: string, fn: () => Promise<unknown>) =>
    void guarded(what, async () => {
      await fn();
      await Promise.all([refreshUsers(), refreshAudit()]);
    });
  renderUsers(byId('users-body'), await api.users(), {
    setRole: (u, r) => act(`role of ${u}`, () => api.changeUser(u, { role: r })),
    setDisabled: (u, disabled) => act(`${disabled ? 'disable' : 'enable'} ${u}`, () => api.changeUser(u, { disabled })),
    resetPassword: (u) => {
      const password = window.prompt(`New password for ${u} (12-256 characters):`);
      if (password) act(`password of ${u}`, () => api.setPassword(u, password));
    },
    issueToken: (u) =>
      act(`token of ${u}`, async () => {
        const t = await api.issueToken(u);
        const box = byId('user-result');
        box.hidden = false;
        box.textContent = `API token for ${t.username} (shown once; the previous one no longer works): ${t.token}`;
      }),
  });
}
async function refreshAll(): Promise<void> {
  await refreshMe();
  await refreshStatus();
  void guarded('audit', () => Promise.all([refreshAudit(), refreshUsers()]));
  await Promise.all([
    refreshSites(),
    refreshVersions(),
    refreshRounds(),
    refreshSettings(),
    refreshPrivacy(),
  ]);
}

function connectLive(): void {
  socket?.disconnect();
  // same origin: the handshake carries the session cookie, so no token is handed to the socket
  const s: Socket<AdminServerEvents, Record<string, never>> = io(feedNamespace(), { withCredentials: true });
  socket = s;
  const live = (on: boolean) => (el.app.dataset.socket = on ? 'connected' : 'disconnected');
  s.on('connect', () => {
    live(true);
    // events may have been missed while disconnected: take a fresh snapshot
    void guarded('refresh', refreshAll);
  });
  s.on('disconnect', () => live(false));
  s.on('connect_error', (err) => {
    live(false);
    if (err.message === 'UNAUTHORIZED') {
      s.disconnect();
      showLogin('Your session ended: log in again.');
    }
  });
  s.on('round:stage', (e) => {
    state.live = { ...e, uploads: state.live?.roundId === e.roundId ? state.live.uploads : [] };
    renderCurrent(el.current, state.status, state.live);
    void guarded('status', refreshStatus);
  });
  s.on('upload', (e) => {
    if (state.live && state.live.round === e.round) state.live.uploads.push(e);
    renderCurrent(el.current, state.status, state.live);
  });
  s.on('round:end', (r) => {
    state.rounds = [...state.rounds.filter((x) => x.roundId !== r.roundId), r];
    renderRounds(el.rounds, state.rounds);
    charts?.update(state.versions, state.rounds);
    void guarded('refresh', () => Promise.all([refreshSites(), refreshStatus(), refreshPrivacy()]));
  });
  // another console (or early stopping) decided about a version: its status, and perhaps the current one, changed
  s.on('version:decided', (v) => {
    state.versions = [...state.versions.filter((x) => x.id !== v.id), v];
    void guarded('refresh', async () => {
      await Promise.all([refreshVersions(), refreshStatus()]);
    });
  });
  s.on('version:new', (v) => {
    state.versions = [...state.versions.filter((x) => x.id !== v.id), v];
    renderVersionsNow();
    void guarded('refresh', async () => {
      await refreshStatus();
      state.currentId = state.status?.currentVersionId ?? state.currentId;
      renderVersionsNow();
    });
  });
  s.on('site:status', () => void guarded('sites', () => Promise.all([refreshSites(), refreshStatus()])));
  s.on('federation:state', (e) => {
    if (state.status) state.status = { ...state.status, state: e.state, finishedReason: e.reason ?? null };
    renderHeader();
    void guarded('status', refreshStatus);
  });
}

function showLogin(message = ''): void {
  socket?.disconnect();
  socket = null;
  el.app.hidden = true;
  el.login.hidden = false;
  el.loginError.textContent = message;
  el.token.focus();
  void offerSingleSignOn();
}

/** The single sign-on link, when the coordinator has an OpenID provider (GET /auth/oidc/config is 404 otherwise). */
async function offerSingleSignOn(): Promise<void> {
  try {
    const r = await fetch('/auth/oidc/config', { credentials: 'same-origin' });
    if (!r.ok) return;
    const { label } = (await r.json()) as { label: string };
    byId('oidc-link').textContent = label;
    byId('oidc-login').hidden = false;
  } catch {
    /* no provider offered: the form alone */
  }
}

/**
 * The project switcher (issue 21): the projects this user may see; the selection is kept in the URL's hash
 * (#project=<id>), so a reload or a shared link shows the same project. Shown only when there is more than one.
 */
async function refreshProjects(): Promise<void> {
  const projects = await api.projects();
  const wanted = new URLSearchParams(location.hash.slice(1)).get('project') ?? currentProject();
  const chosen = projects.find((p) => p.id === wanted) ?? projects.find((p) => p.id === 'default') ?? projects[0];
  el.project.replaceChildren(
    ...projects.map((p) => {
      const o = document.createElement('option');
      o.value = p.id;
      o.textContent = `${p.id} (${p.labels.length} labels)`;
      return o;
    }),
  );
  if (chosen) {
    useProject(chosen.id);
    el.project.value = chosen.id;
  }
  byId('project-pick').hidden = projects.length < 2;
}

el.project.addEventListener('change', () => {
  useProject(el.project.value);
  history.replaceState(null, '', `#project=${encodeURIComponent(el.project.value)}`);
  // another project's rounds, sites and versions: nothing of the previous one stays on the page
  Object.assign(state, { status: null, sites: [], rounds: [], versions: [], currentId: null, settings: null, privacy: null, live: null });
  connectLive();
});

async function showApp(): Promise<void> {
  el.login.hidden = true;
  el.app.hidden = false;
  charts ??= new Charts({
    accuracy: byId<HTMLCanvasElement>('chart-accuracy'),
    loss: byId<HTMLCanvasElement>('chart-loss'),
    bytes: byId<HTMLCanvasElement>('chart-bytes'),
    volume: byId<HTMLCanvasElement>('chart-volume'),
  });
  await refreshProjects();
  await refreshAll();
  connectLive();
}

el.loginForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const username = el.username.value.trim();
  const credentials = username ? { username, password: el.password.value } : { token: el.token.value };
  // the page keeps no copy; from here on the HttpOnly cookie is the credential
  el.token.value = '';
  el.password.value = '';
  el.loginError.textContent = '';
  void (async () => {
    try {
      await api.login(credentials);
      await showApp();
    } catch (err) {
      showLogin(
        err instanceof ApiError && err.status === 401
          ? username
            ? 'Wrong username or password.'
            : 'Wrong admin token.'
          : `Login failed: ${err instanceof ApiError ? err.message : String(err)}`,
      );
    }
  })();
});

el.logout.addEventListener('click', () => void api.logout().finally(() => showLogin('Logged out.')));
el.start.addEventListener(
  'click',
  () =>
    void guarded('start', async () => {
      await api.start();
      say('Federation started.');
      await refreshStatus();
    }),
);
el.pause.addEventListener(
  'click',
  () =>
    void guarded('pause', async () => {
      await api.pause();
      say('Pausing: no new round starts; a round under way finishes.');
      await refreshStatus();
    }),
);
el.enrollForm.addEventListener('submit', (e) => {
  e.preventDefault();
  void guarded('enroll', async () => {
    const r = await api.enroll(el.enrollName.value.trim());
    el.enrollName.value = '';
    renderEnrolled(el.enrolled, r);
    await refreshSites();
  });
});
byId<HTMLFormElement>('user-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = byId<HTMLInputElement>('user-name');
  const pw = byId<HTMLInputElement>('user-password');
  void guarded('create user', async () => {
    const role = byId<HTMLSelectElement>('user-role').value as 'viewer' | 'operator' | 'admin';
    await api.createUser({ username: name.value.trim(), role, ...(pw.value ? { password: pw.value } : {}) });
    say(`User ${name.value.trim()} created (${role}).`);
    name.value = '';
    pw.value = '';
    await Promise.all([refreshUsers(), refreshAudit()]);
  });
});
// relative times ("12 s ago") age without new events
setInterval(() => el.app.hidden || renderSitesNow(), 10_000);

// an existing session cookie skips the login form
void (async () => {
  try {
    await api.status();
    await showApp();
  } catch (err) {
    showLogin(
      err instanceof ApiError && err.status === 401 ? '' : `The coordinator did not answer: ${String(err)}`,
    );
  }
})();
