// One LoRA branch for one frozen linear layer: Δy = dropout(x)·Aᵀ·Bᵀ·(alpha/r), with A [r, in] and B [out, r] as in
// PEFT (A random, B zero, so a fresh adapter leaves the model unchanged). Only A and B are trainable.

import * as tf from '@tensorflow/tfjs';
import { plainMatMul } from '../model/bert';
import { plainProducts } from '../model/matmul-path';
import { freeVariableName } from '../model/variable-name';
import { fusedLoraUpAvailable, loraUpOnWebGPU } from './webgpu-lora-up';

export class LoraLinear {
  readonly A: tf.Variable; // [r, in]
  readonly B: tf.Variable; // [out, r]

  constructor(
    readonly name: string,
    inFeatures: number,
    outFeatures: number,
    readonly r: number,
    readonly scaling: number,
    readonly dropout: number,
    seed: number,
  ) {
    // PEFT initialises A with kaiming_uniform(a=√5), i.e. U(-1/√in, 1/√in), and B with zeros.
    const bound = 1 / Math.sqrt(inFeatures);
    this.A = tf.variable(tf.randomUniform([r, inFeatures], -bound, bound, 'float32', seed), true, freeVariableName(`${name}.lora_A`));
    this.B = tf.variable(tf.zeros([outFeatures, r]), true, freeVariableName(`${name}.lora_B`));
  }

  /** x: [N, in] → [N, out] */
  apply(x: tf.Tensor2D, training: boolean): tf.Tensor2D {
    const xd = this.branchInput(x, training);
    if (plainProducts()) {
      // tfjs-wasm: transposed products and their default gradients leave XNNPACK (model/matmul-path.ts); transposing
      // the small A and B explicitly keeps every product, forward and backward, plain 2-D
      const lowPlain = plainMatMul(xd, tf.transpose(this.A as tf.Tensor2D)); // [N, r]
      return tf.mul(plainMatMul(lowPlain, tf.transpose(this.B as tf.Tensor2D)), this.scaling) as tf.Tensor2D; // [N, out]
    }
    const low = tf.matMul(xd, this.A, false, true); // [N, r]
    return tf.mul(tf.matMul(low, this.B, false, true), this.scaling) as tf.Tensor2D; // [N, out]
  }

  /**
   * y + the branch's term for input x: y [N, out] is the frozen layer's x·W + b. On webgpu the up-projection, the
   * scaling and the sum are one program (webgpu-lora-up.ts); elsewhere y + apply(x).
   */
  addTo(y: tf.Tensor2D, x: tf.Tensor2D, training: boolean): tf.Tensor2D {
    if (!fusedLoraUpAvailable(this.r)) return tf.add(y, this.apply(x, training)) as tf.Tensor2D;
    return loraUpOnWebGPU(y, tf.matMul(this.branchInput(x, training), this.A, false, true), this.B as tf.Tensor2D, this.scaling);
  }

  /** x with the branch's dropout when training */
  private branchInput(x: tf.Tensor2D, training: boolean): tf.Tensor2D {
    return (training && this.dropout > 0 ? tf.dropout(x, this.dropout) : x) as tf.Tensor2D;
  }

  /** The dense update this branch represents, in [in, out] orientation: scaling·Aᵀ·Bᵀ. */
  deltaWeight(): tf.Tensor2D {
    return tf.tidy(() => tf.mul(tf.matMul(this.A, this.B, true, true), this.scaling) as tf.Tensor2D);
  }

  dispose(): void {
    this.A.dispose();
    this.B.dispose();
  }
}
