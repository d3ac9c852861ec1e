// Builds the whole coordinator from its dependencies (no env, no flags, no listening here: main.ts does that):
// the adapter store and site store (given, or the file registries on a Storage), the round loop, the site socket
// handlers, the admin REST API and the '/admin' socket.io namespace for live updates.

import { createServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { Server, type Namespace } from 'socket.io';
import { FedloraError, describeError } from '@fedlora/shared/errors.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import type { ModelFamily } from '@fedlora/shared/model/families.ts';
import type { LoraConfig } from '@fedlora/shared/lora/config.ts';
import type { Pooling } from '@fedlora/shared/model/classifier.ts';
import type { ManifestTask } from '@fedlora/shared/protocol/manifest.ts';
import { LIMITS } from '@fedlora/shared/protocol/limits.ts';
import { useNativeEd25519 } from '@fedlora/shared/node/native-ed25519.ts';
import { projectNamespace } from '@fedlora/shared/protocol/join-token.ts';
import { readJson, writeJson, type Storage } from './storage';
import { silentLogger, type Logger } from './log';
import type { AdapterStore } from './registry/types';
import type { SiteStore } from './sites/types';
import type { Federation, FederationDeps, FederationEvent } from './rounds/federation';
import { ClusterLink } from './cluster/cluster-link';
import { LeaderLease } from './cluster/leader-lease';
import type { Clock, Evaluator } from './rounds/types';
import { openProject, type ProjectEnv, type ProjectOptions } from './projects/project';
import { ProjectHost, type ProjectFactory } from './projects/project-host';
import { DEFAULT_PROJECT_ID } from './projects/project-spec';
import type { SiteServer } from './socket/presence';
import { roundRequests, type ModelFile } from './socket/site-handlers';
import { createApi } from './http/api';
import { AdminSessions, SESSION_TTL_MS, type SessionStore } from './http/session';
import { Authenticator, mayUseProject } from './users/auth';
import type { OidcLogin } from './users/oidc';
import { UserRegistry } from './users/registry';
import type { UserStore } from './users/types';
import { FileAuditLog, type AuditStore } from './audit/audit-log';
import { crossOriginReason } from './http/origin-check';
import { CoordinatorSigner, newSigningKeyRecord, parseSigningKeyRecord, type SigningKeyRecord } from './coordinator-key';
import type { KeyPair } from '@fedlora/shared/crypto/keys.ts';
import type { LoginLimits } from './http/login-limits';
import { ConnectionGate, type ConnectionGateOptions, type EngineConnection } from './socket/connection-gate';
import { PartBudget } from './socket/frame-assembly';
import { RejectionLog, type RejectionLogOptions } from './socket/rejection-log';
import type { AdminServerEvents } from './socket/admin-events';
import { CoordinatorMetrics, metricsSiteLabel } from './metrics';
import { countAdminDownload, isMetricsRequest, metricsRoute } from './http/metrics-route';
import { withRequestId } from './http/request-id';

/** The learning task: base model, adapter layout, labels, the initial state and the held-out evaluator. */
export interface CoordinatorTask {
  modelId: string;
  /** the base model's family: PEFT downloads name modules as it does (default bert) */
  modelFamily?: ModelFamily;
  modelFiles: readonly ModelFile[];
  lora: LoraConfig;
  labels: string[];
  pooling: Pooling;
  /** version 0's adapter state (seeded fresh LoRA + head) */
  initialState: () => NamedTensors | Promise<NamedTensors>;
  /** the central held-out evaluation; null: the coordinator holds no labelled data (federated evaluation only) */
  evaluator: Evaluator | null;
  /**
   * present: a masked-LM federation (issue 24): the manifest carries the task, `labels` is empty, versions are recorded
   * as 'mlm', and POST /api/versions/:id/merge folds one into `baseDir` (the served base), writing under `basesDir`
   */
  mlm?: ManifestTask & { baseDir: string; basesDir: string; tool: string };
}

/** bytes all sockets' unfinished parted uploads may hold at once: 16 full-size (32 MiB) updates */
export const DEFAULT_MAX_PARTED_BYTES = 16 * (LIMITS.maxFrameBytes + 64 * 1024);

export interface EdgeOptions {
  /** unauthenticated connections per address and the deadline to authenticate */
  connections?: Partial<ConnectionGateOptions>;
  /** per-peer budget of rejection log lines */
  rejectionLog?: Partial<RejectionLogOptions>;
  /** bytes all unfinished parted uploads may hold (default DEFAULT_MAX_PARTED_BYTES) */
  maxPartedBytes?: number;
}

/** The coordinator's options: its default project's (projects/project.ts ProjectOptions, but its id) and its own. */
export interface CoordinatorOptions extends Omit<ProjectOptions, 'id' | 'storage'> {
  adminToken: string;
  /** the coordinator's files (its id, site activity) and, unless given, its default project's adapter and site registries */
  storage: Storage;
  /** the coordinator id and base model record (default: coordinator.json on `storage`); shared by a cluster */
  identityStore?: IdentityStore;
  /** console sessions (default: this process's memory); shared by a cluster */
  sessionStore?: SessionStore;
  /** console users and roles (default: users.json on `storage`); shared by a cluster */
  userStore?: UserStore;
  /** the audit trail (default: audit.jsonl on `storage`); shared by a cluster */
  auditStore?: AuditStore;
  /**
   * several processes on one federation (cluster/): socket.io on Redis, rounds only while holding the Postgres lease.
   * The stores above must then be the shared (Postgres) ones.
   */
  cluster?: { redisUrl: string; pool: import('pg').Pool; nodeId: string; leasePollMs?: number; onLeaseLost?: (why: string) => void };
  /**
   * builds the projects besides the default one (POST /api/projects, and those projects.json names at startup) from
   * their specs; absent (and in a cluster): the coordinator hosts only its default project
   */
  projectFactory?: ProjectFactory;
  /** start running rounds as soon as the server listens (default true) */
  autostart?: boolean;
  log?: Logger;
  clock?: Clock;
  rng?: () => number;
  retryDelayMs?: number;
  /** crash tests: runs after each stage of a round (rounds/fault-hold.ts) */
  afterStage?: FederationDeps['afterStage'];
  /** serve HTTPS with this PEM certificate chain and key (default: plain HTTP, e.g. behind a TLS-terminating proxy) */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** the built admin console served at / (default coordinator/dist/console) */
  consoleDir?: string;
  /** limits at the socket edge, each with a default (docs/SECURITY.md) */
  edge?: EdgeOptions;
  /** origins besides the coordinator's own allowed to act with the console cookie (--allowed-origin, normalized) */
  allowedOrigins?: readonly string[];
  /** POST /api/login rate limit and lockout (default DEFAULT_LOGIN_LIMITS) */
  loginLimits?: LoginLimits;
  /** OpenID Connect sign-in for the console (--oidc-issuer; users/oidc.ts) */
  oidc?: OidcLogin;
  /**
   * GET /metrics on this server for `Bearer <token>` (absent: not served here; main.ts may serve it on its own port);
   * processMetrics adds prom-client's process_* and nodejs_* metrics
   */
  metrics?: { token?: string; processMetrics?: boolean };
}

export interface Coordinator {
  httpServer: HttpServer;
  io: SiteServer;
  /** the default project's federation and stores (the coordinator's own flags) */
  federation: Federation;
  store: AdapterStore;
  sites: SiteStore;
  /** every project, the default one included (projects/project-host.ts) */
  projects: ProjectHost;
  /** the Prometheus registry, fed from the coordinator's events (metrics.ts) */
  metrics: CoordinatorMetrics;
  /** the fingerprint of the coordinator's signing key (coordinator-key.ts), as join tokens carry it */
  fingerprint: string;
  /** listens (port 0 = any free port) and returns the base URL */
  listen(port?: number, host?: string): Promise<string>;
  readonly url: string | null;
  close(): Promise<void>;
}

/** A stable id for this coordinator (sites bind their challenge signatures to it), kept in the data dir. */
/** The base model as the data dir records it: its id and one SHA-256 over its files' (path, sha256) list. */
export interface BaseModelRecord {
  id: string;
  sha256: string;
}

export function baseModelRecord(task: Pick<CoordinatorTask, 'modelId' | 'modelFiles'>): BaseModelRecord {
  const listing = [...task.modelFiles]
    .sort((a, b) => (a.path < b.path ? -1 : 1))
    .map((f) => `${f.path}\t${f.sha256}\n`)
    .join('');
  return { id: task.modelId, sha256: createHash('sha256').update(listing).digest('hex') };
}

/**
 * A stable id for this coordinator (sites bind their challenge signatures to it), and the base model its adapters
 * were trained on, both kept in the data dir. Adapters belong to one base model: a data dir made with another one
 * (say version 1 of the shipped model) is refused with both hashes named, rather than retrained silently on the new
 * base. A data dir from before the base was recorded adopts the current one.
 */
async function coordinatorIdentity(ids: IdentityStore, base: BaseModelRecord, log: Logger): Promise<{ id: string; signingKey: KeyPair }> {
  const f = await ids.read();
  const recorded = f?.baseModel;
  if (recorded && recorded.sha256 !== base.sha256)
    throw new FedloraError(
      'HASH_MISMATCH',
      `the data dir (${ids.where}) holds adapters of base model ${recorded.id} (files sha256 ` +
        `${recorded.sha256.slice(0, 16)}…), but this coordinator serves ${base.id} (files sha256 ` +
        `${base.sha256.slice(0, 16)}…): adapters do not carry over to another base model; start it with a new ` +
        `--data-dir, or serve the base model the data dir was made with`,
    );
  const id = f?.coordinatorId ?? `coord-${randomBytes(8).toString('hex')}`;
  if (!recorded || !f?.coordinatorId || !f.signingKey) {
    // a database shared by several processes keeps the first one's record: every process then answers with it (and
    // signs with its key). A record from before pinned trust gains a signing key here; the key is never logged.
    const kept = await ids.write({ ...f, coordinatorId: id, baseModel: base, signingKey: f?.signingKey ?? newSigningKeyRecord() });
    if (f?.coordinatorId && !recorded) log('base_model.recorded', { id: base.id, sha256: base.sha256.slice(0, 16) });
    if (!f?.signingKey) log('coordinator.signing_key_created', { where: ids.where });
    return { id: kept.coordinatorId ?? id, signingKey: parseSigningKeyRecord(kept.signingKey, ids.where) };
  }
  return { id, signingKey: parseSigningKeyRecord(f.signingKey, ids.where) };
}

/** Where the coordinator's identity is kept: coordinator.json in the data dir, or the shared database. */
export interface IdentityStore {
  /** for error messages */
  where: string;
  read(): Promise<IdentityRecord | null>;
  /** writes the record (or keeps one another process wrote first) and returns the record that holds */
  write(rec: IdentityRecord): Promise<IdentityRecord>;
}

/** The coordinator's identity as stored; signingKey holds a secret key (coordinator.json is written mode 600). */
export interface IdentityRecord {
  coordinatorId?: string;
  baseModel?: BaseModelRecord;
  /** the long-term signing key whose fingerprint join tokens carry (coordinator-key.ts) */
  signingKey?: SigningKeyRecord;
}

function fileIdentity(storage: Storage): IdentityStore {
  return {
    where: storage.where,
    read: () => readJson(storage, 'coordinator.json'),
    write: async (rec) => {
      await writeJson(storage, 'coordinator.json', rec);
      return rec;
    },
  };
}

export async function createCoordinator(o: CoordinatorOptions): Promise<Coordinator> {
  if (typeof o.adminToken !== 'string' || o.adminToken.length < 16)
    throw new FedloraError('CONFIG_INVALID', 'the admin token must be at least 16 characters');
  const log = o.log ?? silentLogger;
  // OpenSSL's Ed25519: a challenge per connecting site and a signature per upload (shared/src/crypto/ed25519.ts)
  useNativeEd25519();
  const identity = await coordinatorIdentity(o.identityStore ?? fileIdentity(o.storage), baseModelRecord(o.task), log);
  const id = identity.id;
  const signer = await CoordinatorSigner.create(identity.signingKey);
  const sessions = new AdminSessions(o.adminToken, Date.now, SESSION_TTL_MS, o.sessionStore);
  const users = o.userStore ?? (await UserRegistry.open(o.storage));
  const audit = o.auditStore ?? (await FileAuditLog.open(o.storage));
  const auth = new Authenticator(sessions, users);
  const metrics = new CoordinatorMetrics({
    processMetrics: o.metrics?.processMetrics,
    // the sites of every project (a site belongs to one project; ids may repeat across projects)
    enrolledSites: async () =>
      (
        await Promise.all(
          projects.list().map(async (p) =>
            (await p.sites.list())
              .filter((s) => s.enrolledAt && !s.revokedAt)
              .map((s) => ({ siteId: metricsSiteLabel(p.id, s.id), lastSeen: p.activity.get(s.id).lastSeen })),
          ),
        )
      ).flat(),
  });

  // HTTPS when given a certificate: express, the console and socket.io all ride on the same server either way
  const httpServer = o.tls ? (createHttpsServer({ cert: o.tls.cert, key: o.tls.key }) as unknown as HttpServer) : createServer();
  const rejections = new RejectionLog(log, o.edge?.rejectionLog, Date.now, (event, code) =>
    metrics.onRejection(event, code),
  );
  rejections.start();
  const gate = new ConnectionGate(o.edge?.connections, ({ address, reason }) =>
    rejections.record('connection.refused', address, { code: 'UNAUTHORIZED', reason }),
  );
  const partBudget = new PartBudget(o.edge?.maxPartedBytes ?? DEFAULT_MAX_PARTED_BYTES);
  // frames stay small for every peer (the transport parses them before auth); updates larger than one frame come
  // from authenticated sites as 'frame:part's (socket/frame-assembly.ts)
  const io: SiteServer = new Server(httpServer, {
    maxHttpBufferSize: LIMITS.maxSocketFrameBytes,
    allowRequest: gate.allowRequest,
    serveClient: false,
    // a site is dropped when its pong is 60 s late (socket.io's default: 20 s). Why: with thousands of sites the
    // coordinator's event loop can lag by tens of seconds while it opens a round's uploads, and a pong waiting in its
    // own queue must not drop a live site mid-round (issue 18 load run); rounds have deadlines of minutes anyway
    pingTimeout: 60_000,
  });
  io.engine.on('connection', (conn: EngineConnection) => gate.opened(conn));
  type AdminFeed = Namespace<Record<string, never>, AdminServerEvents>;
  // the console connects with its session cookie (same origin); scripts pass the token in `auth`. WebSockets are
  // outside CORS, so a page on another origin of the same site could open this feed with the SameSite=Strict cookie:
  // a cookie handshake must come from an allowed origin, as cookie writes to /api must
  const allowedOrigins = new Set(o.allowedOrigins ?? []);
  // one feed per project: '/admin' for the default project, '/admin/projects/<id>' for the others; a user assigned to
  // some projects only may watch only theirs
  const feeds = new Map<string, AdminFeed>();
  const feedOf = (projectId: string): AdminFeed => {
    const known = feeds.get(projectId);
    if (known) return known;
    const admin = (io as unknown as Server).of(projectId === DEFAULT_PROJECT_ID ? '/admin' : `/admin/projects/${projectId}`) as unknown as AdminFeed;
    feeds.set(projectId, admin);
  admin.use((socket, next) => {
    const t = socket.handshake.auth?.token;
    if (t === undefined) {
      const h = socket.handshake.headers;
      const header = (name: string) => (typeof h[name] === 'string' ? h[name] : undefined);
      const why = crossOriginReason(
        { origin: header('origin'), host: header('host'), secFetchSite: header('sec-fetch-site') },
        allowedOrigins,
      );
      if (why !== null) {
        log('admin.cross_origin_refused', { transport: 'socket.io', origin: header('origin') });
        return next(new Error('CROSS_ORIGIN'));
      }
    }
    const cookie = socket.handshake.headers.cookie;
    // sessions may live in the shared database: the check is awaited (a Promise is no answer)
    // any role may watch (the feed only reports): the bootstrap token, a user's token or a session of an enabled user
    void (async () => {
      const p = await auth.principal(t !== undefined ? { authorization: typeof t === 'string' ? `Bearer ${t}` : undefined } : { cookie });
      return p !== null && mayUseProject(p, projectId);
    })().then(
      (ok) => {
        if (ok) {
          gate.authenticated(socket.conn);
          return next();
        }
        rejections.record('admin.unauthorized', socket.handshake.address, { code: 'UNAUTHORIZED', transport: 'socket.io' });
        next(new Error('UNAUTHORIZED'));
      },
      (err: unknown) => {
        log('admin.session_check_failed', { error: describeError(err) });
        next(new Error('UNAUTHORIZED'));
      },
    );
  });
    return admin;
  };

  const link = o.cluster ? await ClusterLink.connect(io, o.cluster.redisUrl, log) : null;
  const forward = (projectId: string, e: FederationEvent) => {
    metrics.onFederationEvent(e, projectId);
    const admin = feedOf(projectId);
    if (e.type === 'round:stage')
      admin.emit('round:stage', { round: e.round, roundId: e.roundId, stage: e.stage });
    else if (e.type === 'version:new') admin.emit('version:new', e.version);
    else if (e.type === 'version:decided') admin.emit('version:decided', e.version);
    else if (e.type === 'round:end') admin.emit('round:end', e.record);
    else if (e.type === 'upload')
      admin.emit('upload', { round: e.round, siteId: e.siteId, accepted: e.accepted, code: e.code });
    else if (e.type === 'round:skipped') admin.emit('round:skipped', { trigger: e.trigger, reason: e.reason });
    else admin.emit('federation:state', { state: e.state, reason: e.reason });
  };
  let lease: LeaderLease | null = null;
  const env: ProjectEnv = {
    log,
    coordinatorId: id,
    signer,
    edge: { rejections, gate, partBudget, sent: (kind, bytes) => metrics.onTransfer('out', kind, bytes), cluster: null },
    onSiteStatus: (projectId, s) => {
      metrics.onSiteStatus(s, projectId);
      feedOf(projectId).emit('site:status', s);
    },
    onEvent: forward,
    clock: o.clock,
    rng: o.rng,
    retryDelayMs: o.retryDelayMs,
    afterStage: o.afterStage,
  };
  // the default project: the coordinator's own flags, the data dir's own files and the '/' namespace, as before
  // projects existed; in a cluster it is the only one, and only the lease holder runs its rounds
  const main = await openProject(
    {
      id: DEFAULT_PROJECT_ID,
      storage: o.storage,
      adapterStore: o.adapterStore,
      siteStore: o.siteStore,
      strategy: o.strategy,
      strategyFactory: o.strategyFactory,
      settings: o.settings,
      stop: o.stop,
      task: o.task,
      federatedEvaluation: o.federatedEvaluation,
      presetSites: o.presetSites,
    },
    io.of('/'),
    {
      ...env,
      isLeader: o.cluster ? () => lease?.isLeader ?? false : undefined,
      edge: { ...env.edge, cluster: link ? { link, isLeader: () => lease?.isLeader ?? false } : null },
    },
  );
  const { federation, store, sites } = main;
  feedOf(main.id);
  if (link) main.presence.useCluster(link);
  lease =
    o.cluster && link
      ? new LeaderLease(o.cluster.pool, {
          pollMs: o.cluster.leasePollMs ?? 2000,
          log,
          nodeId: o.cluster.nodeId,
          onGain: async () => {
            await federation.init();
            const why = federation.stopReason();
            if (why) log('federation.not_started', { reason: why });
            else if (o.autostart ?? true) federation.start({ kind: 'startup' });
          },
          onLoss: (why) => {
            // rounds must stop now; the supervisor restarts the process as a follower
            void federation.close();
            o.cluster?.onLeaseLost?.(why);
          },
        })
      : null;
  if (link && lease) {
    const leader = lease;
    const runHere = roundRequests({ sites, federation });
    link.attach({
      localReady: () => main.presence.localReady(),
      isLeader: () => leader.isLeader,
      handle: (req) => runHere(req.event, req.siteId, req.payload),
      siteLeft: (siteId) => federation.siteLeft(siteId),
      availabilityChanged: () => main.presence.remoteChanged(),
    });
  }
  // the other projects (projects.json, POST /api/projects): each on its own namespace, files and round loop; a
  // project created while the coordinator runs starts its rounds at once (unless the coordinator started paused)
  let listening = false;
  const startRounds = (f: Federation) => {
    const why = f.stopReason();
    if (why) log('federation.not_started', { reason: why });
    else f.start({ kind: 'startup' });
  };
  const projects = await ProjectHost.load(
    o.storage,
    main,
    async (po) => {
      const p = await openProject(po, io.of(projectNamespace(po.id)), env);
      feedOf(p.id); // the console may connect to its feed before anything happened there
      if (listening && (o.autostart ?? true)) startRounds(p.federation);
      return p;
    },
    // a cluster shares one federation through Postgres and Redis: more projects are refused there (docs/OPERATOR.md)
    o.cluster ? undefined : o.projectFactory,
  );

  const api = createApi({
    adminToken: o.adminToken,
    projects,
    log,
    sessions,
    consoleDir: o.consoleDir,
    allowedOrigins: o.allowedOrigins,
    loginLimits: o.loginLimits,
    oidc: o.oidc,
    users,
    audit,
    coordinator: { id, fingerprint: signer.fingerprint },
  });
  // socket.io answers its own long-polling requests (browsers start with polling) through a 'request' listener it
  // installed first; express must not answer them a second time ("headers already sent")
  const metricsHere = o.metrics?.token ? metricsRoute(metrics, o.metrics.token) : null;
  httpServer.on('request', (req, res) => {
    if (req.url?.startsWith('/socket.io/')) return;
    withRequestId(req, res, () => {
      if (metricsHere && isMetricsRequest(req)) return metricsHere(req, res);
      countAdminDownload(metrics, req, res);
      void api(req, res);
    });
  });

  let url: string | null = null;
  return {
    httpServer,
    io,
    federation,
    store,
    sites,
    projects,
    metrics,
    fingerprint: signer.fingerprint,
    get url() {
      return url;
    },
    async listen(port = 0, host = '127.0.0.1') {
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host, () => {
          httpServer.off('error', reject);
          resolve();
        });
      });
      const a = httpServer.address() as AddressInfo;
      url = `${o.tls ? 'https' : 'http'}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
      log('coordinator.listening', { url, coordinatorId: id, fingerprint: signer.fingerprint, storage: o.storage.where, node: o.cluster?.nodeId });
      listening = true;
      if (lease) lease.start();
      else if (o.autostart ?? true) for (const p of projects.list()) startRounds(p.federation);
      return url;
    },
    async close() {
      await lease?.stop();
      for (const p of projects.list()) await p.federation.close();
      await link?.close();
      await new Promise<void>((resolve) => io.close(() => resolve()));
      gate.close();
      rejections.close();
      if (httpServer.listening) await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}
