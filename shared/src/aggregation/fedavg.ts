// FedAvg (McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from Decentralized Data"):
// new global = global + Σ nᵢ·Δᵢ / Σ nᵢ, with Δᵢ the site's trained − received adapter and nᵢ its examples.

import { z } from 'zod';
import { FedloraError } from '../errors';
import { parseFields } from '../schema-fields';
import type { NamedTensors } from '../tensor';
import { addScaled } from './math';
import { defineStrategy } from './registry';
import {
  CommonOptionsSchema,
  MeanDeltaAggregator,
  type CommonStrategyOptions,
  type ResolvedCommonOptions,
  type RoundAggregator,
  type RoundConfig,
  type Strategy,
  type StrategyState,
} from './strategy';

/** FedAvg has no options of its own. */
export const FedAvgOptionsSchema = z.object({});
export type FedAvgOptions = CommonStrategyOptions;

export class FedAvg implements Strategy {
  readonly name: string = 'fedavg';
  protected readonly common: ResolvedCommonOptions;

  constructor(options: FedAvgOptions = {}) {
    this.common = parseFields(CommonOptionsSchema, options, { prefix: 'strategy option' });
  }

  /** FedAvg clients run plain local SGD: a proximal weight left in the base config is cleared. */
  configureRound(_round: number, base: RoundConfig): RoundConfig {
    return { ...base, proximalMu: 0 };
  }

  createAggregator(_round: number, global: NamedTensors): RoundAggregator {
    return new MeanDeltaAggregator(global, this.common, (g, meanDelta) => addScaled(g, meanDelta));
  }

  getState(): StrategyState | null {
    return null; // stateless
  }

  setState(state: StrategyState | null): void {
    if (state !== null) throw new FedloraError('CONFIG_INVALID', `${this.name} has no state to restore`);
  }
}

export const FEDAVG = defineStrategy({
  name: 'fedavg',
  summary: 'example-weighted mean of the sites’ deltas (McMahan et al. 2017)',
  options: FedAvgOptionsSchema,
  create: (o) => new FedAvg(o),
});
