// Test support of @fedlora/coordinator, imported as "@fedlora/coordinator/testing": in-memory stand-ins for the
// round loop's seams (a manual clock, a scripted transport, a fixed-metrics evaluator), tiny adapters and sealed
// uploads to feed them, and asynchronous in-memory stores. Kept out of the production entry (index.ts) so that
// nothing shipped can reach a fake.

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
