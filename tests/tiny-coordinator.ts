// An in-process coordinator on the tiny fake task (no tfjs, no model load), FedAvg, autostart off, for the tests at
// the socket edge (rejections, raw frames, fuzzing, transport limits): each sets only what it is about.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createCoordinator,
  DirStorage,
  DEFAULT_SETTINGS,
  DEFAULT_STOP,
  hashModelFiles,
  memoryLogger,
  type Coordinator,
  type CoordinatorOptions,
  type RoundSettings,
} from '@fedlora/coordinator';
import { tinyFakeTask, writeTinyModelDir } from '@fedlora/coordinator/testing';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { ADMIN_TOKEN } from './federation-harness';

export interface TinyCoordinatorOptions {
  /** over quick-round defaults: 2 sites, no sample wait, 30 s deadline, 5 s acks, a fixed delta bound of 10 (the
   * synthetic deltas are far beyond what the learning rate moves the tiny adapter) */
  settings?: Partial<RoundSettings>;
  /** rounds before the federation stops (default 1) */
  rounds?: number;
  edge?: CoordinatorOptions['edge'];
  /** the temp dir's prefix, to tell runs apart */
  name?: string;
  /** the adapter version 0 holds (default: the tiny fake task's 30 floats) */
  initialState?: CoordinatorOptions['task']['initialState'];
  /** federated evaluation (--federated-eval) besides the fake task's central evaluator */
  federatedEvaluation?: boolean;
}

export interface TinyCoordinator {
  coord: Coordinator;
  url: string;
  log: ReturnType<typeof memoryLogger>;
  /** the temp dir: model/ (the tiny model) and data/ (the coordinator's files) */
  dir: string;
  close(): Promise<void>;
}

export async function startTinyCoordinator(o: TinyCoordinatorOptions = {}): Promise<TinyCoordinator> {
  const dir = mkdtempSync(join(tmpdir(), `fedlora-${o.name ?? 'tiny'}-`));
  const modelDir = writeTinyModelDir(dir);
  const log = memoryLogger();
  const coord = await createCoordinator({
    adminToken: ADMIN_TOKEN,
    storage: new DirStorage(join(dir, 'data')),
    strategy: createStrategy('fedavg', {}),
    settings: { ...DEFAULT_SETTINGS, minSites: 2, sampleWaitS: 0, deadlineS: 30, ackTimeoutS: 5, maxDeltaNorm: 10, ...o.settings },
    stop: { ...DEFAULT_STOP, rounds: o.rounds ?? 1 },
    task: { ...tinyFakeTask(await hashModelFiles(modelDir)), ...(o.initialState ? { initialState: o.initialState } : {}) },
    autostart: false,
    federatedEvaluation: o.federatedEvaluation,
    log,
    retryDelayMs: 0,
    edge: o.edge,
  });
  const url = await coord.listen(0);
  return {
    coord,
    url,
    log,
    dir,
    close: async () => {
      await coord.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
