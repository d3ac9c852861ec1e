// FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks"): aggregation is FedAvg's; the
// difference is client-side, a proximal term (mu/2)·||w − w_global||² in the local loss. The strategy only
// sends mu (Li et al. tune it in {0.001, 0.01, 0.1, 1}).

import { z } from 'zod';
import { parseFields } from '../schema-fields';
import { FedAvg, type FedAvgOptions } from './fedavg';
import { defineStrategy } from './registry';
import { CommonOptionsSchema, type RoundConfig } from './strategy';

export const FedProxOptionsSchema = z.object({
  proximalMu: z
    .number()
    .min(0)
    .max(1e6)
    .default(0.01)
    .meta({
      flag: 'mu',
      description: 'weight of the proximal term (mu/2)·||w − w_global||² in each site’s loss; 0 = FedAvg',
    }),
});
export type FedProxOptions = FedAvgOptions & z.input<typeof FedProxOptionsSchema>;

export class FedProx extends FedAvg {
  override readonly name: string = 'fedprox';
  readonly proximalMu: number;

  constructor(options: FedProxOptions = {}) {
    const o = parseFields(CommonOptionsSchema.extend(FedProxOptionsSchema.shape), options, { prefix: 'fedprox' });
    super(o);
    this.proximalMu = o.proximalMu;
  }

  /** The sites train with this strategy's mu (whatever the base config says). */
  override configureRound(_round: number, base: RoundConfig): RoundConfig {
    return { ...base, proximalMu: this.proximalMu };
  }
}

export const FEDPROX = defineStrategy({
  name: 'fedprox',
  summary: 'FedAvg whose sites add a proximal term towards the global adapter (Li et al. 2020)',
  options: FedProxOptionsSchema,
  create: (o) => new FedProx(o),
});
