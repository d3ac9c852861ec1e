// tfjs-wasm's Identity kernel copies its input; tfjs-cpu's and tfjs-webgpu's share the data under a reference count,
// as tfjs-wasm's own Reshape does. It matters because tfjs runs Identity for every tensor it keeps for a backward
// pass (engine.clone in saveTensorsForBackwardMode): ~210 copies per training step of the default model at 16 × 64,
// ~10 ms of a ~550 ms step, and every saved activation held twice. Sharing is safe for the reason it is on the
// other backends: tensors are immutable (no kernel, tfjs's or ours, writes into an input; Variable.assign swaps the
// data, it does not overwrite it).

import * as tf from '@tensorflow/tfjs';

interface RefCountingBackend {
  incRef(dataId: object): void;
}

const sharingIdentity = (({ inputs, backend }: { inputs: { x: tf.TensorInfo }; backend: RefCountingBackend }) => {
  const { x } = inputs;
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}) as unknown as tf.KernelFunc;

let replaced = false;

/** Replaces tfjs-wasm's copying Identity with a sharing one (idempotent; before or after the backend starts). */
export function shareIdentityOnWasm(): void {
  if (replaced) return;
  const original = tf.getKernel('Identity', 'wasm');
  if (original === undefined) return; // tfjs-backend-wasm not loaded: nothing to replace
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({
    kernelName: 'Identity',
    backendName: 'wasm',
    // strings live outside tfjs-wasm's memory: its own kernel handles them
    kernelFunc: (args) => ((args.inputs.x as tf.TensorInfo).dtype === 'string' ? original.kernelFunc(args) : sharingIdentity(args)),
  });
  replaced = true;
}
