// FedAvg (McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from Decentralized Data"):
// new global = global + Σ nᵢ·Δᵢ / Σ nᵢ, with Δᵢ the site's trained − received adapter and nᵢ its examples.

import { FedloraError } from '../errors';
import type { NamedTensors } from '../tensor';
import { addScaled } from './math';
import {
  MeanDeltaAggregator,
  resolveCommonOptions,
  type CommonStrategyOptions,
  type RoundAggregator,
  type RoundConfig,
  type Strategy,
  type StrategyState,
} from './strategy';

export type FedAvgOptions = CommonStrategyOptions;

export class FedAvg implements Strategy {
  readonly name: string = 'fedavg';
  protected readonly common: { minResults: number; acceptFailures: boolean };

  constructor(options: FedAvgOptions = {}) {
    this.common = resolveCommonOptions(
      options,
      (f, why) => new FedloraError('CONFIG_INVALID', `strategy option ${f} ${why}`),
    );
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
