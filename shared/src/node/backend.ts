// Node-only tfjs backend selection: tfjs-node-gpu → tfjs-node → webgpu (Dawn, hardware adapters only) → wasm → cpu.
// See docs/BACKENDS.md for the order, FEDLORA_BACKEND, and how WebGPU runs in Node through the `webgpu` package.

import * as tf from '@tensorflow/tfjs'; // the full package: gradients are registered, unlike tfjs-core alone
import { createRequire } from 'node:module';
import path from 'node:path';
import { FedloraError } from '../errors';
import { shareIdentityOnWasm } from '../model/wasm-identity';

export type BackendName = 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';

export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'webgpu', 'wasm', 'cpu'];

export interface BackendInfo {
  name: BackendName;
  /** Human-readable: the adapter description ('SwiftShader driver 5.0.0', 'NVIDIA H100 ...') or the build used. */
  detail: string;
  /** True when the math runs on an accelerator (not a CPU, not a software GPU). */
  hardware: boolean;
}

export interface InitBackendOptions {
  /** Forces one backend; wins over FEDLORA_BACKEND. A forced backend that cannot start is an error, never a fallback. */
  force?: BackendName;
  /** Where the one-line choice is written; default console.error (stdout stays clean for command output). */
  log?: (line: string) => void;
}

type Attempt = { ok: true; info: BackendInfo } | { ok: false; reason: string };

/** Env var read by initNodeBackend; 'auto' or empty means automatic selection. */
export const BACKEND_ENV = 'FEDLORA_BACKEND';

// The same preference tfjs-backend-webgpu uses for its own adapter request, so the adapter we vet is the one it gets.
const POWER_PREFERENCE = 'high-performance';
// Matches software rasterizers by adapter info: SwiftShader (Chromium), llvmpipe/lavapipe (Mesa), WARP (Windows).
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|software|basic render|warp/i;
const TFJS_NODE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

let current: BackendInfo | null = null;
// Serializes init calls: tfjs has one global engine, and two overlapping setBackend calls would race.
let queue: Promise<unknown> = Promise.resolve();

/**
 * Picks and initializes the tfjs backend. Idempotent: a second call returns the backend already active unless it
 * forces a different one. FEDLORA_BACKEND (env) or opts.force forces one backend; a forced but unavailable backend
 * throws FedloraError('BACKEND_UNAVAILABLE') saying why. SwiftShader (a CPU-emulated GPU) is never chosen
 * automatically: it is far slower than wasm, so it is only used when forced.
 */
export function initNodeBackend(opts: InitBackendOptions = {}): Promise<BackendInfo> {
  const run = queue.then(() => select(opts));
  queue = run.catch(() => undefined);
  return run;
}

/** The backend chosen by initNodeBackend, or null if none was chosen or tf.setBackend switched away from it since. */
export function currentBackend(): BackendInfo | null {
  return current !== null && tf.getBackend() === current.name ? current : null;
}

/** Reads FEDLORA_BACKEND: undefined for automatic selection; CONFIG_INVALID for an unknown value. */
export function backendFromEnv(env: NodeJS.ProcessEnv = process.env): BackendName | undefined {
  const raw = env[BACKEND_ENV]?.trim().toLowerCase();
  if (raw === undefined || raw === '' || raw === 'auto') return undefined;
  if ((BACKEND_NAMES as readonly string[]).includes(raw)) return raw as BackendName;
  throw new FedloraError(
    'CONFIG_INVALID',
    `${BACKEND_ENV}='${env[BACKEND_ENV]}' is not a backend; use one of auto, ${BACKEND_NAMES.join(', ')}`,
  );
}

