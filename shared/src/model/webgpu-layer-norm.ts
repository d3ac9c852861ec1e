// LayerNorm with frozen scale and shift as one WebGPU program forward and one backward (layer-norm.ts has the math).
// As tfjs ops the forward is 8 dispatches (moments, rsqrt, centring, scale, shift) and the written-out backward 8;
// here one workgroup normalizes one row: it sums the row into workgroup memory (tree reduction, as tfjs-webgpu's
// softmax does), then writes the row. The backward recomputes the row's mean and 1/σ from x rather than keeping x̂
// and 1/σ from the forward pass: two more reductions over a row already being read, and no tensor kept on the tape
// besides x (which the residual sum keeps alive anyway).

import * as tf from '@tensorflow/tfjs';
import { runWebGPUKernel, type WebGPUKernel, type WebGPUProgramSpec } from './webgpu-kernel';

const FORWARD = 'FedloraLayerNorm';
const GRADIENT = 'FedloraLayerNormGrad';
const WORKGROUP = 64; // threads per row: hidden sizes of 128–1024 give each thread 2–16 columns

/** The row statistics every program starts with: mean and rstd of row `row` of x, each thread summing a stride. */
const ROW_STATISTICS = `
var<workgroup> partA : array<f32, ${WORKGROUP}>;
var<workgroup> partB : array<f32, ${WORKGROUP}>;
var<workgroup> partC : array<f32, ${WORKGROUP}>;
var<workgroup> partD : array<f32, ${WORKGROUP}>;

// sums part[0..${WORKGROUP}) into part[0]; called by every thread of the workgroup (uniform control flow)
fn reduceA(tid : i32) {
  for (var half = ${WORKGROUP / 2}; half > 0; half = half / 2) {
    if (tid < half) { partA[tid] = partA[tid] + partA[tid + half]; }
    workgroupBarrier();
  }
}
fn reduceB(tid : i32) {
  for (var half = ${WORKGROUP / 2}; half > 0; half = half / 2) {
    if (tid < half) { partB[tid] = partB[tid] + partB[tid + half]; }
    workgroupBarrier();
  }
}
fn reduceCD(tid : i32) {
  for (var half = ${WORKGROUP / 2}; half > 0; half = half / 2) {
    if (tid < half) {
      partC[tid] = partC[tid] + partC[tid + half];
      partD[tid] = partD[tid] + partD[tid + half];
    }
    workgroupBarrier();
  }
}

// [mean, rstd] of the row starting at base: two passes (mean, then the mean squared deviation), as tf.moments
fn rowStatistics(tid : i32, base : i32) -> vec2<f32> {
  let cols = uniforms.cols;
  var s = 0.0;
  for (var c = tid; c < cols; c = c + ${WORKGROUP}) { s = s + input(base + c); }
  partA[tid] = s;
  workgroupBarrier();
  reduceA(tid);
  let mean = partA[0] / f32(cols);
  var q = 0.0;
  for (var c = tid; c < cols; c = c + ${WORKGROUP}) {
    let d = input(base + c) - mean;
    q = q + d * d;
  }
  partB[tid] = q;
  workgroupBarrier();
  reduceB(tid);
  return vec2<f32>(mean, inverseSqrt(partB[0] / f32(cols) + uniforms.eps));
}`;

/**
 * One workgroup per row; `body` runs after the statistics with `tid`, `base`, `valid`, `mean`, `rstd` in scope and
 * reads the LayerNorm's input as input(i): x[i], or x[i] + residual[i] when the program sums the residual first (the
 * sum is not kept: the backward pass sums again, one more read instead of one more tensor and one more program).
 */
