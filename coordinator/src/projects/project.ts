// One project (issue 21): a federation with its own base model, labels, strategy and settings, enrolled sites, rounds
// and adapter registry, served on its own socket.io namespace ('/' for the default project, '/projects/<id>' for the
// others). Everything a project holds is its own: a site enrolled in project A is in A's site store only, so B's
// handlers know nothing of it and answer it as they answer any unknown site. What the projects share (the HTTP
// server, the coordinator's signing key, the limits at the socket edge, users, sessions and the audit trail) is
// built once by app.ts and handed in as ProjectEnv.

import { FedloraError } from '@fedlora/shared/errors.ts';
import type { Strategy } from '@fedlora/shared/aggregation/strategy.ts';
import type { StrategyName } from '@fedlora/shared/aggregation/index.ts';
import type { Manifest } from '@fedlora/shared/protocol/manifest.ts';
import type { Storage } from '../storage';
import type { Logger } from '../log';
import { AdapterRegistry } from '../registry/registry';
import type { AdapterStore, TaskKind } from '../registry/types';
import { MergedBases } from '../registry/merged-bases';
import { SiteRegistry } from '../sites/registry';
import type { SiteStore } from '../sites/types';
import { ActivityTracker } from '../sites/activity';
import { Federation, type FederationDeps, type FederationEvent } from '../rounds/federation';
import type { RoundSettings, StopRules } from '../rounds/settings';
import type { Clock, Evaluator } from '../rounds/types';
import { Presence, type SiteNamespace, type SiteStatus } from '../socket/presence';
import { attachSiteHandlers, type SiteHandlerDeps } from '../socket/site-handlers';
import { CandidateAdapters } from '../eval/candidate-adapters';
import { FederatedEvaluator, federatedEvaluation, siteEvaluationTimeoutMs } from '../eval/federated-evaluator';
import type { CoordinatorSigner } from '../coordinator-key';
import type { CoordinatorTask } from '../app';
import { projectNamespace } from '@fedlora/shared/protocol/join-token.ts';
import { DEFAULT_PROJECT_ID } from './project-spec';

/** What makes one federation: everything per project that createCoordinator is given. */
export interface ProjectOptions {
  /** lowercase letters, digits and '-' (project-id.ts); DEFAULT_PROJECT_ID for the coordinator's first project */
  id: string;
  /** the project's files: the data dir itself for the default project, projects/<id>/ in it for the others */
  storage: Storage;
  /** versions and rounds (default: the AdapterRegistry on `storage`); a database store slots in here */
  adapterStore?: AdapterStore;
  /** enrolled sites (default: the SiteRegistry on `storage`) */
  siteStore?: SiteStore;
  strategy: Strategy;
  /** how PUT /api/settings rebuilds the strategy (switch or new options); default: strategyFromSettings */
  strategyFactory?: (name: StrategyName, settings: RoundSettings) => Strategy;
  settings: RoundSettings;
  stop: StopRules;
  task: CoordinatorTask;
  /**
   * federated evaluation (--federated-eval): every ready site scores each candidate on its held-out split; recorded
   * beside the central metrics, or as the version's metrics when task.evaluator is null
   */
  federatedEvaluation?: boolean;
  /** sites to create at startup if absent, with their join tokens (deployment files pass tokens via env) */
  presetSites?: { name: string; token: string }[];
}

/** What every project of a coordinator shares (built once by app.ts). */
export interface ProjectEnv {
  log: Logger;
  coordinatorId: string;
  signer: CoordinatorSigner;
  edge: Pick<SiteHandlerDeps, 'rejections' | 'gate' | 'partBudget' | 'sent' | 'cluster'>;
  /** each status change of a site and each federation event (the admin feed and the metrics) */
  onSiteStatus: (project: string, s: SiteStatus) => void;
  onEvent: (project: string, e: FederationEvent) => void;
  clock?: Clock;
  rng?: () => number;
  retryDelayMs?: number;
  afterStage?: FederationDeps['afterStage'];
  /** a cluster: only the lease holder runs rounds (the default project only; app.ts refuses more projects there) */
  isLeader?: () => boolean;
}

/** A running project: its federation and stores, as the admin API and the socket handlers see them. */
export interface Project {
  id: string;
  federation: Federation;
  store: AdapterStore;
  sites: SiteStore;
  presence: Presence;
  activity: ActivityTracker;
  /** the model as GET /versions/:id/peft exports it, and as GET /projects lists it */
  model: Pick<CoordinatorTask, 'modelId' | 'lora' | 'labels' | 'modelFamily'>;
  /** the socket.io namespace its sites connect to */
  namespace: string;
  /** what it trains (issue 24); a masked-LM project merges versions into new bases (POST /versions/:id/merge) */
  task: TaskKind;
  bases: MergedBases | null;
}


