// tf.unstack along axis 0 for the wasm backend, as a kernel of our own that copies each slab straight out of the wasm
// heap. Why: tfjs-wasm's Slice (and so Unpack and SplitV, built on it) first copies the *whole* input out of the heap
// with readSync, for every output: unstacking a [64, 64, 64] tensor copied 64 MB and took ~25 ms, longer than the
// products it fed (attention-matmul.ts). Here each output costs one copyWithin of its own bytes. No gradient: it is
// only used inside a tf.customGrad whose gradient is written out.

import * as tf from '@tensorflow/tfjs';

const KERNEL = 'FedloraUnstackRows';

/** The parts of tfjs-backend-wasm's BackendWasm this kernel uses (the same ones its own kernels use). */
interface WasmBackendLike {
  dataIdMap: { get(id: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  wasm: { HEAPU8: Uint8Array };
}

function unstackRows({
  inputs,
  backend,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
}): tf.TensorInfo[] {
  const x = inputs.x as tf.TensorInfo;
  const be = backend as WasmBackendLike;
  const [n, ...rest] = x.shape;
  const bytes = rest.reduce((a, b) => a * b, 1) * 4; // float32 only (checked by the caller)
  const from = be.dataIdMap.get(x.dataId).memoryOffset;
  const outs: tf.TensorInfo[] = [];
  for (let i = 0; i < n; i++) {
    const out = be.makeOutput(rest, x.dtype);
    const to = be.dataIdMap.get(out.dataId).memoryOffset;
    // HEAPU8 read after makeOutput: an allocation may grow the wasm memory and replace the view
    be.wasm.HEAPU8.copyWithin(to, from + i * bytes, from + (i + 1) * bytes);
    outs.push(out);
  }
  return outs;
}

let registered = false;

/** x [G, ...] float32 on the wasm backend → G tensors of shape [...]; tf.unstack's result, without its copies. */
export function unstackOnWasm<R extends tf.Rank>(x: tf.Tensor): tf.Tensor<R>[] {
  if (tf.getBackend() !== 'wasm' || x.dtype !== 'float32') return tf.unstack(x) as tf.Tensor<R>[];
  if (!registered) {
    if (tf.getKernel(KERNEL, 'wasm') === undefined)
      tf.registerKernel({
        kernelName: KERNEL,
        backendName: 'wasm',
        kernelFunc: unstackRows as unknown as tf.KernelFunc,
      });
    registered = true;
  }
  return tf.engine().runKernel(KERNEL, { x }, {}) as unknown as tf.Tensor<R>[];
}
