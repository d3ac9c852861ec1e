// FedAvgM (Hsu, Qi & Brown 2019, "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
// Classification"): FedAvg with server momentum. The example-weighted mean delta Δ is a pseudo-gradient and the
// server keeps a velocity across rounds:
//   m ← β·m + Δ,  x ← x + η·m
// With η = 1 and β = 0 it is FedAvg. Why it is here: with many small sites each sampled site can only take a few
// local steps before it drifts towards its own labels; momentum lets the global adapter keep moving along the
// direction the sites agree on across rounds (about 1/(1−β) rounds' worth), so few local steps per round suffice.
// Like FedAvg it needs only the sum of the deltas, so it takes a securely aggregated (masked) sum as is.

import { z } from 'zod';
import { FedloraError } from '../errors';
import { parseFields } from '../schema-fields';
import { cloneNamed, type NamedTensors } from '../tensor';
import { FedAvg, type FedAvgOptions } from './fedavg';
import { assertFinite, assertSameLayout } from './math';
import { defineStrategy } from './registry';
import { CommonOptionsSchema, MeanDeltaAggregator, type RoundAggregator, type StrategyState } from './strategy';

export const FedAvgMOptionsSchema = z.object({
  eta: z
    .number()
    .positive()
    .default(1)
    .meta({ flag: 'server-lr', description: 'server learning rate η (Hsu et al.: 1)' }),
  momentum: z
    .number()
    .min(0)
    .lt(1)
    .default(0.9)
    .meta({ flag: 'server-momentum', description: 'server momentum β (Hsu et al.: 0.9)' }),
});
export type FedAvgMOptions = FedAvgOptions & z.input<typeof FedAvgMOptionsSchema>;

/** FedAvg's round config and options; only the server step differs (and it has state). */
export class FedAvgM extends FedAvg {
  override readonly name: string = 'fedavgm';
  readonly eta: number;
  readonly momentum: number;
  /** velocity m, null before the first aggregated round */
  private velocity: NamedTensors | null = null;
  private step = 0;

  constructor(options: FedAvgMOptions = {}) {
    const o = parseFields(CommonOptionsSchema.extend(FedAvgMOptionsSchema.shape), options, { prefix: 'fedavgm' });
    super(o);
    this.eta = o.eta;
    this.momentum = o.momentum;
  }

  override createAggregator(_round: number, global: NamedTensors): RoundAggregator {
    if (this.velocity) assertSameLayout(this.velocity, global, 'fedavgm velocity (adapter layout changed? clear the strategy state)');
    return new MeanDeltaAggregator(global, this.common, (g, delta) => this.momentumStep(g, delta));
  }

  /** One server step; commits the velocity only once the whole new adapter was computed. */
  private momentumStep(global: NamedTensors, delta: NamedTensors): NamedTensors {
    const { eta, momentum: beta } = this;
    const velocity: NamedTensors = {};
    const x: NamedTensors = {};
    for (const k of Object.keys(global).sort()) {
      const n = global[k].data.length;
      const d = delta[k].data;
      const m0 = this.velocity?.[k].data;
      const mk = new Float32Array(n);
      const xk = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        mk[i] = beta * (m0 ? m0[i] : 0) + d[i];
        xk[i] = global[k].data[i] + eta * mk[i];
      }
      velocity[k] = { shape: [...global[k].shape], data: mk };
      x[k] = { shape: [...global[k].shape], data: xk };
    }
    assertFinite(x, 'fedavgm step');
    this.velocity = velocity;
    this.step += 1;
    return x;
  }

  override getState(): StrategyState | null {
    if (!this.velocity) return null;
    return { strategy: this.name, step: this.step, tensors: cloneNamed(this.velocity) };
  }

  override setState(state: StrategyState | null): void {
    if (state === null) {
      this.velocity = null;
      this.step = 0;
      return;
    }
    const bad = (why: string) => new FedloraError('CONFIG_INVALID', `fedavgm state: ${why}`);
    if (state.strategy !== this.name) throw bad(`was saved by ${state.strategy}`);
    if (!Number.isInteger(state.step) || state.step < 0) throw bad('step must be a non-negative integer');
    const velocity = cloneNamed(state.tensors);
    for (const [k, t] of Object.entries(velocity))
      if (!t.data.every(Number.isFinite)) throw bad(`velocity ${k} must be finite`);
    this.velocity = velocity;
    this.step = state.step;
  }
}

export const FEDAVGM = defineStrategy({
  name: 'fedavgm',
  summary: 'FedAvg with server momentum across rounds (Hsu, Qi & Brown 2019)',
  options: FedAvgMOptionsSchema,
  create: (o) => new FedAvgM(o),
});
