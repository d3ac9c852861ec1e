// The console's REST client: same-origin fetch that carries the HttpOnly session cookie (never the token itself,
// which the page holds only while the login form is submitted), and the shapes of what /api answers (docs/API.md).

import type { RoundRecord, VersionRecord } from '../../src/registry/types';
import type { RoundSettings, StopRules } from '../../src/rounds/settings';
import type { FederationState } from '../../src/rounds/federation';
import type { RoundStage } from '@fedlora/shared/protocol/messages.ts';
import type { StrategyDescription } from '@fedlora/shared/aggregation/registry.ts';

export type { RoundRecord, VersionRecord, RoundSettings, StopRules, FederationState, RoundStage, StrategyDescription };

export interface SiteRow {
  id: string;
  name: string;
  createdAt: string;
  enrolledAt: string | null;
  revokedAt: string | null;
  online: boolean;
  ready: boolean;
  numExamples?: number;
  backend?: string;
  lastSeen: string | null;
  roundsContributed: number;
  lastError: { code: string; round: number; at: string } | null;
}

export interface Status {
  state: FederationState;
  finishedReason: string | null;
  strategy: string;
  currentVersionId: string | null;
  lastRound: number;
  round: {
    round: number;
    roundId: string;
    stage: RoundStage;
    sampled: number;
    delivered: number;
    deadline: number | null;
  } | null;
  sitesAvailable: number;
  sitesEnrolled: number;
  sitesOnline: number;
  settings: RoundSettings;
  stop: StopRules;
}

/** GET /api/settings: the round settings (every strategy's options under strategyOptions), stop rules, strategy */
export type Settings = RoundSettings & StopRules & { strategy: string };

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
  const data = (await r.json().catch(() => null)) as { error?: { code: string; message: string } } | null;
  if (!r.ok) {
    const e = data?.error;
    throw new ApiError(r.status, e?.code ?? 'INTERNAL', e?.message ?? `HTTP ${r.status}`);
  }
  return data as T;
}

export const api = {
  login: (token: string) => call<{ ok: true }>('POST', '/login', { token }),
  logout: () => call<{ ok: true }>('POST', '/logout'),
  status: () => call<Status>('GET', '/status'),
  sites: () => call<SiteRow[]>('GET', '/sites'),
  enroll: (name: string) =>
    call<{ siteId: string; name: string; joinToken: string }>('POST', '/sites', { name }),
  revoke: (id: string) => call<SiteRow>('DELETE', `/sites/${encodeURIComponent(id)}`),
  start: () => call<unknown>('POST', '/federation/start'),
  pause: () => call<unknown>('POST', '/federation/pause'),
  settings: () => call<Settings>('GET', '/settings'),
  strategies: () => call<StrategyDescription[]>('GET', '/strategies'),
  saveSettings: (patch: Record<string, unknown>) => call<Settings>('PUT', '/settings', patch),
  rounds: () => call<RoundRecord[]>('GET', '/rounds'),
  versions: () => call<{ currentId: string | null; versions: VersionRecord[] }>('GET', '/versions'),
  promote: (id: string) => call<unknown>('POST', `/versions/${encodeURIComponent(id)}/promote`),
};

/** Download links: same origin, so the cookie authorizes them like any other /api call. */
export const downloads = (id: string) => ({
  peftConfig: `/api/versions/${encodeURIComponent(id)}/peft?file=adapter_config.json`,
  peftWeights: `/api/versions/${encodeURIComponent(id)}/peft?file=adapter_model.safetensors`,
  native: `/api/versions/${encodeURIComponent(id)}/native`,
});
