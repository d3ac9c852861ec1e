// What the model's own tfjs kernels on the wasm backend (wasm-slice-matmul.ts, wasm-gelu.ts, wasm-gather-rows.ts) use
// of tfjs-backend-wasm, declared once: its BackendWasm's tensor memory map, output allocation and the emscripten
// module (heap views, memory, exported functions), the same parts tfjs-wasm's own kernels use; and one registration.

import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-backend-wasm's BackendWasm our kernels use. */
export interface WasmBackendLike {
  dataIdMap: { get(id: object): { memoryOffset: number } };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  wasm: {
    /** heap views: emscripten replaces them when the memory grows, so read them after any makeOutput */
    HEAPF32: Float32Array;
    HEAP32: Int32Array;
    asm?: { memory?: unknown };
    cwrap(name: string, ret: null, args: string[]): (...args: unknown[]) => void;
    tfjs: {
      registerTensor(id: number, size: number, memoryOffset: number): void;
      disposeData(id: number): void;
    };
  };
}

export type WasmKernel = (args: { inputs: tf.NamedTensorInfoMap; backend: WasmBackendLike }) => tf.TensorInfo;

/** Byte offset of a tensor's data in tfjs-wasm's memory. */
export function byteOffset(be: WasmBackendLike, t: tf.TensorInfo): number {
  return be.dataIdMap.get(t.dataId).memoryOffset;
}

/** Registers the kernel for the wasm backend unless one of that name is registered (idempotent, per thread). */
export function registerWasmKernel(kernelName: string, kernel: WasmKernel): void {
  if (tf.getKernel(kernelName, 'wasm') === undefined)
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernel as unknown as tf.KernelFunc });
}

/** Runs our kernel on the wasm backend (the caller checked that it is active), registering it on first use. */
export function runWasmKernel(kernelName: string, kernel: WasmKernel, inputs: tf.NamedTensorMap): tf.Tensor {
  registerWasmKernel(kernelName, kernel); // a map lookup once registered
  return tf.engine().runKernel(kernelName, inputs, {}) as tf.Tensor;
}