function rowProgram(shaderKey: string, variableNames: string[], shape: number[], residual: boolean, body: string): WebGPUProgramSpec {
  const rows = tf.util.sizeFromShape(shape) / shape[shape.length - 1];
  return {
    variableNames: residual ? [...variableNames, 'residual'] : variableNames,
    outputShape: shape,
    shaderKey: residual ? `${shaderKey}Residual` : shaderKey,
    dispatchLayout: { x: shape.map((_, i) => i) },
    // one workgroup per row; tfjs-webgpu folds a count over the device's per-dimension limit into 2-D
    dispatch: [rows, 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    uniforms: 'rows : i32, cols : i32, eps : f32,',
    getUserCode: () => `
fn input(i : i32) -> f32 { return ${residual ? 'x[i] + residual[i]' : 'x[i]'}; }
${ROW_STATISTICS}
fn main(index : i32) {
  let tid = i32(localId.x);
  // a folded dispatch may have a few workgroups past the last row: they compute row rows − 1 and write nothing
  // (returning early would leave the barriers out of uniform control flow)
  let valid = index / ${WORKGROUP} < uniforms.rows;
  let base = min(index / ${WORKGROUP}, uniforms.rows - 1) * uniforms.cols;
  let stats = rowStatistics(tid, base);
  let mean = stats.x;
  let rstd = stats.y;
  ${body}
}`,
  };
}

function rowUniforms(x: tf.TensorInfo, eps: number) {
  const cols = x.shape[x.shape.length - 1];
  return [
    { type: 'int32' as const, data: [tf.util.sizeFromShape(x.shape) / cols] },
    { type: 'int32' as const, data: [cols] },
    { type: 'float32' as const, data: [eps] },
  ];
}

/** the residual input, when the kernel has one (it is optional: LayerNorm(x) or LayerNorm(x + residual)) */
const residualOf = (inputs: tf.NamedTensorInfoMap): tf.TensorInfo[] => (inputs.residual ? [inputs.residual as tf.TensorInfo] : []);

const layerNormKernel: WebGPUKernel = ({ inputs, backend, attrs }) => {
  const x = inputs.x as tf.TensorInfo;
  const extra = residualOf(inputs);
  const program = rowProgram(
    'fedloraLayerNorm',
    ['x', 'gamma', 'beta'],
    x.shape,
    extra.length > 0,
    `if (valid) {
    for (var c = tid; c < uniforms.cols; c = c + ${WORKGROUP}) {
      result[base + c] = ((input(base + c) - mean) * rstd) * gamma[c] + beta[c];
    }
  }`,
  );
  return backend.runWebGPUProgram(program, [x, inputs.gamma as tf.TensorInfo, inputs.beta as tf.TensorInfo, ...extra], 'float32', rowUniforms(x, attrs.eps));
};

const layerNormGradKernel: WebGPUKernel = ({ inputs, backend, attrs }) => {
  const x = inputs.x as tf.TensorInfo;
  const extra = residualOf(inputs);
  // dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ, x̂ = (x − mean)·rstd
  const program = rowProgram(
    'fedloraLayerNormGrad',
    ['x', 'dy', 'gamma'],
    x.shape,
    extra.length > 0,
    `var sg = 0.0;
  var sgx = 0.0;
  for (var c = tid; c < uniforms.cols; c = c + ${WORKGROUP}) {
    let g = dy[base + c] * gamma[c];
    sg = sg + g;
    sgx = sgx + g * ((input(base + c) - mean) * rstd);
  }
  partC[tid] = sg;
  partD[tid] = sgx;
  workgroupBarrier();
  reduceCD(tid);
  let meanG = partC[0] / f32(uniforms.cols);
  let meanGx = partD[0] / f32(uniforms.cols);
  if (valid) {
    for (var c = tid; c < uniforms.cols; c = c + ${WORKGROUP}) {
      let xhat = (input(base + c) - mean) * rstd;
      result[base + c] = ((dy[base + c] * gamma[c] - meanG) - xhat * meanGx) * rstd;
    }
  }`,
  );
  return backend.runWebGPUProgram(program, [x, inputs.dy as tf.TensorInfo, inputs.gamma as tf.TensorInfo, ...extra], 'float32', rowUniforms(x, attrs.eps));
};

/**
 * LayerNorm(x + residual)·gamma + beta over the last axis (LayerNorm(x) without a residual), float32, on the webgpu
 * backend (the caller checked onWebGPU). The residual sum of a transformer layer rides in the program: one dispatch.
 */
export function layerNormOnWebGPU(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number, residual?: tf.Tensor): tf.Tensor {
  return runWebGPUKernel(FORWARD, layerNormKernel, residual ? { x, gamma, beta, residual } : { x, gamma, beta }, { eps });
}

/**
 * The gradient to x of layerNormOnWebGPU for upstream gradient dy (gamma and beta frozen); with a residual, also the
 * gradient to the residual (the same tensor: a sum passes its gradient to both terms).
 */
export function layerNormGradOnWebGPU(x: tf.Tensor, dy: tf.Tensor, gamma: tf.Tensor, eps: number, residual?: tf.Tensor): tf.Tensor {
  return runWebGPUKernel(GRADIENT, layerNormGradKernel, residual ? { x, dy, gamma, residual } : { x, dy, gamma }, { eps });
}
