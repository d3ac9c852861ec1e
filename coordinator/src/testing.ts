// Test support of @fedlora/coordinator, imported as "@fedlora/coordinator/testing": in-memory stand-ins for the
// round loop's seams (a manual clock, a scripted transport, a fixed-metrics evaluator), tiny adapters and sealed
// uploads to feed them, and asynchronous in-memory stores. Kept out of the production entry (index.ts) so that
// nothing shipped can reach a fake.

import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { createCoordinator, type Coordinator, type CoordinatorOptions } from './app';
import { MemoryStorage } from './storage';
import { DEFAULT_SETTINGS, DEFAULT_STOP } from './rounds/settings';
import { tinyFakeTask } from './rounds/fakes';

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
 * A coordinator for tests of its edges (HTTP, console, login): in memory, FedAvg, default settings, the tiny fake
 * task, not running rounds, listening on a free port. `overrides` replace any option.
 */
export async function listeningTestCoordinator(
  overrides: Partial<CoordinatorOptions> & { adminToken: string },
): Promise<Coordinator> {
  const c = await createCoordinator({
    storage: new MemoryStorage(),
    strategy: createStrategy('fedavg', {}),
    settings: { ...DEFAULT_SETTINGS },
    stop: { ...DEFAULT_STOP },
    task: tinyFakeTask(),
    autostart: false,
    ...overrides,
  });
  await c.listen(0);
  return c;
}
