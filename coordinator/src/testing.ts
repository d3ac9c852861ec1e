// Test support of @fedlora/coordinator, imported as "@fedlora/coordinator/testing": in-memory stand-ins for the
// round loop's seams (a manual clock, a scripted transport, a fixed-metrics evaluator), tiny adapters and sealed
// uploads to feed them, and asynchronous in-memory stores. Kept out of the production entry (index.ts) so that
// nothing shipped can reach a fake.

import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { createCoordinator, type Coordinator, type CoordinatorOptions } from './app';
import { MemoryStorage } from './storage';
import { DEFAULT_SETTINGS, DEFAULT_STOP, updateSettings } from './rounds/settings';
import { tinyFakeTask } from './rounds/fakes';
import type { ProjectFactory } from './projects/project-host';

export {
  FakeEvaluator,
  FakeTransport,
  ManualClock,
  generateSiteKeys,
  makeUpload,
  tinyAdapter,
  tinyFakeTask,
  writeTinyModelDir,
  type FakeSiteBehavior,
} from './rounds/fakes';
export { MemoryAdapterStore, MemorySiteStore } from './memory-stores';
/** every admin REST route with its schemas: the fuzz of issue 18 sends bad input to each */
export { ADMIN_ROUTES } from './http/admin-schemas';


/**
 * Projects for tests (POST /api/projects): the tiny fake task with the spec's labels (its adapter is the same 30
 * floats whatever the labels), FedAvg, the default settings with the spec's over them. `modelFiles` as tinyFakeTask.
 */
export function tinyProjectFactory(modelFiles: Parameters<typeof tinyFakeTask>[0] = []): ProjectFactory {
  return async (spec) => {
    const { strategy: _strategy, ...patch } = spec.settings ?? {};
    const { settings, stop } = updateSettings({ settings: DEFAULT_SETTINGS, stop: DEFAULT_STOP }, patch);
    return {
      strategy: createStrategy('fedavg', {}),
      settings,
      stop,
      federatedEvaluation: spec.federatedEval,
      task: { ...tinyFakeTask(modelFiles), modelId: `tiny-fake-${spec.id}`, labels: [...spec.labels] },
    };
  };
}

/**
 * A coordinator for tests of its edges (HTTP, console, login): in memory, FedAvg, default settings, the tiny fake
 * task, not running rounds, listening on a free port (or `port`, when a peer must know the URL first: an OpenID
 * provider's redirect URI). `overrides` replace any option.
 */
export async function listeningTestCoordinator(
  { port = 0, ...overrides }: Partial<CoordinatorOptions> & { adminToken: string; port?: number },
): Promise<Coordinator> {
  const c = await createCoordinator({
    storage: new MemoryStorage(),
    strategy: createStrategy('fedavg', {}),
    settings: { ...DEFAULT_SETTINGS },
    stop: { ...DEFAULT_STOP },
    task: tinyFakeTask(),
    autostart: false,
    projectFactory: tinyProjectFactory(),
    ...overrides,
  });
  await c.listen(port);
  return c;
}
