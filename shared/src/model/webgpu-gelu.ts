// GELU forward and gradient as one WebGPU program each. As tfjs ops GELU is 5 dispatches forward (two muls, erf,
// add, mul) and 9 backward (gelu.ts); one program each reads x (and dy) once and writes once.
//
// erf: WGSL has none; this is the Abramowitz–Stegun 7.1.26 form (|error| ≤ 1.5e-7) with tfjs's own constants, the
// one tfjs-webgpu's Erf kernel uses, so the fused and the unfused webgpu paths compute the same function.

import * as tf from '@tensorflow/tfjs';
import { perElementProgram, runWebGPUKernel, type WebGPUKernel, type WebGPUProgramSpec } from './webgpu-kernel';

const FORWARD = 'FedloraGelu';
const GRADIENT = 'FedloraGeluGrad';

const erfWgsl = () => {
  const u = tf.backend_util;
  return `
fn fedloraErf(a : f32) -> f32 {
  let t = 1.0 / (1.0 + ${u.ERF_P} * abs(a));
  return sign(a) * (1.0 - (((((${u.ERF_A5} * t + ${u.ERF_A4}) * t) + ${u.ERF_A3}) * t + ${u.ERF_A2}) * t + ${u.ERF_A1}) * t * exp(-a * a));
}`;
};

/** One elementwise program over x (and dy): `body` computes `value` from `v` (x[index]) and, for the gradient, `g`. */
function elementwise(shaderKey: string, variableNames: string[], shape: number[], body: string): WebGPUProgramSpec {
  return perElementProgram({
    shaderKey,
    variableNames,
    outputShape: shape,
    preamble: erfWgsl(),
    body: `    let v = x[index];
    ${body}
    result[index] = value;`,
  });
}

const geluKernel: WebGPUKernel = ({ inputs, backend }) => {
  const x = inputs.x as tf.TensorInfo;
  // as gelu.ts's ops: (x·0.5)·(1 + erf(x·√½))
  const program = elementwise('fedloraGelu', ['x'], x.shape, 'let value = (v * 0.5) * (1.0 + fedloraErf(v * 0.7071067811865476));');
  return backend.runWebGPUProgram(program, [x], 'float32');
};

const geluGradKernel: WebGPUKernel = ({ inputs, backend }) => {
  const x = inputs.x as tf.TensorInfo;
  const dy = inputs.dy as tf.TensorInfo;
  // dy·(Φ(x) + x·φ(x)), as gelu.ts's ops: Φ = (1 + erf(x·√½))·0.5, φ = exp(x²·(−½))/√(2π)
  const program = elementwise(
    'fedloraGeluGrad',
    ['x', 'dy'],
    x.shape,
    `let cdf = (1.0 + fedloraErf(v * 0.7071067811865476)) * 0.5;
    let pdf = exp((v * v) * -0.5) * ${1 / Math.sqrt(2 * Math.PI)};
    let value = dy[index] * (cdf + v * pdf);`,
  );
  return backend.runWebGPUProgram(program, [x, dy], 'float32');
};

/** gelu(x), float32, on the webgpu backend (the caller checked onWebGPU). No gradient: see gelu.ts. */
export function geluOnWebGPU(x: tf.Tensor): tf.Tensor {
  return runWebGPUKernel(FORWARD, geluKernel, { x });
}

/** dy·gelu'(x), float32, on the webgpu backend. */
export function geluGradOnWebGPU(x: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  return runWebGPUKernel(GRADIENT, geluGradKernel, { x, dy });
}
