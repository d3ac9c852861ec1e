// Rows of a float32 matrix at int32 indices, as a tfjs kernel of our own on the wasm backend: one memmove per row
// inside tfjs-wasm's memory. Why: tfjs-wasm's GatherV2 computes every output element's source through a scalar index
// loop, ~9 ms for the word embeddings of a 16 × 64 batch (and as much for the two-row token-type table); the row
// copies take ~0.1 ms. No gradient here: bert.ts's gatherRows writes it out (scatterND).

import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../errors';
import { byteOffset, runWasmKernel, type WasmKernel } from './wasm-kernel';

const KERNEL = 'FedloraGatherRows';

const gatherRowsKernel: WasmKernel = ({ inputs, backend: be }) => {
  const x = inputs.x as tf.TensorInfo;
  const indices = inputs.indices as tf.TensorInfo;
  const [rows, width] = x.shape;
  const count = indices.shape[0];
  const idsAt = byteOffset(be, indices) / 4;
  for (let i = 0; i < count; i++) {
    const row = be.wasm.HEAP32[idsAt + i];
    if (!(row >= 0 && row < rows))
      throw new FedloraError('SHAPE_MISMATCH', `row index ${row} at position ${i} is outside [0, ${rows})`);
  }
  const out = be.makeOutput([count, width], 'float32'); // may grow the memory: take the heap views after it
  const heap = be.wasm.HEAPF32;
  const ids = be.wasm.HEAP32;
  const xAt = byteOffset(be, x) / 4;
  const outAt = byteOffset(be, out) / 4;
  for (let i = 0; i < count; i++) {
    const row = ids[idsAt + i];
    heap.copyWithin(outAt + i * width, xAt + row * width, xAt + (row + 1) * width);
  }
  return out;
};

/** x [N, D] float32, indices [M] int32 → x's rows at the indices [M, D], on the wasm backend (the caller checks). */
export function gatherRowsOnWasm(x: tf.Tensor2D, indices: tf.Tensor1D): tf.Tensor2D {
  return runWasmKernel(KERNEL, gatherRowsKernel, { x, indices }) as tf.Tensor2D;
}
