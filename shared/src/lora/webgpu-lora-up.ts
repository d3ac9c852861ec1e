// The up-projection of a LoRA branch and its sum with the frozen layer's output, y + s·low·Bᵀ (low = x·Aᵀ, [N, r]),
// as one WebGPU program forward and two backward. As tfjs ops this is 3 dispatches forward (the product, the scale,
// the add) and 3 backward (the scale, then dlow = dy'·B and dB = dy'ᵀ·low); with LoRA on query and value of every
// layer that is 8 branches, 48 dispatches per step, and on a GPU a step is bound by dispatches (docs/BENCHMARKS.md).
// Here: forward 1, backward 2 (dlow, dB). r is small (8 in the recipe): each output is a dot product of length r,
// so the forward needs no tiling; dB sums over every row of the batch, one workgroup per row of B.

import * as tf from '@tensorflow/tfjs';
import { onWebGPU, perElementProgram, runWebGPUKernel, type WebGPUKernel } from '../model/webgpu-kernel';
import { kernelPathSwitch, type KernelPath } from '../model/kernel-path';

const FORWARD = 'FedloraLoraUp';
const GRAD_LOW = 'FedloraLoraUpGradLow';
const GRAD_UP = 'FedloraLoraUpGradUp';
const WORKGROUP = 64;
/** the largest rank dB's per-thread sums fit workgroup memory for (64 threads × 32 floats = 8 KiB of the 16 KiB) */
export const MAX_FUSED_RANK = 32;

/** 'auto': these programs on webgpu; 'ops' forces tfjs ops (parity tests, benchmarks). */
export type LoraUpPath = KernelPath;
export const LORA_UP_PATH_ENV = 'FEDLORA_LORA_UP_PATH';
const pathSwitch = kernelPathSwitch(LORA_UP_PATH_ENV);

/** Chooses how a LoRA branch's up-projection runs in this thread; returns the previous setting. */
export const setLoraUpPath = (p: LoraUpPath): LoraUpPath => pathSwitch.set(p);

/** True when a branch of rank r runs as these programs here. */
export function fusedLoraUpAvailable(rank: number): boolean {
  return pathSwitch.auto() && onWebGPU() && rank >= 1 && rank <= MAX_FUSED_RANK;
}

const uniformsOf = (outCols: number, rank: number, scale: number) => [
  { type: 'int32' as const, data: [outCols] },
  { type: 'int32' as const, data: [rank] },
  { type: 'float32' as const, data: [scale] },
];
const UNIFORMS = 'outCols : i32, loraRank : i32, scale : f32,';

// result [N, out] = base + (Σ_j low[n, j]·up[o, j])·scale, the ops' order: product, then scale, then sum
const forwardKernel: WebGPUKernel = ({ inputs, backend, attrs }) => {
  const base = inputs.base as tf.TensorInfo;
  const program = perElementProgram({
    shaderKey: 'fedloraLoraUp',
    variableNames: ['base', 'low', 'up'],
    outputShape: base.shape,
    uniforms: UNIFORMS,
    body: `    let n = index / uniforms.outCols;
    let o = index - n * uniforms.outCols;
    let r = uniforms.loraRank;
    var acc = 0.0;
    for (var j = 0; j < r; j = j + 1) { acc = acc + low[n * r + j] * up[o * r + j]; }
    result[index] = base[index] + acc * uniforms.scale;`,
  });
  return backend.runWebGPUProgram(program, [base, inputs.low as tf.TensorInfo, inputs.up as tf.TensorInfo], 'float32', uniformsOf(base.shape[1], attrs.rank, attrs.scale));
};

// dlow [N, r] = (Σ_o dy[n, o]·up[o, j])·scale
const gradLowKernel: WebGPUKernel = ({ inputs, backend, attrs }) => {
  const dy = inputs.dy as tf.TensorInfo;
  const [rows, outCols] = dy.shape;
  const program = perElementProgram({
    shaderKey: 'fedloraLoraUpGradLow',
    variableNames: ['dy', 'up'],
    outputShape: [rows, attrs.rank],
    uniforms: UNIFORMS,
    body: `    let r = uniforms.loraRank;
    let n = index / r;
    let j = index - n * r;
    let cols = uniforms.outCols;
    var acc = 0.0;
    for (var o = 0; o < cols; o = o + 1) { acc = acc + dy[n * cols + o] * up[o * r + j]; }
    result[index] = acc * uniforms.scale;`,
  });
  return backend.runWebGPUProgram(program, [dy, inputs.up as tf.TensorInfo], 'float32', uniformsOf(outCols, attrs.rank, attrs.scale));
};

