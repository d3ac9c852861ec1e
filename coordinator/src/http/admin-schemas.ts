// The admin REST API's contract (docs/API.md), declared once: a zod schema for each route's params, query and body
// (ADMIN_ROUTES), and the shapes of what the routes answer. api.ts registers every route from ADMIN_ROUTES, so no
// request reaches a handler unchecked, and an unknown field is refused rather than ignored. The console
// (web/src/api.ts) takes its types from here and from nowhere else in the coordinator.

import { z } from 'zod';
import { IdSchema } from '@fedlora/shared/protocol/schemas.ts';
import type { RoundStage } from '@fedlora/shared/protocol/messages.ts';
import type { StrategyDescription } from '@fedlora/shared/aggregation/registry.ts';
import { SettingsPatchSchema, type RoundSettings, type StopRules } from '../rounds/settings';
import type { FederationState } from '../rounds/federation';
import type {
  AggregationMode,
  RoundPrivacy,
  RoundRecord,
  RoundSecureAggregation,
  VersionRecord,
} from '../registry/types';
import type { PrivacyReport } from '../rounds/privacy-budget';
import type { AdminServerEvents } from '../socket/admin-events';

// GET /rounds answers RoundRecord[] (with its mode, secureAggregation, selected and privacy) and GET /privacy a
// PrivacyReport; the registry and the privacy budget declare them, the console reads them from here
export type {
  AdminServerEvents,
  AggregationMode,
  FederationState,
  PrivacyReport,
  RoundPrivacy,
  RoundRecord,
  RoundSecureAggregation,
  RoundSettings,
  RoundStage,
  StopRules,
  StrategyDescription,
  VersionRecord,
};

// ---- requests ----

/** POST /login: a missing or wrong token is 401 like any wrong token; only a token that is not a string is 400. */
export const LoginBody = z.object({ token: z.string().max(4096).optional() }).strict();

const SITE_NAME = 'must be a non-empty string of at most 64 characters';
export const CreateSiteBody = z
  .object({
    name: z
      .string({ error: SITE_NAME })
      .max(64, { error: SITE_NAME })
      .refine((s) => s.trim().length > 0, { error: SITE_NAME }),
  })
  .strict();

export const SiteParams = z.object({ id: IdSchema }).strict();

export const VersionParams = z
  .object({ id: z.string().regex(/^v\d{1,9}$/, { error: 'must be a version id: v0, v1, …' }) })
  .strict();

/** Reason of an admin's decision about a version: required for approve and reject, recorded as given (trimmed). */
export const DECISION_REASON_MAX = 500;
const REASON = `must be a non-empty string of at most ${DECISION_REASON_MAX} characters`;
const Reason = z
  .string({ error: REASON })
  .trim()
  .min(1, { error: REASON })
  .max(DECISION_REASON_MAX, { error: REASON })
  // a reason is one line or a few for the record: no control characters besides tab and newline
  .refine((s) => ![...s].some((ch) => (ch < ' ' && ch !== '\t' && ch !== '\n') || ch === '\x7f'), {
    error: 'must not contain control characters',
  });
export const DecisionBody = z.object({ reason: Reason }).strict();
/** POST /versions/:id/promote: the reason is optional (promote predates approval; without one: "explicit promote") */
export const PromoteBody = z.object({ reason: Reason.optional() }).strict();

export const PEFT_FILES = ['adapter_config.json', 'adapter_model.safetensors'] as const;
export const PeftQuery = z
  .object({ file: z.enum(PEFT_FILES, { error: `must be ${PEFT_FILES.join(' or ')}` }) })
  .strict();

/** PUT /settings: any subset of the settings and stop rules, the strategy, and strategy options (rounds/settings.ts). */
export const SettingsBody = SettingsPatchSchema;

export interface RouteSchemas {
  params?: z.ZodType;
  query?: z.ZodType;
  /** absent: the route takes no body (none, or {}) */
  body?: z.ZodType;
}

/** Every admin route ("METHOD /path" under /api) with the schemas of its input; what a route leaves out must be empty. */
export const ADMIN_ROUTES = {
  'POST /login': { body: LoginBody },
  'POST /logout': {},
  'GET /status': {},
  'POST /sites': { body: CreateSiteBody },
  'GET /sites': {},
  'DELETE /sites/:id': { params: SiteParams },
  'POST /federation/start': {},
  'POST /federation/pause': {},
  'GET /strategies': {},
  'GET /settings': {},
  'PUT /settings': { body: SettingsBody },
  'GET /rounds': {},
  'GET /privacy': {},
  'GET /versions': {},
  'GET /versions/:id': { params: VersionParams },
  'POST /versions/:id/promote': { params: VersionParams, body: PromoteBody },
  'POST /versions/:id/approve': { params: VersionParams, body: DecisionBody },
  'POST /versions/:id/reject': { params: VersionParams, body: DecisionBody },
  'GET /versions/:id/native': { params: VersionParams },
  'GET /versions/:id/peft': { params: VersionParams, query: PeftQuery },
} as const satisfies Record<string, RouteSchemas>;

export type AdminRoute = keyof typeof ADMIN_ROUTES;

type Part<R extends AdminRoute, K extends keyof RouteSchemas> = (typeof ADMIN_ROUTES)[R] extends Record<
  K,
  infer S extends z.ZodType
>
  ? z.output<S>
  : Record<string, never>;

/** A route's checked input, as its handler gets it. */
export interface RouteInput<R extends AdminRoute> {
  params: Part<R, 'params'>;
  query: Part<R, 'query'>;
  body: Part<R, 'body'>;
}

/** What a client sends (before parsing: e.g. sitesPerRound as "0.5"). */
export type RouteBody<R extends AdminRoute> = (typeof ADMIN_ROUTES)[R] extends Record<'body', infer S extends z.ZodType>
  ? z.input<S>
  : never;

// ---- answers ----

/** GET /status */
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
  /** the coordinator's id and the fingerprint of its signing key, which every join token carries (issue 21) */
  coordinator: { id: string; fingerprint: string };
}

/** GET /settings and PUT /settings: the settings (every strategy's options under strategyOptions), stop rules, strategy */
export type Settings = RoundSettings & StopRules & { strategy: string };

/** GET /sites: one row per site, with its connection and activity */
export interface SiteRow {
  id: string;
  name: string;
  createdAt: string;
  enrolledAt: string | null;
  revokedAt: string | null;
  signingPublicKey: string | null;
  boxPublicKey: string | null;
  siteId: string;
  online: boolean;
  ready: boolean;
  numExamples?: number;
  backend?: string;
  lastSeen: string | null;
  roundsContributed: number;
  lastError: { code: string; round: number; at: string } | null;
}

/** POST /sites */
export interface CreatedSite {
  siteId: string;
  name: string;
  /** shown once; only its SHA-256 is stored. Ends in '~' and the coordinator's fingerprint, which the site pins */
  joinToken: string;
}

/** GET /versions */
export interface VersionList {
  currentId: string | null;
  versions: VersionRecord[];
}

/** Every /api error: a code from errors.ts and a message that names the offending field where there is one. */
export interface ApiErrorBody {
  error: { code: string; message: string };
}
