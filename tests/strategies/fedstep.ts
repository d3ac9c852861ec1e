// FedStep, a toy strategy that exists to show what a new strategy costs: this one file plus one registerStrategy
// line (tests/strategy-registry.test.ts registers it; a real one goes in shared/src/aggregation/index.ts).
// FedAvg with a server step size s: new global = global + s · Σ nᵢ·Δᵢ / Σ nᵢ (s = 1 is FedAvg).

import { z } from 'zod';
import { FedAvg, addScaled, defineStrategy, MeanDeltaAggregator } from '@fedlora/shared/aggregation/index.ts';
import type { RoundAggregator } from '@fedlora/shared/aggregation/index.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';

export const FedStepOptionsSchema = z.object({
  stepSize: z.number().positive().max(1).default(1).describe('server step size s along the mean delta'),
});

class FedStep extends FedAvg {
  override readonly name: string = 'fedstep';

  constructor(private readonly o: z.output<typeof FedStepOptionsSchema> & { minResults: number; acceptFailures: boolean }) {
    super(o);
  }

  override createAggregator(_round: number, global: NamedTensors): RoundAggregator {
    return new MeanDeltaAggregator(global, this.common, (g, mean) => addScaled(g, mean, this.o.stepSize));
  }
}

export const FEDSTEP = defineStrategy({
  name: 'fedstep',
  summary: 'FedAvg with a server step size (a toy for the registry test)',
  options: FedStepOptionsSchema,
  create: (o) => new FedStep(o),
});