// dup [out, r] = (Σ_n dy[n, o]·low[n, j])·scale: one workgroup per o, each thread a stride of n holding r sums, then
// a tree reduction in workgroup memory (r is baked into the shader: per-thread arrays need a constant size)
const gradUpKernel: WebGPUKernel = ({ inputs, backend, attrs }) => {
  const dy = inputs.dy as tf.TensorInfo;
  const [rows, outCols] = dy.shape;
  const R = attrs.rank;
  const program = {
    variableNames: ['dy', 'low'],
    outputShape: [outCols, R],
    shaderKey: `fedloraLoraUpGradUp_${R}`,
    dispatchLayout: { x: [0, 1] },
    // one workgroup per row of B; tfjs-webgpu folds a count over the device's per-dimension limit into 2-D
    dispatch: [outCols, 1, 1] as [number, number, number],
    workgroupSize: [WORKGROUP, 1, 1] as [number, number, number],
    uniforms: `rows : i32, ${UNIFORMS}`,
    getUserCode: () => `
var<workgroup> part : array<f32, ${WORKGROUP * R}>;
fn main(index : i32) {
  let tid = i32(localId.x);
  let cols = uniforms.outCols;
  // a folded dispatch may have a few workgroups past the last row: they sum row cols − 1 and write nothing
  // (returning early would leave the barriers out of uniform control flow)
  let valid = index / ${WORKGROUP} < cols;
  let o = min(index / ${WORKGROUP}, cols - 1);
  var acc : array<f32, ${R}>;
  for (var j = 0; j < ${R}; j = j + 1) { acc[j] = 0.0; }
  for (var n = tid; n < uniforms.rows; n = n + ${WORKGROUP}) {
    let g = dy[n * cols + o];
    for (var j = 0; j < ${R}; j = j + 1) { acc[j] = acc[j] + g * low[n * ${R} + j]; }
  }
  for (var j = 0; j < ${R}; j = j + 1) { part[tid * ${R} + j] = acc[j]; }
  workgroupBarrier();
  for (var half = ${WORKGROUP / 2}; half > 0; half = half / 2) {
    if (tid < half) {
      for (var j = 0; j < ${R}; j = j + 1) { part[tid * ${R} + j] = part[tid * ${R} + j] + part[(tid + half) * ${R} + j]; }
    }
    workgroupBarrier();
  }
  if (valid && tid < ${R}) { result[o * ${R} + tid] = part[tid] * uniforms.scale; }
}`,
  };
  return backend.runWebGPUProgram(
    program,
    [dy, inputs.low as tf.TensorInfo],
    'float32',
    [{ type: 'int32', data: [rows] }, ...uniformsOf(outCols, R, attrs.scale)],
  );
};

/**
 * base + scale·low·upᵀ on the webgpu backend (the caller checked fusedLoraUpAvailable(r)): base [N, out] (x·W + b of
 * the frozen layer), low [N, r] (x·Aᵀ), up [out, r] (LoRA's B). Differentiable in all three.
 */
export function loraUpOnWebGPU(base: tf.Tensor2D, low: tf.Tensor2D, up: tf.Tensor2D, scale: number): tf.Tensor2D {
  const rank = up.shape[1];
  if (low.shape[1] !== rank || low.shape[0] !== base.shape[0] || up.shape[0] !== base.shape[1])
    throw new RangeError(`loraUpOnWebGPU: shapes base ${base.shape}, low ${low.shape}, up ${up.shape} do not fit`);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [b, l, u, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([l, u]);
    return {
      value: runWebGPUKernel(FORWARD, forwardKernel, { base: b, low: l, up: u }, { rank, scale }),
      gradFunc: (dy: tf.Tensor, [ls, us]: tf.Tensor[]) => [
        dy.clone(), // d base: the sum passes dy through (a clone shares dy's buffer: no program)
        runWebGPUKernel(GRAD_LOW, gradLowKernel, { dy, up: us }, { rank, scale }),
        runWebGPUKernel(GRAD_UP, gradUpKernel, { dy, low: ls }, { rank, scale }),
      ],
    };
  });
  return f(base, low, up) as tf.Tensor2D;
}
