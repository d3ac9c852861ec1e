// The admin REST API's contract (docs/API.md), declared once: for each route the role it needs, the audit action it
// records, and a zod schema for its params, query and body (ADMIN_ROUTES), and the shapes of what the routes answer. api.ts registers every route from ADMIN_ROUTES, so no
// request reaches a handler unchecked, and an unknown field is refused rather than ignored. The console
// (web/src/api.ts) takes its types from here and from nowhere else in the coordinator.

import type { RoundTrigger } from '../rounds/schedule';
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
  TaskKind,
  VersionRecord,
} from '../registry/types';
import type { MergedBase } from '../registry/merged-bases';
import type { PrivacyReport } from '../rounds/privacy-budget';
import type { AdminServerEvents } from '../socket/admin-events';
import { ROLES, UsernameSchema, type PublicUser, type Role, type RouteRole } from '../users/types';
import { PASSWORD_MAX, PASSWORD_MIN } from '../users/password';
import type { AuditEntry } from '../audit/chain';
import { ProjectIdSchema, ProjectSpecSchema } from '../projects/project-spec';

// GET /rounds answers RoundRecord[] (with its mode, secureAggregation, selected and privacy) and GET /privacy a
// PrivacyReport; the registry and the privacy budget declare them, the console reads them from here
export type {
  AdminServerEvents,
  AuditEntry,
  PublicUser,
  Role,
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

/**
 * POST /login: the bootstrap token or a user's API token, or a username and password. A missing or wrong credential
 * is 401 like any wrong one; only a value that is not a string (or is far too long) is 400.
 */
export const LoginBody = z
  .object({
    token: z.string().max(4096).optional(),
    username: z.string().max(64).optional(),
    password: z.string().max(4096).optional(),
  })
  .strict();

const PASSWORD = `must be a string of ${PASSWORD_MIN}-${PASSWORD_MAX} characters`;
const Password = z.string({ error: PASSWORD }).min(PASSWORD_MIN, { error: PASSWORD }).max(PASSWORD_MAX, { error: PASSWORD });
const RoleField = z.enum(ROLES, { error: `must be one of ${ROLES.join(', ')}` });
/** the projects an operator or viewer may act on; null: every project (issue 21) */
const ProjectsField = z.array(ProjectIdSchema).max(1000).nullable();
export const UserParams = z.object({ username: UsernameSchema }).strict();
/** POST /users: a new user with a role and, optionally, a password (an API token is issued separately). */
export const CreateUserBody = z
  .object({ username: UsernameSchema, role: RoleField, password: Password.optional(), projects: ProjectsField.optional() })
  .strict();
/** PUT /users/:username: change the role, or disable (and enable again) */
export const ChangeUserBody = z
  .object({ role: RoleField.optional(), disabled: z.boolean({ error: 'must be true or false' }).optional(), projects: ProjectsField.optional() })
  .strict();
export const PasswordBody = z.object({ password: Password }).strict();

const AUDIT_PAGE_MAX = 1000;
const Count = (what: string) =>
  z
    .string({ error: what })
    .regex(/^[1-9]\d{0,8}$/, { error: what })
    .transform(Number);
/** GET /audit: newest first, `limit` entries (default 100) before seq `before` */
export const AuditQuery = z
  .object({
    limit: Count(`must be an integer in [1, ${AUDIT_PAGE_MAX}]`)
      .refine((n) => n <= AUDIT_PAGE_MAX, { error: `must be an integer in [1, ${AUDIT_PAGE_MAX}]` })
      .optional(),
    before: Count('must be a positive integer (an entry seq)').optional(),
  })
  .strict();

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

/** POST /projects: a new project (projects/project-spec.ts) */
export const CreateProjectBody = ProjectSpecSchema;
/** the :project of /projects/:project/… (the default project is also served without the prefix) */
export const ProjectParams = z.object({ project: ProjectIdSchema }).strict();

/** PUT /settings: any subset of the settings and stop rules, the strategy, and strategy options (rounds/settings.ts). */
export const SettingsBody = SettingsPatchSchema;

export interface RouteSchemas {
  /** the least role that may call the route (users/types.ts); 'public' only for login and logout */
  role: RouteRole;
  /** the audit action an attempt records (audit/chain.ts), or absent for reads */
  audit?: string;
  /**
   * the route acts on one project (issue 21): served at /api/projects/:project/<path> for every project, and at
   * /api/<path> for the default one; a user not assigned to the project gets 403, an unknown project 404
   */
  project?: true;
  params?: z.ZodType;
  query?: z.ZodType;
  /** absent: the route takes no body (none, or {}) */
  body?: z.ZodType;
}

/** Every admin route ("METHOD /path" under /api) with the schemas of its input; what a route leaves out must be empty. */
export const ADMIN_ROUTES = {
  'POST /login': { role: 'public', audit: 'login', body: LoginBody },
  'POST /logout': { role: 'public', audit: 'logout' },
  'GET /me': { role: 'viewer' },
  'GET /status': { project: true, role: 'viewer' },
  'POST /sites': { project: true, role: 'operator', audit: 'site.create', body: CreateSiteBody },
  'GET /sites': { project: true, role: 'viewer' },
  'DELETE /sites/:id': { project: true, role: 'operator', audit: 'site.revoke', params: SiteParams },
  'POST /federation/start': { project: true, role: 'operator', audit: 'federation.start' },
  'POST /federation/pause': { project: true, role: 'operator', audit: 'federation.pause' },
  'GET /strategies': { role: 'viewer' },
  'GET /settings': { project: true, role: 'viewer' },
  'PUT /settings': { project: true, role: 'admin', audit: 'settings.change', body: SettingsBody },
  'GET /rounds': { project: true, role: 'viewer' },
  'GET /privacy': { project: true, role: 'viewer' },
  'GET /versions': { project: true, role: 'viewer' },
  'GET /versions/:id': { project: true, role: 'viewer', params: VersionParams },
  'POST /versions/:id/promote': { project: true, role: 'operator', audit: 'version.promote', params: VersionParams, body: PromoteBody },
  'POST /versions/:id/approve': { project: true, role: 'operator', audit: 'version.approve', params: VersionParams, body: DecisionBody },
  'POST /versions/:id/reject': { project: true, role: 'operator', audit: 'version.reject', params: VersionParams, body: DecisionBody },
  'GET /versions/:id/native': { project: true, role: 'viewer', params: VersionParams },
  'GET /versions/:id/peft': { project: true, role: 'viewer', params: VersionParams, query: PeftQuery },
  'POST /versions/:id/merge': { project: true, role: 'admin', audit: 'version.merge', params: VersionParams },
  'GET /bases': { project: true, role: 'viewer' },
  'GET /users': { role: 'admin' },
  'POST /users': { role: 'admin', audit: 'user.create', body: CreateUserBody },
  'PUT /users/:username': { role: 'admin', audit: 'user.change', params: UserParams, body: ChangeUserBody },
  'POST /users/:username/password': { role: 'admin', audit: 'user.password', params: UserParams, body: PasswordBody },
  'POST /users/:username/token': { role: 'admin', audit: 'user.token', params: UserParams },
  'GET /audit': { role: 'viewer', query: AuditQuery },
  'GET /audit/export': { role: 'viewer' },
  'GET /audit/verify': { role: 'viewer' },
  'GET /projects': { role: 'viewer' },
  'POST /projects': { role: 'admin', audit: 'project.create', body: CreateProjectBody },
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
  /** why the rounds now running started (null when none runs) */
  trigger: RoundTrigger | null;
  /** continual re-training: the schedule and its next run, the data trigger and the sites that meet it */
  retraining: {
    schedule: string | null;
    nextScheduledAt: string | null;
    dataTrigger: { minSites: number; minNew: number } | null;
    sitesWithNewData: number | null;
  };
  sitesEnrolled: number;
  sitesOnline: number;
  settings: RoundSettings;
  stop: StopRules;
  /** the coordinator's id and the fingerprint of its signing key, which every join token carries (issue 21) */
  coordinator: { id: string; fingerprint: string };
  /** what the project trains (issue 24): a classifier, or masked-LM domain adaptation ('mlm') */
  task: TaskKind;
}

/** POST /versions/:id/merge and GET /bases: a base made by merging a masked-LM version (registry/merged-bases.ts) */
export type { MergedBase };

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

/** GET /me: who the caller is */
export interface Me {
  actor: string;
  role: Role;
  /** null: the bootstrap admin token */
  user: string | null;
  /** the projects the caller may act on; null: every project */
  projects: string[] | null;
}

/** GET /projects: the projects the caller may see (POST /projects answers one) */
export interface ProjectRow {
  id: string;
  /** the socket.io namespace its sites connect to ('/' for the default project) */
  namespace: string;
  modelId: string;
  labels: string[];
  state: FederationState;
  strategy: string;
  currentVersionId: string | null;
  sitesEnrolled: number;
}

/** POST /users/:username/token: the new API token, shown once (only its SHA-256 is stored) */
export interface IssuedToken {
  username: string;
  token: string;
}

/** GET /audit */
export interface AuditList {
  total: number;
  /** newest first */
  entries: AuditEntry[];
}

/** GET /audit/verify: the chain check (audit/chain.ts verifyAuditChain) */
export type AuditVerification =
  | { ok: true; entries: number; headHash: string }
  | { ok: false; entries: number; seq: number; reason: string };

/** Every /api error: a code from errors.ts and a message that names the offending field where there is one. */
export interface ApiErrorBody {
  error: { code: string; message: string };
}
