// Counts what a training step costs beyond its math (issue 19): the kernels tfjs dispatches and the host↔device
// syncs (tensor reads: data / dataSync / arraySync / bytes) it waits for. On a GPU a step is dispatch- and sync-bound,
// so these two numbers are what the fused and read-less paths have to bring down. Used by `npm run bench -- step`
// and scripts/step-bench.ts; tested in step-profile.test.ts.

import * as tf from '@tensorflow/tfjs';

export interface ReadCount<T> {
  result: T;
  /** tensor values read into host memory by the code (data, dataSync, arraySync, bytes: the engine's read/readSync) */
  reads: number;
  /** of which synchronous (dataSync / arraySync) */
  syncReads: number;
  /**
   * every read the backend served, each once however it nests them: `reads` plus the ones kernels make themselves
   * (wasm's GatherV2 reads its indices to check them; webgpu runs small ops on the CPU after reading their inputs)
   */
  backendReads: number;
  /** GPU programs the webgpu backend dispatched (runWebGPUProgram); null on a backend without them */
  gpuPrograms: number | null;
}

type Patchable = Record<string, unknown>;

type Fn = (...a: unknown[]) => unknown;

/**
 * Runs f while counting reads: the engine's read/readSync (what tensor.data()/dataSync() call) and the active
 * backend's (which also serve kernels' own reads). The instances' methods are wrapped (own properties shadowing their
 * classes' methods) and put back afterwards, also when f throws. A read made inside another read of the same level
 * (wasm's read calls its readSync) counts once. Reads on other threads (worker helpers) are not seen.
 */
export async function countReads<T>(f: () => Promise<T> | T): Promise<ReadCount<T>> {
  const engine = tf.engine() as unknown as Patchable;
  const backend = tf.backend() as unknown as Patchable;
  const n = { reads: 0, syncReads: 0, backendReads: 0, programs: 0 };
  const restore: Array<() => void> = [];
  const wrap = (target: Patchable, name: string, fn: (orig: Fn) => Fn) => {
    const orig = target[name];
    if (typeof orig !== 'function') return false;
    const desc = Object.getOwnPropertyDescriptor(target, name);
    target[name] = fn((orig as Fn).bind(target));
    restore.push(() => {
      if (desc) Object.defineProperty(target, name, desc);
      else delete target[name];
    });
    return true;
  };
  /** counts calls that are not nested in another counted call of the same level (depth shared by read and readSync) */
  const level = (count: (sync: boolean) => void) => {
    let depth = 0;
    return (sync: boolean) =>
      (orig: Fn): Fn =>
      (...args) => {
        if (depth === 0) count(sync);
        depth++;
        let r: unknown;
        try {
          r = orig(...args);
        } catch (err) {
          depth--;
          throw err;
        }
        if (r instanceof Promise) return r.finally(() => depth--);
        depth--;
        return r;
      };
  };
  const onEngine = level((sync) => {
    n.reads++;
    if (sync) n.syncReads++;
  });
  const onBackend = level(() => n.backendReads++);
  try {
    wrap(engine, 'read', onEngine(false));
    wrap(engine, 'readSync', onEngine(true));
    wrap(backend, 'read', onBackend(false));
    wrap(backend, 'readSync', onBackend(true));
    const gpu = wrap(backend, 'runWebGPUProgram', (orig) => (...args) => {
      n.programs++;
      return orig(...args);
    });
    const result = await f();
    return {
      result,
      reads: n.reads,
      syncReads: n.syncReads,
      backendReads: n.backendReads,
      gpuPrograms: gpu ? n.programs : null,
    };
  } finally {
    for (const undo of restore.reverse()) undo();
  }
}

export interface StepProfile {
  steps: number;
  /** tfjs kernels run (tf.profile: every runKernel, including ones a backend does without a dispatch, e.g. Reshape) */
  kernels: number;
  kernelsPerStep: number;
  reads: number;
  /** tensor reads by the code per step: the host↔device syncs the training loop asks for */
  readsPerStep: number;
  /** all backend reads per step, kernels' own included (on a GPU each is a sync too) */
  backendReadsPerStep: number;
  /** webgpu only: GPU programs dispatched per step; null elsewhere */
  gpuProgramsPerStep: number | null;
  /** the most frequent kernels, name → count per step, descending */
  topKernels: Array<[string, number]>;
}

/**
 * Profiles `run`, which must run exactly `steps` training steps: tf.profile for the kernels, countReads for the syncs.
 * Kernel profiling makes kernels slower (and, on wasm, times each one), so never time a profiled run.
 */
export async function profileSteps(
  steps: number,
  run: () => Promise<unknown>,
  top = 8,
): Promise<StepProfile> {
  if (!(steps >= 1)) throw new RangeError(`steps must be ≥ 1, got ${steps}`);
  let counted: ReadCount<unknown> | null = null;
  const info = await tf.profile(async () => {
    counted = await countReads(run);
    return [];
  });
  const c = counted as unknown as ReadCount<unknown>;
  const byName = new Map<string, number>();
  for (const k of info.kernels) byName.set(k.name, (byName.get(k.name) ?? 0) + 1);
  return {
    steps,
    kernels: info.kernels.length,
    kernelsPerStep: info.kernels.length / steps,
    reads: c.reads,
    readsPerStep: c.reads / steps,
    backendReadsPerStep: c.backendReads / steps,
    gpuProgramsPerStep: c.gpuPrograms === null ? null : c.gpuPrograms / steps,
    topKernels: [...byName.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([n, k]) => [n, k / steps]),
  };
}
