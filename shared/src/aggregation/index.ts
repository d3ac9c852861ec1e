// Public API of fedlora's aggregation: the Strategy contract, the four strategies and a factory by name.
// A new strategy is one file plus one entry in STRATEGIES below.

import { FedloraError } from '../errors';
import { FedAdam, type FedAdamOptions } from './fedadam';
import { FedAvg, type FedAvgOptions } from './fedavg';
import { FedAvgM, type FedAvgMOptions } from './fedavgm';
import { FedProx, type FedProxOptions } from './fedprox';
import type { Strategy } from './strategy';

export * from './strategy';
export * from './math';
export { FedAvg, type FedAvgOptions } from './fedavg';
export { FedProx, type FedProxOptions } from './fedprox';
export { FedAdam, type FedAdamOptions } from './fedadam';
export { FedAvgM, type FedAvgMOptions } from './fedavgm';

export interface StrategyOptionsByName {
  fedavg: FedAvgOptions;
  fedprox: FedProxOptions;
  fedadam: FedAdamOptions;
  fedavgm: FedAvgMOptions;
}
export type StrategyName = keyof StrategyOptionsByName;

const STRATEGIES: { [N in StrategyName]: (o: StrategyOptionsByName[N]) => Strategy } = {
  fedavg: (o) => new FedAvg(o),
  fedprox: (o) => new FedProx(o),
  fedadam: (o) => new FedAdam(o),
  fedavgm: (o) => new FedAvgM(o),
};

export const STRATEGY_NAMES = Object.keys(STRATEGIES) as StrategyName[];

export function isStrategyName(s: unknown): s is StrategyName {
  return typeof s === 'string' && Object.hasOwn(STRATEGIES, s);
}

/** Builds a strategy from config; an unknown name or bad option is CONFIG_INVALID (startup stops). */
export function createStrategy<N extends StrategyName>(name: N, options: StrategyOptionsByName[N]): Strategy {
  if (!isStrategyName(name))
    throw new FedloraError(
      'CONFIG_INVALID',
      `unknown strategy "${String(name)}" (known: ${STRATEGY_NAMES.join(', ')})`,
    );
  return (STRATEGIES[name] as (o: StrategyOptionsByName[N]) => Strategy)(
    options ?? ({} as StrategyOptionsByName[N]),
  );
}
