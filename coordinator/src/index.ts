// Public API of @fedlora/coordinator: build a coordinator in-process (tests, simulations, the start script).
// Fakes for tests are in testing.ts ("@fedlora/coordinator/testing"), not here.

export { createCoordinator, type Coordinator, type CoordinatorOptions, type CoordinatorTask } from './app';
export { parseConfig, coordinatorHelp, type CoordinatorConfig } from './config';
export { loadModelTask, type ModelTask, type ModelTaskOptions } from './eval/model-task';
export { hashModelFiles } from './model-files';
export { DirStorage, MemoryStorage, type Storage } from './storage';
export { stderrLogger, memoryLogger, silentLogger, type Logger } from './log';
export { AdapterRegistry } from './registry/registry';
export type { AdapterStore, Awaitable, HeldoutMetrics, RoundRecord, VersionRecord } from './registry/types';
export { Federation, type FederationEvent, type FederationState } from './rounds/federation';
export {
  DEFAULT_SETTINGS,
  DEFAULT_STOP,
  updateSettings,
  strategyFromSettings,
  type RoundSettings,
  type StopRules,
} from './rounds/settings';
export type { Clock, Evaluator, RoundTransport } from './rounds/types';
export type { AdminServerEvents } from './socket/admin-events';
export { SiteRegistry } from './sites/registry';
export type { PublicSiteRecord, SiteRecord, SiteStore } from './sites/types';
export { openPostgresStores, type PostgresStores } from './postgres/stores';
