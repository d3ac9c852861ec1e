// A strategy's server state (FedAdam's moments, FedAvgM's velocity) as the stores keep it beside a version:
// safetensors with the strategy's name and step in the metadata. Shared by the file registry and the Postgres store.

import { FedloraError } from '@fedlora/shared/errors.ts';
import type { StrategyState } from '@fedlora/shared/aggregation/strategy.ts';
import { parseSafetensors, serializeSafetensors } from '@fedlora/shared/model/safetensors.ts';

/** The bytes to keep, or null when the strategy has no tensors to keep. */
export function encodeStrategyState(s: StrategyState | null): Uint8Array | null {
  if (!s || Object.keys(s.tensors).length === 0) return null;
  return serializeSafetensors(s.tensors, { metadata: { strategy: s.strategy, step: String(s.step) } });
}

/** FILE_CORRUPT when the bytes are not a strategy state; `where` names them in the error. */
export function decodeStrategyState(bytes: Uint8Array, where: string): StrategyState {
  const f = parseSafetensors(bytes, where);
  const step = Number(f.metadata.step);
  if (!f.metadata.strategy || !Number.isInteger(step))
    throw new FedloraError('FILE_CORRUPT', `${where} lacks strategy/step metadata`);
  return { strategy: f.metadata.strategy, step, tensors: f.tensors };
}