/**
 * Opens a project's stores, builds its round loop and attaches its site handlers to `ns` (its own namespace). The
 * federation is initialized (version 0 on a fresh store) unless `env.isLeader` says a cluster leader will do it.
 */
export async function openProject(o: ProjectOptions, ns: SiteNamespace, env: ProjectEnv): Promise<Project> {
  const log: Logger = o.id === DEFAULT_PROJECT_ID ? env.log : (event, fields) => env.log(event, { project: o.id, ...fields });
  const store = o.adapterStore ?? (await AdapterRegistry.open(o.storage));
  const sites = o.siteStore ?? (await SiteRegistry.open(o.storage, log));
  for (const p of o.presetSites ?? []) {
    if (!(await sites.list()).some((s) => s.name === p.name)) {
      const { site } = await sites.create(p.name, p.token);
      log('site.created', { site: site.id, preset: true });
    }
  }
  const activity = await ActivityTracker.open(o.storage, { log });
  const presence = new Presence(
    ns,
    () => sites.activeCount(),
    (s) => {
      activity.onStatus(s);
      env.onSiteStatus(o.id, s);
    },
    (siteId) => sites.signingKey(siteId),
  );
  // signed for this project's sites only: one coordinator key serves every project
  presence.useSigner((context, body) => env.signer.sign(context, body, o.id));
  // federated evaluation: candidates over the inline limit are served to the sites in 'adapter:chunk's meanwhile
  const candidates = new CandidateAdapters();
  const evaluator: Evaluator | null = o.federatedEvaluation
    ? federatedEvaluation(
        o.task.evaluator,
        new FederatedEvaluator({
          transport: presence,
          labels: o.task.labels,
          candidates,
          timeoutMs: (): number => siteEvaluationTimeoutMs(federation.settings),
          maxLength: (): number => federation.settings.maxLength,
          log,
        }),
        log,
      )
    : o.task.evaluator;
  if (!evaluator)
    throw new FedloraError(
      'CONFIG_INVALID',
      `${o.id === DEFAULT_PROJECT_ID ? '' : `project ${o.id}: `}no held-out set to evaluate on: give one (--heldout) or turn on federated evaluation (--federated-eval)`,
    );
  const federation = new Federation({
    strategy: o.strategy,
    strategyFactory: o.strategyFactory,
    transport: presence,
    evaluator,
    store,
    initialState: o.task.initialState,
    ...(o.task.mlm ? { task: 'mlm' as const } : {}),
    settings: o.settings,
    stop: o.stop,
    log,
    clock: env.clock,
    rng: env.rng,
    retryDelayMs: env.retryDelayMs,
    onEvent: (e) => {
      activity.onEvent(e);
      env.onEvent(o.id, e);
    },
    afterStage: env.afterStage,
    isLeader: env.isLeader,
  });
  // in a cluster only the leader writes the registry: it initializes (v0 on a fresh store) when it takes the lease
  if (!env.isLeader) await federation.init();

  const manifest = async (): Promise<Manifest> => ({
    v: 1,
    baseModel: {
      id: o.task.modelId,
      files: o.task.modelFiles.map(({ path, sha256, bytes }) => ({ path, sha256, bytes })),
    },
    lora: o.task.lora,
    labels: [...o.task.labels],
    pooling: o.task.pooling,
    ...(o.task.mlm ? { task: { kind: 'mlm' as const, headTransform: o.task.mlm.headTransform } } : {}),
    maxSeqLength: federation.settings.maxLength,
    versionId: await store.currentId(),
  });
  attachSiteHandlers(ns, {
    sites,
    federation,
    store,
    presence,
    manifest,
    coordinatorId: env.coordinatorId,
    projectId: o.id,
    signer: env.signer,
    modelFiles: o.task.modelFiles,
    candidates,
    log,
    ...env.edge,
  });
  return {
    id: o.id,
    federation,
    store,
    sites,
    presence,
    activity,
    model: { modelId: o.task.modelId, lora: o.task.lora, labels: o.task.labels, modelFamily: o.task.modelFamily },
    namespace: projectNamespace(o.id),
    task: o.task.mlm ? 'mlm' : 'classification',
    bases: o.task.mlm
      ? new MergedBases({ store, baseDir: o.task.mlm.baseDir, lora: o.task.lora, dir: o.task.mlm.basesDir, tool: o.task.mlm.tool, log: (line) => log('merge.progress', { detail: line }) })
      : null,
  };
}
