// What the model's own WebGPU programs (webgpu-gelu.ts, webgpu-layer-norm.ts) use of tfjs-backend-webgpu, declared
// once: its runWebGPUProgram, which takes a program object of the shape tfjs-webgpu's own programs have (WGSL user
// code plus dispatch and uniforms), compiles it once per shader key and records it into the backend's command
// encoder like any tfjs kernel; and one registration per kernel name. Why our own programs: on a GPU the step is
// bound by dispatches, not math (docs/BENCHMARKS.md), and GELU or a LayerNorm as tfjs ops is 5 to 10 dispatches each
// way where one program does the same work.
//
// tfjs-webgpu builds a preamble around getUserCode(): the output buffer `result`, one read-only buffer per entry of
// variableNames under that name, a `uniforms` struct (shapes, `size` when asked for, then the program's own
// `uniforms` fields) and builtins copied to `localId`, `workgroupId`, ...; `main(index)` receives the global thread
// index when the dispatch layout is flat. A program object is used once: runWebGPUProgram rewrites its shaderKey.

import * as tf from '@tensorflow/tfjs';

/** The fields of tfjs-webgpu's WebGPUProgram our programs set. */
export interface WebGPUProgramSpec {
  variableNames: string[];
  outputShape: number[];
  /** names the WGSL: programs with the same key (plus the ranks and dtypes tfjs adds) share one compiled pipeline */
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  /** declare `uniforms.size` (the output's element count) */
  size?: boolean;
  /** WGSL struct fields appended to the uniforms, e.g. 'rows : i32, eps : f32,' (values in the same order) */
  uniforms?: string;
  getUserCode(): string;
}

export type ProgramUniforms = Array<{ type: 'int32' | 'float32'; data: number[] }>;

/** The part of tfjs-backend-webgpu's WebGPUBackend our kernels use. */
export interface WebGPUBackendLike {
  runWebGPUProgram(
    program: WebGPUProgramSpec,
    inputs: tf.TensorInfo[],
    outputDtype: tf.DataType,
    programUniforms?: ProgramUniforms,
  ): tf.TensorInfo;
}

export type WebGPUKernel = (args: {
  inputs: tf.NamedTensorInfoMap;
  backend: WebGPUBackendLike;
  attrs: Record<string, number>;
}) => tf.TensorInfo;

/** Workgroups of `workgroup` threads covering `size` elements; tfjs-webgpu folds a count over the device's limit. */
export function flatDispatch(size: number, workgroup: number): [number, number, number] {
  return [Math.ceil(size / workgroup), 1, 1];
}

/**
 * A program with one thread per output element, 64 to a workgroup: `body` runs for each `index` below the output's
 * size and writes result[index] (and may write more, as AdamW's packed output). `preamble` holds WGSL functions it calls.
 */
export function perElementProgram(spec: {
  shaderKey: string;
  variableNames: string[];
  outputShape: number[];
  uniforms?: string;
  preamble?: string;
  body: string;
}): WebGPUProgramSpec {
  const WORKGROUP = 64;
  return {
    variableNames: spec.variableNames,
    outputShape: spec.outputShape,
    shaderKey: spec.shaderKey,
    dispatchLayout: { x: spec.outputShape.map((_, i) => i) },
    dispatch: flatDispatch(tf.util.sizeFromShape(spec.outputShape), WORKGROUP),
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    uniforms: spec.uniforms,
    getUserCode: () => `
${spec.preamble ?? ''}
fn main(index : i32) {
  if (index < uniforms.size) {
${spec.body}
  }
}`,
  };
}

/** True when the active backend is webgpu (the only one our WGSL programs run on). */
export function onWebGPU(): boolean {
  return tf.getBackend() === 'webgpu';
}

/** Runs our kernel on the webgpu backend (the caller checked onWebGPU), registering it on first use. */
export function runWebGPUKernel(
  kernelName: string,
  kernel: WebGPUKernel,
  inputs: tf.NamedTensorMap,
  attrs: Record<string, number> = {},
): tf.Tensor {
  if (tf.getKernel(kernelName, 'webgpu') === undefined)
    tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc: kernel as unknown as tf.KernelFunc });
  return tf.engine().runKernel(kernelName, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}
