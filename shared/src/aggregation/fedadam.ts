// FedAdam (Reddi et al. 2021, "Adaptive Federated Optimization", Algorithm 2): the example-weighted mean delta
// is a pseudo-gradient Δ, and the server applies Adam to it:
//   m ← β1·m + (1−β1)·Δ,  v ← β2·v + (1−β2)·Δ²,  x ← x + η·m / (√v + τ)
// with no bias correction and v initialised to τ² (the paper's v₋₁ ≥ τ²). m, v persist across rounds.

import { z } from 'zod';
import { FedloraError } from '../errors';
import { parseFields } from '../schema-fields';
import { cloneNamed, type NamedTensors } from '../tensor';
import { assertSameLayout, assertFinite } from './math';
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

export const FedAdamOptionsSchema = z.object({
  eta: z
    .number()
    .positive()
    .default(1e-2)
    .meta({ flag: 'server-lr', description: 'server learning rate η (tuned per task in the paper)' }),
  beta1: z
    .number()
    .min(0)
    .lt(1)
    .default(0.9)
    .meta({ flag: 'server-beta1', description: 'decay β1 of the server’s first moment (paper: 0.9)' }),
  beta2: z
    .number()
    .min(0)
    .lt(1)
    .default(0.99)
    .meta({ flag: 'server-beta2', description: 'decay β2 of the server’s second moment (paper: 0.99)' }),
  tau: z
    .number()
    .positive()
    .default(1e-3)
    .meta({ flag: 'server-tau', description: 'adaptivity τ (the paper’s grid: 1e-9..1e-1)' }),
});
export type FedAdamOptions = CommonStrategyOptions & z.input<typeof FedAdamOptionsSchema>;

export class FedAdam implements Strategy {
  readonly name = 'fedadam';
  readonly eta: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly tau: number;
  private readonly common: ResolvedCommonOptions;
  private m: NamedTensors | null = null;
  private v: NamedTensors | null = null;
  private step = 0;

  constructor(options: FedAdamOptions = {}) {
    const o = parseFields(CommonOptionsSchema.extend(FedAdamOptionsSchema.shape), options, { prefix: 'fedadam' });
    this.common = { minResults: o.minResults, acceptFailures: o.acceptFailures };
    ({ eta: this.eta, beta1: this.beta1, beta2: this.beta2, tau: this.tau } = o);
  }

  /** Sites run plain local SGD; adaptivity is all on the server. */
  configureRound(_round: number, base: RoundConfig): RoundConfig {
    return { ...base, proximalMu: 0 };
  }

  createAggregator(_round: number, global: NamedTensors): RoundAggregator {
    if (this.m && this.v) {
      assertSameLayout(this.m, global, 'fedadam state m (adapter layout changed? clear the strategy state)');
      assertSameLayout(this.v, global, 'fedadam state v');
    }
    return new MeanDeltaAggregator(global, this.common, (g, delta) => this.adamStep(g, delta));
  }

  /** One server step; commits m, v only once the whole new adapter was computed. */
  private adamStep(global: NamedTensors, delta: NamedTensors): NamedTensors {
    const { beta1: b1, beta2: b2, eta, tau } = this;
    const m: NamedTensors = {};
    const v: NamedTensors = {};
    const x: NamedTensors = {};
    for (const k of Object.keys(global).sort()) {
      const n = global[k].data.length;
      const d = delta[k].data;
      const m0 = this.m?.[k].data;
      const v0 = this.v?.[k].data;
      const mk = new Float32Array(n);
      const vk = new Float32Array(n);
      const xk = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        mk[i] = b1 * (m0 ? m0[i] : 0) + (1 - b1) * d[i];
        vk[i] = b2 * (v0 ? v0[i] : tau * tau) + (1 - b2) * d[i] * d[i];
        xk[i] = global[k].data[i] + (eta * mk[i]) / (Math.sqrt(vk[i]) + tau);
      }
      const shape = [...global[k].shape];
      m[k] = { shape, data: mk };
      v[k] = { shape: [...shape], data: vk };
      x[k] = { shape: [...shape], data: xk };
    }
    assertFinite(x, 'fedadam step');
    this.m = m;
    this.v = v;
    this.step += 1;
    return x;
  }

  /** m and v as one NamedTensors ("m/<name>", "v/<name>") so the adapter store can persist it. */
  getState(): StrategyState | null {
    if (!this.m || !this.v) return null;
    const tensors: NamedTensors = {};
    for (const [k, t] of Object.entries(cloneNamed(this.m))) tensors[`m/${k}`] = t;
    for (const [k, t] of Object.entries(cloneNamed(this.v))) tensors[`v/${k}`] = t;
    return { strategy: this.name, step: this.step, tensors };
  }

  setState(state: StrategyState | null): void {
    if (state === null) {
      this.m = this.v = null;
      this.step = 0;
      return;
    }
    const bad = (why: string) => new FedloraError('CONFIG_INVALID', `fedadam state: ${why}`);
    if (state.strategy !== this.name) throw bad(`was saved by ${state.strategy}`);
    if (!Number.isInteger(state.step) || state.step < 0) throw bad(`step must be a non-negative integer`);
    const m: NamedTensors = {};
    const v: NamedTensors = {};
    for (const [key, t] of Object.entries(state.tensors)) {
      const slash = key.indexOf('/');
      const part = key.slice(0, slash);
      if (slash < 0 || (part !== 'm' && part !== 'v')) throw bad(`unexpected tensor ${key}`);
      (part === 'm' ? m : v)[key.slice(slash + 1)] = { shape: [...t.shape], data: new Float32Array(t.data) };
    }
    assertSameLayout(v, m, 'fedadam state: v vs m', 'CONFIG_INVALID');
    for (const [k, t] of Object.entries(v))
      if (t.data.some((x) => !(x >= 0) || !Number.isFinite(x))) throw bad(`v/${k} must be finite and >= 0`);
    this.m = m;
    this.v = v;
    this.step = state.step;
  }
}

export const FEDADAM = defineStrategy({
  name: 'fedadam',
  summary: 'Adam on the server over the mean delta as a pseudo-gradient (Reddi et al. 2021)',
  options: FedAdamOptionsSchema,
  create: (o) => new FedAdam(o),
});
