// The admin REST API (docs/API.md), /healthz and the console's static files. Everything under /api but login and
// logout needs `Authorization: Bearer <token>` (the bootstrap admin token, constant-time, or a user's API token) or
// the console's session cookie from POST /api/login, and the role its route declares in ADMIN_ROUTES (401 without a
// caller, 403 FORBIDDEN for a role too weak); a route that declares an audit action appends one entry per attempt to
// the audit log (audit/), with the caller and the outcome. Errors are JSON {error: {code, message}} with a status derived from the code. At the edge: writes that rely on the
// cookie must come from the coordinator's own origin (origin-check.ts), logins are rate-limited (login-limits.ts), and
// every route's params, query and body are parsed with its schema (admin-schemas.ts) before its handler runs.

import { pinnedJoinToken } from '@fedlora/shared/protocol/join-token.ts';
import { z } from 'zod';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { FedloraError, describeError, isFedloraError, type FedloraErrorCode } from '@fedlora/shared/errors.ts';
import { parseFields } from '@fedlora/shared/schema-fields.ts';
import { describeStrategies } from '@fedlora/shared/aggregation/index.ts';
import { exportPeft } from '@fedlora/shared/lora/peft.ts';
import type { Logger } from '../log';
import { AdminSessions } from './session';
import { Authenticator, mayUseProject, type Principal } from '../users/auth';
import { roleAllows, type UserStore } from '../users/types';
import type { AuditStore } from '../audit/audit-log';
import type { AuditInput } from '../audit/chain';
import { userRoutes } from './user-routes';
import { auditRoutes } from './audit-routes';
import { projectRoutes } from './project-routes';
import type { Project } from '../projects/project';
import type { ProjectHost } from '../projects/project-host';
import { DEFAULT_PROJECT_ID } from '../projects/project-spec';
import { cookieWriteOriginCheck } from './origin-check';
import {
  DEFAULT_LOGIN_LIMITS,
  LoginLockout,
  loginAddress,
  loginLockoutCheck,
  loginRateLimit,
  type LoginLimits,
} from './login-limits';
import {
  ADMIN_ROUTES,
  ProjectParams,
  type AdminRoute,
  type CreatedSite,
  type RouteInput,
  type RouteSchemas,
  type Settings,
  type SiteRow,
  type Status,
  type VersionList,
  type Me,
  type MergedBase,
} from './admin-schemas';
import { consoleRoutes } from './console';
import { sitePageRoutes } from './site-page';
import { oidcRoutes } from './oidc-routes';
import type { OidcLogin } from '../users/oidc';

export interface ApiDeps {
  adminToken: string;
  /** every project (issue 21): the per-project routes act on the one their path names, the default one without */
  projects: ProjectHost;
  log: Logger;
  /** console sessions, shared with the /admin namespace (default: a fresh store for this token) */
  sessions?: AdminSessions;
  /** built console files (default coordinator/dist/console) */
  consoleDir?: string;
  /** origins besides the coordinator's own whose cookie-authenticated writes are accepted (normalized, no slash) */
  allowedOrigins?: readonly string[];
  /** POST /api/login rate limit and lockout (default DEFAULT_LOGIN_LIMITS) */
  loginLimits?: LoginLimits;
  /** console users and their roles */
  users: UserStore;
  /** the audit trail every audited route appends to */
  audit: AuditStore;
  /** the coordinator's id and signing-key fingerprint: in GET /status, and pinned by every join token */
  coordinator: { id: string; fingerprint: string };
  /** OpenID Connect sign-in for the console (--oidc-issuer); absent: username/password and tokens only */
  oidc?: OidcLogin;
}

/** What a route's handler gets besides its input: the caller, and what its audit entry should say. */
export interface RouteContext {
  /** null only on the public routes (login, logout) */
  principal: Principal | null;
  /** the project the route acts on: the one its path names, else the default project (audit entries record it) */
  project: Project;
  /** the audit entry's target when the route's params do not name it (a new site's id) */
  target?: string;
  /** context for the audit entry (never a secret) */
  detail?: string;
  /** the caller, when a public route learns it (login) */
  as?: Pick<AuditInput, 'actor' | 'role'>;
}

