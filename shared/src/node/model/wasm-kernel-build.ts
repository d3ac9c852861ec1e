// Node-side build of the hand-written wasm kernels: .wat text → bytes (wabt) → a generated TypeScript module. Used by
// scripts/build-wasm-kernels.ts to write the modules and by the kernels' tests to check the committed ones.

import { readFileSync } from 'node:fs';
import wabtInit from 'wabt';

export interface WasmKernelSource {
  /** The .wat file, the source of truth. */
  source: URL;
  /** The generated module that exports the bytes as base64. */
  generated: URL;
  /** Name of the exported constant. */
  exportName: string;
}

export const WASM_KERNELS: readonly WasmKernelSource[] = [
  {
    source: new URL('../../model/wasm-gelu.wat', import.meta.url),
    generated: new URL('../../model/wasm-gelu-bytes.ts', import.meta.url),
    exportName: 'WASM_GELU_BASE64',
  },
];

/** The module's bytes: the .wat assembled with SIMD enabled, no names section (the bytes only run, never debug). */
export async function assembleKernel(k: WasmKernelSource): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const module = wabt.parseWat(k.source.pathname, readFileSync(k.source, 'utf8'), { simd: true });
  try {
    module.validate();
    return module.toBinary({ log: false, write_debug_names: false }).buffer;
  } finally {
    module.destroy();
  }
}

/** The text of the generated TypeScript module for these bytes. */
export function generatedModule(k: WasmKernelSource, bytes: Uint8Array): string {
  const name = k.source.pathname.split('/').pop();
  const b64 = Buffer.from(bytes).toString('base64');
  const lines = b64.match(/.{1,100}/g) ?? [];
  return (
    `// Generated from ${name} by \`npx tsx scripts/build-wasm-kernels.ts\`: do not edit (edit the .wat, then rerun).\n` +
    `export const ${k.exportName} =\n` +
    lines.map((l, i) => `  '${l}'${i === lines.length - 1 ? ';' : ' +'}`).join('\n') +
    '\n'
  );
}
