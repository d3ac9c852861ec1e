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
  for (var c = tid; c < cols; c = c + ${WORKGROUP}) { s = s + x[base + c]; }
  partA[tid] = s;
  workgroupBarrier();
  reduceA(tid);
  let mean = partA[0] / f32(cols);
  var q = 0.0;
  for (var c = tid; c < cols; c = c + ${WORKGROUP}) {
    let d = x[base + c] - mean;
    q = q + d * d;
  }
  partB[tid] = q;
  workgroupBarrier();
  reduceB(tid);
  return vec2<f32>(mean, inverseSqrt(partB[0] / f32(cols) + uniforms.eps));
}`;

/** One workgroup per row; `body` runs after the statistics with `tid`, `base`, `valid`, `mean`, `rstd` in scope. */
function rowProgram(shaderKey: string, variableNames: string[], shape: number[], body: string): WebGPUProgramSpec {
  const rows = tf.util.sizeFromShape(shape) / shape[shape.length - 1];
  return {
    variableNames,
    outputShape: shape,
    shaderKey,
    dispatchLayout: { x: shape.map((_, i) => i) },
    // one workgroup per row; tfjs-webgpu folds a count over the device's per-dimension limit into 2-D
    dispatch: [rows, 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    uniforms: 'rows : i32, cols : i32, eps : f32,',
    getUserCode: () => `
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

const layerNormKernel: WebGPUKernel = ({ inputs, backend, attrs }) => {
  const x = inputs.x as tf.TensorInfo;
  const program = rowProgram(
    'fedloraLayerNorm',
    ['x', 'gamma', 'beta'],
    x.shape,
    `if (valid) {
    for (var c = tid; c < uniforms.cols; c = c + ${WORKGROUP}) {
      result[base + c] = ((x[base + c] - mean) * rstd) * gamma[c] + beta[c];
    }
  }`,
  );
  return backend.runWebGPUProgram(program, [x, inputs.gamma as tf.TensorInfo, inputs.beta as tf.TensorInfo], 'float32', rowUniforms(x, attrs.eps));
};

const layerNormGradKernel: WebGPUKernel = ({ inputs, backend, attrs }) => {
  const x = inputs.x as tf.TensorInfo;
  // dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ, x̂ = (x − mean)·rstd
  const program = rowProgram(
    'fedloraLayerNormGrad',
    ['x', 'dy', 'gamma'],
    x.shape,
    `var sg = 0.0;
  var sgx = 0.0;
  for (var c = tid; c < uniforms.cols; c = c + ${WORKGROUP}) {
    let g = dy[base + c] * gamma[c];
    sg = sg + g;
    sgx = sgx + g * ((x[base + c] - mean) * rstd);
  }
  partC[tid] = sg;
  partD[tid] = sgx;
  workgroupBarrier();
  reduceCD(tid);
  let meanG = partC[0] / f32(uniforms.cols);
  let meanGx = partD[0] / f32(uniforms.cols);
  if (valid) {
    for (var c = tid; c < uniforms.cols; c = c + ${WORKGROUP}) {
      let xhat = (x[base + c] - mean) * rstd;
      result[base + c] = ((dy[base + c] * gamma[c] - meanG) - xhat * meanGx) * rstd;
    }
  }`,
  );
  return backend.runWebGPUProgram(program, [x, inputs.dy as tf.TensorInfo, inputs.gamma as tf.TensorInfo], 'float32', rowUniforms(x, attrs.eps));
};

/** LayerNorm(x)·gamma + beta over the last axis, float32, on the webgpu backend (the caller checked onWebGPU). */
export function layerNormOnWebGPU(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  return runWebGPUKernel(FORWARD, layerNormKernel, { x, gamma, beta }, { eps });
}

/** The gradient to x of layerNormOnWebGPU for upstream gradient dy (gamma and beta frozen). */
export function layerNormGradOnWebGPU(x: tf.Tensor, dy: tf.Tensor, gamma: tf.Tensor, eps: number): tf.Tensor {
  return runWebGPUKernel(GRADIENT, layerNormGradKernel, { x, dy, gamma }, { eps });
}
