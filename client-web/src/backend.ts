// The browser site's one tfjs backend entry: WebGPU first, then WebGL, then wasm (CPU SIMD), the first that
// initializes wins. The wasm binaries are copied next to the page by vite.config.ts (tfjs-wasm/), so setWasmPaths
// points there instead of a CDN: the page fetches nothing from anywhere but its coordinator.

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { FedloraError } from '@fedlora/shared/errors.ts';

export type WebBackendName = 'webgpu' | 'webgl' | 'wasm';
export const BACKEND_ORDER: readonly WebBackendName[] = ['webgpu', 'webgl', 'wasm'];

export interface WebBackendInfo {
  name: WebBackendName;
  /** why the earlier backends were skipped, one line each */
  skipped: string[];
}

async function tryBackend(name: WebBackendName): Promise<string | null> {
  if (name === 'webgpu' && !('gpu' in navigator)) return 'navigator.gpu is absent (no WebGPU in this browser)';
  if (name === 'wasm') setWasmPaths(new URL('tfjs-wasm/', document.baseURI).href);
  try {
    if (!(await tf.setBackend(name))) return 'failed to initialize';
    await tf.ready();
    // one tiny op proves the backend really runs (a WebGPU adapter can exist and still fail on first use)
    const probe = tf.tensor1d([1, 2]).square().sum();
    const v = (await probe.data())[0];
    probe.dispose();
    return v === 5 ? null : `probe computed ${v}, expected 5`;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Picks the first working backend of `order` (default WebGPU → WebGL → wasm); `force` tries only that one. */
export async function initWebBackend(force?: WebBackendName): Promise<WebBackendInfo> {
  const skipped: string[] = [];
  for (const name of force ? [force] : BACKEND_ORDER) {
    const why = await tryBackend(name);
    if (why === null) return { name, skipped };
    skipped.push(`${name}: ${why}`);
  }
  throw new FedloraError('BACKEND_UNAVAILABLE', `no tfjs backend works in this browser (${skipped.join('; ')})`);
}
