// The console's REST client: same-origin fetch that carries the HttpOnly session cookie (never the token itself,
// which the page holds only while the login form is submitted). What /api takes and answers is the coordinator's
// admin contract (src/http/admin-schemas.ts, docs/API.md); its types come from there only.

import type {
  AdminServerEvents,
  ApiErrorBody,
  AuditEntry,
  AuditList,
  AuditVerification,
  IssuedToken,
  Me,
  MergedBase,
  PublicUser,
  Role,
  CreatedSite,
  FederationState,
  PrivacyReport,
  ProjectRow,
  RouteBody,
  RoundRecord,
  RoundSettings,
  RoundStage,
  Settings,
  SiteRow,
  Status,
  StopRules,
  StrategyDescription,
  VersionList,
  VersionRecord,
} from '../../src/http/admin-schemas';

export type {
  AdminServerEvents,
  AuditEntry,
  Me,
  PublicUser,
  Role,
  FederationState,
  PrivacyReport,
  ProjectRow,
  RoundRecord,
  RoundSettings,
  RoundStage,
  Settings,
  SiteRow,
  Status,
  StopRules,
  StrategyDescription,
  VersionRecord,
};

/**
 * The project the console shows (issue 21): its per-project routes go to /api/projects/<id>/…, and its live feed is
 * /admin/projects/<id>; the default project keeps the plain /api/… routes and /admin.
 */
let project = 'default';
export function useProject(id: string): void {
  project = id;
}
export const currentProject = (): string => project;
/** `path` of a per-project route, for the selected project */
const p = (path: string): string => (project === 'default' ? path : `/projects/${encodeURIComponent(project)}${path}`);
/** the socket.io namespace of the selected project's live feed */
export const feedNamespace = (): string => (project === 'default' ? '/admin' : `/admin/projects/${project}`);

/** An /api error with the coordinator's code ("UNAUTHORIZED", "CONFLICT", …) and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(`/api${path}`, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = (await r.json().catch(() => null)) as Partial<ApiErrorBody> | null;
  if (!r.ok) {
    const e = data?.error;
    throw new ApiError(r.status, e?.code ?? 'INTERNAL', e?.message ?? `HTTP ${r.status}`);
  }
  return data as T;
}

export const api = {
  /** the bootstrap token or a user's API token, or a username and password */
  login: (credentials: RouteBody<'POST /login'>) => call<{ ok: true; actor: string; role: Role }>('POST', '/login', credentials),
  me: () => call<Me>('GET', '/me'),
  audit: () => call<AuditList>('GET', '/audit?limit=200'),
  auditVerify: () => call<AuditVerification>('GET', '/audit/verify'),
  users: () => call<PublicUser[]>('GET', '/users'),
  createUser: (body: RouteBody<'POST /users'>) => call<PublicUser>('POST', '/users', body),
  changeUser: (username: string, body: RouteBody<'PUT /users/:username'>) =>
    call<PublicUser>('PUT', `/users/${encodeURIComponent(username)}`, body),
  setPassword: (username: string, password: string) =>
    call<PublicUser>('POST', `/users/${encodeURIComponent(username)}/password`, { password } satisfies RouteBody<'POST /users/:username/password'>),
  issueToken: (username: string) => call<IssuedToken>('POST', `/users/${encodeURIComponent(username)}/token`),
  logout: () => call<{ ok: true }>('POST', '/logout'),
  projects: () => call<ProjectRow[]>('GET', '/projects'),
  status: () => call<Status>('GET', p('/status')),
  sites: () => call<SiteRow[]>('GET', p('/sites')),
  enroll: (name: string) => call<CreatedSite>('POST', p('/sites'), { name } satisfies RouteBody<'POST /sites'>),
  revoke: (id: string) => call<SiteRow>('DELETE', p(`/sites/${encodeURIComponent(id)}`)),
  start: () => call<unknown>('POST', p('/federation/start')),
  pause: () => call<unknown>('POST', p('/federation/pause')),
  settings: () => call<Settings>('GET', p('/settings')),
  strategies: () => call<StrategyDescription[]>('GET', '/strategies'),
  saveSettings: (patch: RouteBody<'PUT /settings'>) => call<Settings>('PUT', p('/settings'), patch),
  rounds: () => call<RoundRecord[]>('GET', p('/rounds')),
  privacy: () => call<PrivacyReport>('GET', p('/privacy')),
  versions: () => call<VersionList>('GET', p('/versions')),
  promote: (id: string) => call<unknown>('POST', p(`/versions/${encodeURIComponent(id)}/promote`)),
  approve: (id: string, reason: string) =>
    call<VersionRecord>('POST', p(`/versions/${encodeURIComponent(id)}/approve`), { reason } satisfies RouteBody<'POST /versions/:id/approve'>),
  reject: (id: string, reason: string) =>
    call<VersionRecord>('POST', p(`/versions/${encodeURIComponent(id)}/reject`), { reason } satisfies RouteBody<'POST /versions/:id/reject'>),
  /** a masked-LM version folded into a new base (issue 24; admin) */
  merge: (id: string) => call<MergedBase>('POST', p(`/versions/${encodeURIComponent(id)}/merge`)),
};

/** Download links: same origin, so the cookie authorizes them like any other /api call. */
export const downloads = (id: string) => ({
  peftConfig: `/api${p(`/versions/${encodeURIComponent(id)}/peft`)}?file=adapter_config.json`,
  peftWeights: `/api${p(`/versions/${encodeURIComponent(id)}/peft`)}?file=adapter_model.safetensors`,
  native: `/api${p(`/versions/${encodeURIComponent(id)}/native`)}`,
});