/** Registers one route of ADMIN_ROUTES (see createApi). */
export type RegisterRoute = <R extends AdminRoute>(
  route: R,
  before: RequestHandler[],
  handler: (input: RouteInput<R>, req: Request, res: Response, ctx: RouteContext) => unknown,
) => void;

const STATUS: Partial<Record<FedloraErrorCode, number>> = {
  BAD_MESSAGE: 400,
  CONFIG_INVALID: 400,
  UNAUTHORIZED: 401,
  CROSS_ORIGIN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  FORBIDDEN: 403,
  // a cluster follower: the leader acts on start, pause, settings and promote
  BUSY: 503,
};

const NO_FIELDS = z.object({}).strict();

/** The route's params, query and body, each parsed with its schema; BAD_MESSAGE naming the field otherwise. */
function parseRequest<R extends AdminRoute>(route: R, req: Request): RouteInput<R> {
  const schemas: RouteSchemas = ADMIN_ROUTES[route];
  const part = (name: 'params' | 'query' | 'body', value: unknown, what: string) =>
    parseFields(schemas[name] ?? NO_FIELDS, value, {
      code: 'BAD_MESSAGE',
      root: name,
      unknown: (k) => {
        const known = Object.keys((schemas[name] as z.ZodObject | undefined)?.shape ?? {});
        return `${k} is not ${what} of ${route} (known: ${known.join(', ') || 'none'})`;
      },
    });
  // the project a route's path names was resolved before (createApi's `on`); the route's own params are the rest
  const { project: _project, ...params } = req.params as Record<string, string>;
  return {
    params: part('params', params, 'a parameter'),
    query: part('query', req.query, 'a query parameter'),
    // no body and an empty one are the same (a client need not send {} to a route that takes nothing)
    body: part('body', req.body ?? {}, 'a field'),
  } as RouteInput<R>;
}

const UNAUTHORIZED_MESSAGE = 'missing or wrong credentials (Authorization: Bearer <token>, or log in to the console)';

/** A Bearer token or a live console session cookie of an enabled user (or of the bootstrap token); else 401. */
export function adminAuth(auth: Authenticator, log: Logger) {
  return async (req: Request, res: Response, next: NextFunction) => {
    if (await auth.principal({ authorization: req.get('authorization'), cookie: req.get('cookie') })) return next();
    log('admin.unauthorized', { method: req.method, path: req.path });
    res.status(401).json({ error: { code: 'UNAUTHORIZED', message: UNAUTHORIZED_MESSAGE } });
  };
}

