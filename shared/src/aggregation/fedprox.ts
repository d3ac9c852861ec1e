// FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks"): aggregation is FedAvg's; the
// difference is client-side, a proximal term (mu/2)·||w − w_global||² in the local loss. The strategy only
// sends mu (Li et al. tune it in {0.001, 0.01, 0.1, 1}).

import { FedloraError } from '../errors';
import { FedAvg, type FedAvgOptions } from './fedavg';
import type { RoundConfig } from './strategy';

export interface FedProxOptions extends FedAvgOptions {
  /** proximal weight mu >= 0 (0 reduces FedProx to FedAvg) */
  proximalMu: number;
}

export class FedProx extends FedAvg {
  override readonly name: string = 'fedprox';
  readonly proximalMu: number;

  constructor(options: FedProxOptions) {
    super(options);
    if (!Number.isFinite(options.proximalMu) || options.proximalMu < 0)
      throw new FedloraError(
        'CONFIG_INVALID',
        `fedprox: proximalMu must be a finite number >= 0, got ${options.proximalMu}`,
      );
    this.proximalMu = options.proximalMu;
  }

  override configureRound(_round: number, base: RoundConfig): RoundConfig {
    return { ...base, proximalMu: this.proximalMu };
  }
}
