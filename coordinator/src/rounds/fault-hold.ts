// A fault-injection point for crash tests (in the spirit of etcd's gofail and TiKV's fail-rs): with
// FEDLORA_FAULT_HOLD_AFTER_STAGE=<stage> the round loop holds for a while once that stage has done its work, and
// logs `fault.hold`, so that a test can SIGKILL the coordinator at a known point inside a round (e.g. after the sites
// exchanged secure-aggregation keys, or after the sum was unmasked but before it was versioned). Unset, it does
// nothing. It never changes what a round computes, only when the next stage starts.

import { SECURE_ROUND_STAGES, type RoundStage } from '@fedlora/shared/protocol/messages.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';
import type { Logger } from '../log';

export const FAULT_HOLD_ENV = 'FEDLORA_FAULT_HOLD_AFTER_STAGE';
/** long enough for any test to notice the log line and kill the process */
const HOLD_MS = 120_000;

export type AfterStageHook = (stage: RoundStage, round: number) => Promise<void>;

/** The hook the environment asks for, or undefined. */
export function faultHoldFromEnv(env: NodeJS.ProcessEnv, log: Logger): AfterStageHook | undefined {
  const stage = env[FAULT_HOLD_ENV];
  if (!stage) return undefined;
  if (!(SECURE_ROUND_STAGES as readonly string[]).includes(stage))
    throw new FedloraError('CONFIG_INVALID', `${FAULT_HOLD_ENV} must be a round stage (${SECURE_ROUND_STAGES.join(', ')}), got "${stage}"`);
  return async (done, round) => {
    if (done !== stage) return;
    log('fault.hold', { stage, round, ms: HOLD_MS });
    await new Promise((r) => setTimeout(r, HOLD_MS));
  };
}
