// Assembles the project's hand-written wasm kernels (text format, *.wat) into TypeScript modules holding their bytes,
// so that Node and the browser bundle load them with no file access and no assembler at run time. wabt (the
// WebAssembly Binary Toolkit's own assembler, compiled to JS) does the assembling: no hand-rolled encoder.
// The generated files are committed; shared/src/model/wasm-gelu.test.ts re-assembles the .wat and fails when the
// committed bytes differ, so the .wat stays the source of truth.
//
//   npx tsx scripts/build-wasm-kernels.ts          write the generated modules
//   npx tsx scripts/build-wasm-kernels.ts --check  exit 1 when a generated module is out of date

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WASM_KERNELS, assembleKernel, generatedModule } from '../shared/src/node/model/wasm-kernel-build.ts';

const check = process.argv.includes('--check');
let stale = 0;
for (const k of WASM_KERNELS) {
  const text = generatedModule(k, await assembleKernel(k));
  const out = fileURLToPath(k.generated);
  const current = (() => {
    try {
      return readFileSync(out, 'utf8');
    } catch {
      return '';
    }
  })();
  if (current === text) {
    console.log(`${out}: up to date`);
    continue;
  }
  if (check) {
    console.error(
      `${out}: out of date with ${fileURLToPath(k.source)}; run npx tsx scripts/build-wasm-kernels.ts`,
    );
    stale++;
  } else {
    writeFileSync(out, text);
    console.log(`${out}: written`);
  }
}
process.exit(stale ? 1 : 0);