async function select(opts: InitBackendOptions): Promise<BackendInfo> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const force = opts.force ?? backendFromEnv();
  const active = currentBackend();
  if (active !== null && (force === undefined || force === active.name)) return active;

  if (force !== undefined) {
    if (!BACKEND_NAMES.includes(force)) {
      throw new FedloraError(
        'CONFIG_INVALID',
        `unknown backend '${String(force)}'; use one of ${BACKEND_NAMES.join(', ')}`,
      );
    }
    const source = opts.force !== undefined ? 'opts.force' : BACKEND_ENV;
    const attempt = await tryBackend(force, true);
    if (!attempt.ok) {
      throw new FedloraError(
        'BACKEND_UNAVAILABLE',
        `backend '${force}' was forced (${source}) but is unavailable: ${attempt.reason}`,
      );
    }
    current = attempt.info;
    log(`fedlora backend: ${describe(attempt.info)} (forced by ${source})`);
    return attempt.info;
  }

  const skipped: string[] = [];
  for (const name of BACKEND_NAMES) {
    const attempt = await tryBackend(name, false);
    if (attempt.ok) {
      current = attempt.info;
      log(
        `fedlora backend: ${describe(attempt.info)}${skipped.length > 0 ? `; skipped ${skipped.join('; ')}` : ''}`,
      );
      return attempt.info;
    }
    skipped.push(`${name}: ${attempt.reason}`);
  }
  // Unreachable in practice: the cpu backend ships inside @tensorflow/tfjs.
  throw new FedloraError('BACKEND_UNAVAILABLE', `no tfjs backend could start: ${skipped.join('; ')}`);
}

function describe(info: BackendInfo): string {
  return `${info.name} [${info.detail}]${info.hardware ? ' (hardware)' : ''}`;
}

function tryBackend(name: BackendName, forced: boolean): Promise<Attempt> {
  switch (name) {
    case 'tensorflow':
      return tryTensorflow();
    case 'webgpu':
      return tryWebgpu(forced);
    case 'wasm':
      return tryWasm();
    case 'cpu':
      // the cpu backend's first write prints an advert for tfjs-node through tfjs's logger, which PROD silences;
      // our own selection line already says which backend runs and why
      tf.env().set('PROD', true);
      return activate('cpu', 'tfjs-backend-cpu, plain JavaScript', false);
  }
}

async function activate(name: BackendName, detail: string, hardware: boolean): Promise<Attempt> {
  // setBackend returns false (after a console warning from tfjs) rather than throwing when init fails.
  if (await tf.setBackend(name)) return { ok: true, info: { name, detail, hardware } };
  return { ok: false, reason: `tf.setBackend('${name}') failed (tfjs printed the cause above)` };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0] : String(err);
}

// ---- tfjs-node / tfjs-node-gpu: optional, since their install downloads libtensorflow -------------------------

async function tryTensorflow(): Promise<Attempt> {
  const missing: string[] = [];
  const failed: string[] = [];
  for (const pkg of TFJS_NODE_PACKAGES) {
    try {
      // A variable specifier keeps tsc from requiring the (absent) package's types; absence is a normal outcome.
      const specifier: string = pkg;
      await import(specifier);
    } catch (err) {
      const notFound =
        (err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && message(err).includes(pkg);
      if (notFound) missing.push(pkg);
      else failed.push(`${pkg} failed to load: ${message(err)}`);
      continue;
    }
    const gpu = pkg === '@tensorflow/tfjs-node-gpu';
    return activate(
      'tensorflow',
      gpu ? 'tfjs-node-gpu, libtensorflow with CUDA' : 'tfjs-node, libtensorflow on CPU',
      gpu,
    );
  }
  if (missing.length > 0) {
    failed.unshift(
      `${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not installed ` +
        '(optional dependencies; their install downloads libtensorflow, which failed or was skipped)',
    );
  }
  return { ok: false, reason: failed.join('; ') };
}

// ---- WebGPU through Dawn's Node binding (`webgpu` package) -----------------------------------------------------

interface AdapterProbe {
  detail: string;
  hardware: boolean;
}

let probe: Promise<AdapterProbe | string> | null = null;

async function tryWebgpu(allowSoftware: boolean): Promise<Attempt> {
  probe ??= probeAdapter();
  const found = await probe;
  if (typeof found === 'string') return { ok: false, reason: found };
  if (!found.hardware && !allowSoftware) {
    return {
      ok: false,
      reason: `adapter '${found.detail}' is a software GPU, slower than wasm; not chosen automatically (force with ${BACKEND_ENV}=webgpu)`,
    };
  }
  try {
    // Imported only now: it registers itself (priority above wasm) only if navigator.gpu exists at import time.
    await import('@tensorflow/tfjs-backend-webgpu');
  } catch (err) {
    return { ok: false, reason: `@tensorflow/tfjs-backend-webgpu failed to load: ${message(err)}` };
  }
  return activate('webgpu', found.detail, found.hardware);
}

/** Installs navigator.gpu from Dawn (once) and asks it for an adapter; a string is the reason there is none. */
async function probeAdapter(): Promise<AdapterProbe | string> {
  let gpu: GPU;
  try {
    gpu = await installNavigatorGpu();
  } catch (err) {
    return `the 'webgpu' package (Dawn for Node) failed to load: ${message(err)}`;
  }
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: POWER_PREFERENCE });
  } catch (err) {
    return `requestAdapter failed: ${message(err)}`;
  }
  if (adapter === null) {
    const icd = process.env.VK_ICD_FILENAMES;
    return (
      'Dawn found no usable WebGPU adapter (needs a Vulkan driver and libvulkan1; ' +
      (icd
        ? `VK_ICD_FILENAMES=${icd}`
        : 'for SwiftShader set VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json') +
      ')'
    );
  }
  const info = await adapterInfo(adapter);
  const text = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  const fallback =
    info.isFallbackAdapter === true ||
    (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  return {
    detail: info.description || info.device || text || 'unknown adapter',
    hardware: !fallback && !SOFTWARE_ADAPTER.test(text),
  };
}