export function createApi(d: ApiDeps): express.Express {
  const app = express();
  const defaultProject = () => d.projects.get(DEFAULT_PROJECT_ID) as Project;
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, state: defaultProject().federation.state });
  });

  app.use(cookieWriteOriginCheck(d.allowedOrigins ?? [], d.log));

  const sessions = d.sessions ?? new AdminSessions(d.adminToken);
  const auth = new Authenticator(sessions, d.users);
  const loginLimits = d.loginLimits ?? DEFAULT_LOGIN_LIMITS;
  const lockout = new LoginLockout(loginLimits);
  if (d.oidc) app.use('/auth/oidc', oidcRoutes({ oidc: d.oidc, sessions, users: d.users, audit: d.audit, log: d.log, loginLimits }));
  const api = express.Router();
  api.use(express.json({ limit: '64kb' }));
  /**
   * Registers a route of ADMIN_ROUTES: `before` runs first (rate limits count malformed requests too), then the
   * caller is authenticated and its role checked against the route's, then the request is parsed with the route's
   * schemas, and only then does the handler see it. A route with an audit action appends one entry per attempt by a
   * known caller: "ok", "forbidden", or the code of the error that refused it.
   */
  const on: RegisterRoute = (route, before, handler) => {
    const spec: RouteSchemas = ADMIN_ROUTES[route];
    const [method, path] = route.split(' ') as ['GET' | 'POST' | 'PUT' | 'DELETE', string];
    const verb = ({ GET: 'get', POST: 'post', PUT: 'put', DELETE: 'delete' } as const)[method];
    /** the route's handling, for the default project (`scoped` false) or the one /projects/:project names */
    const serve = (scoped: boolean) => async (req: Request, res: Response) => {
      const ctx: RouteContext = { principal: null, project: defaultProject() };
      const record = async (outcome: string) => {
        const who = ctx.as ?? ctx.principal;
        if (!spec.audit || !who) return;
        const params = req.params as Record<string, string | undefined>;
        await d.audit.append({
          project: ctx.project.id,
          actor: who.actor,
          role: who.role,
          action: spec.audit,
          target: ctx.target ?? params.id ?? params.username ?? spec.audit.split('.')[0],
          outcome,
          ...(ctx.detail !== undefined ? { detail: ctx.detail } : {}),
        });
      };
      if (spec.role !== 'public') {
        ctx.principal = await auth.principal({ authorization: req.get('authorization'), cookie: req.get('cookie') });
        if (!ctx.principal) {
          d.log('admin.unauthorized', { method: req.method, path: req.path });
          throw new FedloraError('UNAUTHORIZED', UNAUTHORIZED_MESSAGE);
        }
        if (scoped) {
          // a project id that is not well-formed names no project either: 404 alike
          const named = (req.params as { project?: string }).project ?? '';
          const project = ProjectParams.safeParse({ project: named }).success ? d.projects.get(named) : undefined;
          if (!project) throw new FedloraError('NOT_FOUND', `no project ${named.slice(0, 64)}`);
          ctx.project = project;
        }
        if (!roleAllows(ctx.principal.role, spec.role)) {
          await record('forbidden');
          throw new FedloraError('FORBIDDEN', `${route} needs the ${spec.role} role; ${ctx.principal.actor} is ${ctx.principal.role}`);
        }
        if (spec.project && !mayUseProject(ctx.principal, ctx.project.id)) {
          await record('forbidden');
          throw new FedloraError('FORBIDDEN', `${ctx.principal.actor} is not assigned to project ${ctx.project.id}`);
        }
      }
      try {
        await handler(parseRequest(route, req) as never, req, res, ctx);
      } catch (err) {
        await record(isFedloraError(err) ? err.code : 'INTERNAL');
        throw err;
      }
      await record('ok');
    };
    api[verb](path, ...before, serve(false));
    if (spec.project) api[verb](`/projects/:project${path}`, ...before, serve(true));
  };

  // the two routes that do not need a session: trading a credential for one, and dropping one
  on('POST /login', [loginRateLimit(loginLimits, d.log), loginLockoutCheck(lockout)], async ({ body }, req, res, ctx) => {
    const address = loginAddress(req);
    // the target is the account tried: a username that exists, else a placeholder (a mistyped password in the
    // username field must not end up in the audit log)
    const known = body.username !== undefined && (await d.users.get(body.username)) !== undefined;
    ctx.target = body.username === undefined ? 'token' : known ? body.username : '(unknown user)';
    const who = await auth.login(body);
    if (!who) {
      ctx.as = { actor: 'anonymous', role: 'none' };
      const locked = lockout.failed(address);
      d.log('admin.login_refused', { address, locked: locked || undefined });
      throw new FedloraError('UNAUTHORIZED', body.username === undefined ? 'wrong token' : 'wrong username or password');
    }
    ctx.as = who;
    ctx.target = who.actor;
    lockout.succeeded(address);
    // behind a TLS-terminating proxy the coordinator itself sees http; only the browser's own request carries the
    // header, so trusting it here can only add the Secure flag, never remove it
    const https = req.secure || req.get('x-forwarded-proto') === 'https';
    res.set('Set-Cookie', sessions.cookie(await sessions.create(who.user), https));
    d.log('admin.login', { address, actor: who.actor });
    res.json({ ok: true, actor: who.actor, role: who.role });
  });
  on('POST /logout', [], async (_input, req, res, ctx) => {
    // whose session ends is recorded (a logout without a live session records nothing: there is no one to name)
    const who = await auth.principal({ cookie: req.get('cookie') });
    if (who) {
      ctx.as = who;
      ctx.target = who.actor;
    }
    await sessions.destroy(sessions.fromCookies(req.get('cookie')));
    res.set('Set-Cookie', sessions.clearCookie());
    res.json({ ok: true });
  });

  const version = async (p: Project, id: string) => {
    const v = await p.store.get(id);
    if (!v) throw new FedloraError('NOT_FOUND', `no version ${id}`);
    return v;
  };
  const settings = ({ federation }: Project): Settings => ({
    ...federation.settings,
    ...federation.stop,
    strategy: federation.status().strategy,
  });

  on('GET /me', [], (_input, _req, res, ctx) => {
    const p = ctx.principal as Principal;
    res.json({ actor: p.actor, role: p.role, user: p.user, projects: p.projects } satisfies Me);
  });

  on('GET /status', [], async (_input, _req, res, ctx) => {
    const sites = await ctx.project.sites.list();
    const status: Status = {
      ...ctx.project.federation.status(),
      sitesEnrolled: sites.filter((s) => s.enrolledAt && !s.revokedAt).length,
      sitesOnline: sites.filter((s) => ctx.project.presence.isOnline(s.id)).length,
      settings: ctx.project.federation.settings,
      stop: ctx.project.federation.stop,
      coordinator: d.coordinator,
      task: ctx.project.task,
    };
    res.json(status);
  });

  on('POST /sites', [], async ({ body }, _req, res, ctx) => {
    const { site, joinToken, reenrolled } = await ctx.project.sites.create(body.name);
    ctx.target = site.id;
    d.log('site.created', { site: site.id, reenrolled: reenrolled || undefined });
    // the site pins the fingerprint and checks the coordinator holds that key before it sends the secret part
    res.status(201).json({ siteId: site.id, name: site.name, joinToken: pinnedJoinToken(joinToken, d.coordinator.fingerprint, ctx.project.id) } satisfies CreatedSite);
  });
  on('GET /sites', [], async (_input, _req, res, ctx) => {
    const rows: SiteRow[] = (await ctx.project.sites.list()).map((s) => ({
      ...s,
      ...ctx.project.presence.status(s.id),
      ...ctx.project.activity.get(s.id),
    }));
    res.json(rows);
  });
  on('DELETE /sites/:id', [], async ({ params }, _req, res, ctx) => {
    const site = await ctx.project.sites.revoke(params.id);
    ctx.project.presence.disconnect(site.id);
    d.log('site.revoked', { site: site.id });
    res.json(site);
  });

  on('POST /federation/start', [], (_input, _req, res, ctx) => {
    try {
      ctx.project.federation.start();
    } catch (err) {
      throw new FedloraError('CONFLICT', describeError(err), { cause: err });
    }
    res.json(ctx.project.federation.status());
  });
  on('POST /federation/pause', [], (_input, _req, res, ctx) => {
    ctx.project.federation.pause();
    res.json(ctx.project.federation.status());
  });

  // the strategies and their options as their schemas declare them (the console's form is built from this)
  on('GET /strategies', [], (_input, _req, res) => {
    res.json(describeStrategies());
  });
  on('GET /settings', [], (_input, _req, res, ctx) => {
    res.json(settings(ctx.project));
  });
  on('PUT /settings', [], async ({ body }, _req, res, ctx) => {
    ctx.detail = Object.keys(body).sort().join(',');
    await ctx.project.federation.updateSettings(body);
    res.json(settings(ctx.project));
  });

  on('GET /rounds', [], async (_input, _req, res, ctx) => {
    res.json(await ctx.project.store.rounds());
  });
  // client-level DP: ε spent so far and per round (rounds/privacy-budget.ts)
  on('GET /privacy', [], (_input, _req, res, ctx) => {
    res.json(ctx.project.federation.privacyReport());
  });
  on('GET /versions', [], async (_input, _req, res, ctx) => {
    res.json({ currentId: await ctx.project.store.currentId(), versions: await ctx.project.store.list() } satisfies VersionList);
  });
  on('GET /versions/:id', [], async ({ params }, _req, res, ctx) => {
    res.json(await version(ctx.project, params.id));
  });
  // the decision records its actor: a username or "bootstrap-token", never a secret
  const actor = (ctx: RouteContext) => (ctx.principal as Principal).actor;
  on('POST /versions/:id/promote', [], async ({ params, body }, _req, res, ctx) => {
    ctx.detail = body.reason;
    await version(ctx.project, params.id);
    res.json(await ctx.project.federation.promote(params.id, { actor: actor(ctx), reason: body.reason }));
  });
  // promotion and approval: an operator's verdict on a candidate, with the reason recorded (rounds/promotion.ts)
  on('POST /versions/:id/approve', [], async ({ params, body }, _req, res, ctx) => {
    ctx.detail = body.reason;
    await version(ctx.project, params.id);
    res.json(await ctx.project.federation.approve(params.id, actor(ctx), body.reason));
  });
  on('POST /versions/:id/reject', [], async ({ params, body }, _req, res, ctx) => {
    ctx.detail = body.reason;
    await version(ctx.project, params.id);
    res.json(await ctx.project.federation.reject(params.id, actor(ctx), body.reason));
  });
  on('GET /versions/:id/native', [], async ({ params }, _req, res, ctx) => {
    const v = await version(ctx.project, params.id);
    res
      .type('application/octet-stream')
      .set('Content-Disposition', `attachment; filename="${v.id}.fedlora-adapter"`)
      .set('X-Content-SHA256', v.sha256);
    res.send(Buffer.from(await ctx.project.store.loadNative(v.id)));
  });
  on('GET /versions/:id/peft', [], async ({ params, query }, _req, res, ctx) => {
    const v = await version(ctx.project, params.id);
    const peft = exportPeft(ctx.project.model.lora, await ctx.project.store.loadState(v.id), {
      baseModel: ctx.project.model.modelId,
      labels: ctx.project.model.labels,
      family: ctx.project.model.modelFamily,
    });
    res.set('Content-Disposition', `attachment; filename="${query.file}"`);
    if (query.file === 'adapter_config.json') res.json(peft.adapterConfig);
    else res.type('application/octet-stream').send(Buffer.from(peft.weights));
  });

  // a masked-LM version folded into the base: a new base directory in the data dir, with its hash and lineage
  on('POST /versions/:id/merge', [], async ({ params }, _req, res, ctx) => {
    const bases = ctx.project.bases;
    if (!bases) throw new FedloraError('CONFLICT', 'only a masked-LM federation (--task mlm) merges versions into a new base');
    const merged = await bases.merge(params.id);
    ctx.detail = `base ${merged.sha256.slice(0, 16)} in ${merged.dir}`;
    d.log('version.merged', { id: params.id, sha256: merged.sha256.slice(0, 16), dir: merged.dir });
    res.json(merged satisfies MergedBase);
  });
  on('GET /bases', [], async (_input, _req, res, ctx) => {
    res.json((ctx.project.bases?.list() ?? []) satisfies MergedBase[]);
  });

  userRoutes(on, { users: d.users, log: d.log });
  auditRoutes(on, { audit: d.audit });
  projectRoutes(on, { projects: d.projects, log: d.log });
  // any other path under /api: 401 without a caller (as before users existed), 404 with one
  api.use(adminAuth(auth, d.log));

  app.use('/api', api);
  app.use('/site', sitePageRoutes());
  app.use(consoleRoutes(d.consoleDir));
  app.use((_req: Request, res: Response) => {
    res.status(404).json({ error: { code: 'NOT_FOUND', message: 'no such route' } });
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    let status = 500;
    let code = 'INTERNAL';
    let message = 'internal error';
    if (isFedloraError(err) && STATUS[err.code])
      [status, code, message] = [STATUS[err.code] as number, err.code, err.message];
    else if ((err as { type?: string }).type === 'entity.parse.failed')
      [status, code, message] = [400, 'BAD_MESSAGE', 'body is not valid JSON'];
    else if ((err as { type?: string }).type === 'entity.too.large')
      [status, code, message] = [413, 'FRAME_TOO_LARGE', 'body too large'];
    // the router's and body parser's own refusals (a path parameter that is not valid percent-encoding, an
    // unsupported charset): the client's fault, so a 400 and never an INTERNAL (found by the fuzz of issue 18)
    else if (isClientHttpError(err))
      [status, code, message] = [400, 'BAD_MESSAGE', 'malformed request (path encoding or body charset)'];
    d.log(status >= 500 ? 'api.error' : 'api.rejected', {
      method: req.method,
      path: req.path,
      status,
      code,
      reason: describeError(err),
    });
    res.status(status).json({ error: { code, message } });
  });
  return app;
}

/** An error that express or body-parser raised with a 4xx status of their own. */
function isClientHttpError(err: unknown): boolean {
  const status = (err as { status?: unknown } | null)?.status;
  return typeof status === 'number' && status >= 400 && status < 500;
}

export { FedloraError };
