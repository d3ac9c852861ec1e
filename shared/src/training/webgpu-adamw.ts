// One AdamW step over all the trainable weights as one WebGPU program. The flat-moment AdamW (optimizer.ts) is ~13
// elementwise kernels on the concatenated gradient plus, per variable, a slice, the update and the weight decay:
// ~87 dispatches a step for a LoRA adapter. Here one program reads the flat gradient, the state [weights | m | s]
// (the previous step's output, optimizer.ts) and the weight-decay mask and writes [weights′ | m′ | s′] into one buffer
// (a program has one output); the weights are then cut back into the variables (one slice each): ~23 dispatches. The per-element arithmetic is the ops' own, in
// their order, with the same float32 constants. With clipping (optimizer.ts), the program also takes the gradient's
// squared global norm and scales each gradient as clipOnDevice would before using it: the ~75 elementwise dispatches
// of clipping a LoRA adapter's gradients become the norm's 2.

import * as tf from '@tensorflow/tfjs';
import { flatDispatch, runWebGPUKernel, type WebGPUKernel } from '../model/webgpu-kernel';

const KERNEL = 'FedloraAdamW';
const WORKGROUP = 64;

/** The step's constants, as the ops path computes them (JS doubles, each rounded to float32 once). */
export interface AdamWStepConstants {
  beta1: number;
  beta2: number;
  epsilon: number;
  /** bias corrections 1 − β₁ᵗ and 1 − β₂ᵗ */
  c1: number;
  c2: number;
  learningRate: number;
  /** learning rate × weight decay */
  decay: number;
}

const adamwKernel: WebGPUKernel = ({ inputs, backend, attrs }) => {
  const clip = inputs.normSq !== undefined;
  const names = ['grad', 'state', 'decayMask', ...(clip ? ['normSq'] : [])];
  const n = tf.util.sizeFromShape((inputs.grad as tf.TensorInfo).shape);
  const program = {
    variableNames: names,
    outputShape: [3 * n],
    shaderKey: clip ? 'fedloraAdamWClip' : 'fedloraAdamW',
    dispatchLayout: { x: [0] },
    dispatch: flatDispatch(n, WORKGROUP),
    workgroupSize: [WORKGROUP, 1, 1] as [number, number, number],
    uniforms: 'n : i32, beta1 : f32, oneMinusBeta1 : f32, beta2 : f32, oneMinusBeta2 : f32, c1 : f32, c2 : f32, eps : f32, lr : f32, lrDecay : f32, maxNorm : f32,',
    getUserCode: () => `
fn main(i : i32) {
  let n = uniforms.n;
  if (i < n) {
    ${
      clip
        ? `// as clipOnDevice: scale = norm > maxNorm ? maxNorm / (norm + 1e-6) : 1, norm = √(Σg²); maxNorm 0 leaves g
    let norm = sqrt(normSq[0]);
    let scale = select(1.0, uniforms.maxNorm / (norm + 1e-6), uniforms.maxNorm > 0.0 && norm > uniforms.maxNorm);
    let g = grad[i] * scale;`
        : 'let g = grad[i];'
    }
    let p = state[i];
    // as optimizer.ts: m·β₁ + g·(1 − β₁); s·β₂ + g²·(1 − β₂); (m/c1) / (√(s/c2) + ε); w − update·lr − w·(lr·wd)
    let m1 = state[n + i] * uniforms.beta1 + g * uniforms.oneMinusBeta1;
    let s1 = state[2 * n + i] * uniforms.beta2 + (g * g) * uniforms.oneMinusBeta2;
    let update = (m1 / uniforms.c1) / (sqrt(s1 / uniforms.c2) + uniforms.eps);
    let next = p - update * uniforms.lr;
    result[i] = select(next, next - p * uniforms.lrDecay, decayMask[i] != 0.0);
    result[n + i] = m1;
    result[2 * n + i] = s1;
  }
}`,
  };
  const f32 = (x: number) => ({ type: 'float32' as const, data: [x] });
  return backend.runWebGPUProgram(
    program,
    names.map((k) => inputs[k] as tf.TensorInfo),
    'float32',
    [
      { type: 'int32', data: [n] },
      f32(attrs.beta1),
      f32(1 - attrs.beta1),
      f32(attrs.beta2),
      f32(1 - attrs.beta2),
      f32(attrs.c1),
      f32(attrs.c2),
      f32(attrs.epsilon),
      f32(attrs.learningRate),
      f32(attrs.decay),
      f32(attrs.maxNorm ?? 0),
    ],
  );
};

/**
 * [weights′ | m′ | s′] (3n) from the flat gradient (n), the state [weights | m | s] (3n) and the weight-decay mask (n;
 * 1 where decay applies), on the webgpu backend (the caller checked onWebGPU and adamwFitsOnWebGPU). With `clip`, the
 * gradient is first scaled to at most clip.maxNorm by its squared global norm clip.normSq (a scalar tensor).
 */
export function adamwStepOnWebGPU(
  flat: { grad: tf.Tensor; state: tf.Tensor; decayMask: tf.Tensor },
  k: AdamWStepConstants,
  clip?: { normSq: tf.Scalar; maxNorm: number },
): tf.Tensor1D {
  const inputs = clip ? { ...flat, normSq: clip.normSq } : flat;
  return runWebGPUKernel(KERNEL, adamwKernel, inputs, { ...k, maxNorm: clip?.maxNorm ?? 0 }) as tf.Tensor1D;
}

/** True when the packed output of n weights fits one storage buffer binding of the active webgpu device. */
export function adamwFitsOnWebGPU(n: number): boolean {
  const device = (tf.backend() as unknown as { device?: { limits?: { maxStorageBufferBindingSize?: number } } }).device;
  const limit = device?.limits?.maxStorageBufferBindingSize ?? 128 * 2 ** 20; // WebGPU's default limit
  return 3 * n * 4 <= limit;
}