interface AdapterInfoFields {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

// `adapter.info` is the current spec; older Dawn builds only had the async requestAdapterInfo().
async function adapterInfo(adapter: GPUAdapter): Promise<AdapterInfoFields> {
  const a = adapter as unknown as {
    info?: AdapterInfoFields;
    requestAdapterInfo?: () => Promise<AdapterInfoFields>;
  };
  if (a.info !== undefined) return a.info;
  if (typeof a.requestAdapterInfo === 'function') return a.requestAdapterInfo();
  return {};
}

/**
 * Node 20 has no navigator; tfjs-backend-webgpu reads navigator.gpu plus the GPUBufferUsage/GPUMapMode/... globals.
 * Existing globals win (Node 21+ has a navigator without gpu; a test may have installed its own).
 */
async function installNavigatorGpu(): Promise<GPU> {
  const g = globalThis as unknown as Record<string, unknown> & { navigator?: { gpu?: GPU } };
  if (g.navigator?.gpu) return g.navigator.gpu;
  const { create, globals } = await import('webgpu');
  for (const [key, value] of Object.entries(globals)) if (!(key in g)) g[key] = value;
  // No Dawn flags: the Vulkan loader picks drivers from the system, or from VK_ICD_FILENAMES when set.
  const gpu = create([]);
  if (g.navigator === undefined) {
    g.navigator = { gpu };
  } else {
    Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, enumerable: true });
  }
  return gpu;
}

// ---- wasm: single-threaded SIMD build, loaded from node_modules by file path -----------------------------------

let wasmPathsSet = false;

async function tryWasm(): Promise<Attempt> {
  let simd: boolean;
  try {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    if (!wasmPathsSet) {
      // Emscripten in Node reads `prefix + fileName` with fs, so a directory path with a trailing separator works.
      // FEDLORA_WASM_DIR: where the .wasm files are when there is no node_modules (the scripts/gpu-bench.sh bundle).
      const dir =
        process.env.FEDLORA_WASM_DIR ??
        path.dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'));
      wasm.setWasmPaths(dir + path.sep);
      wasmPathsSet = true;
    }
    // The threaded build needs browser-style Workers; Node detects false today, this pins it.
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
    shareIdentityOnWasm();
  } catch (err) {
    return { ok: false, reason: `@tensorflow/tfjs-backend-wasm failed to load: ${message(err)}` };
  }
  return activate('wasm', simd ? 'SIMD, single thread' : 'no SIMD, single thread', false);
}
