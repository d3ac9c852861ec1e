// Plain (framework-free) tensors: what is stored, serialized, sent and aggregated.
// Everything that crosses a process, file or network boundary is a NamedTensors, never a tf.Tensor.

import { FedloraError } from './errors';

export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Tensors keyed by a stable name (e.g. PEFT-style "encoder.layer.0.attention.self.query.lora_A"). */
export type NamedTensors = Record<string, HostTensor>;

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function cloneNamed(t: NamedTensors): NamedTensors {
  const out: NamedTensors = {};
  for (const k of Object.keys(t).sort()) out[k] = { shape: [...t[k].shape], data: new Float32Array(t[k].data) };
  return out;
}

/** a - b, key by key; both must have identical keys and shapes. */
export function subtractNamed(a: NamedTensors, b: NamedTensors): NamedTensors {
  const out: NamedTensors = {};
  for (const k of Object.keys(a).sort()) {
    const bk = b[k];
    if (!bk || !sameShape(a[k].shape, bk.shape)) throw new FedloraError('SHAPE_MISMATCH', `subtractNamed: tensor ${k} missing or mis-shaped`);
    const d = new Float32Array(a[k].data.length);
    for (let i = 0; i < d.length; i++) d[i] = a[k].data[i] - bk.data[i];
    out[k] = { shape: [...a[k].shape], data: d };
  }
  return out;
}
