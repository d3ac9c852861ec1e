// For tests that run on webgpu: SwiftShader (Chromium's software Vulkan driver, Debian package chromium) stands in
// for a GPU where no driver is configured, and useWebGPU() says why a machine cannot run webgpu at all, for t.skip.

import { existsSync } from 'node:fs';
import { initNodeBackend } from '../backend';
import { isFedloraError } from '../../errors';

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const LIBVULKAN = ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib/aarch64-linux-gnu/libvulkan.so.1', '/usr/lib64/libvulkan.so.1'];

// Read by the Vulkan loader when Dawn creates its instance (first webgpu probe), so set on import, before any probe;
// only when unset, so a machine configured for a real GPU keeps its driver.
if (process.env.VK_ICD_FILENAMES === undefined && existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;

/** Forces webgpu; a string is why this machine cannot run it (the test then skips, printing it). */
export async function useWebGPU(): Promise<string | null> {
  const icd = process.env.VK_ICD_FILENAMES;
  if (icd === undefined) return `no Vulkan driver to use: ${SWIFTSHADER_ICD} is absent (Debian package chromium) and VK_ICD_FILENAMES is unset`;
  if (icd === SWIFTSHADER_ICD && !existsSync(SWIFTSHADER_ICD)) return `${SWIFTSHADER_ICD} is absent (Debian package chromium)`;
  if (!LIBVULKAN.some(existsSync)) return 'libvulkan.so.1 is absent (Debian package libvulkan1)';
  try {
    await initNodeBackend({ force: 'webgpu', log: () => {} });
    return null;
  } catch (err) {
    if (!isFedloraError(err, 'BACKEND_UNAVAILABLE')) throw err;
    return `no WebGPU adapter: ${err.message}`;
  }
}
