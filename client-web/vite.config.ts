// Vite build of the browser site (client-web/dist, served by the coordinator at /site). Relative base so the same
// build works under /site/ or standalone; the tfjs wasm binaries are copied into dist/tfjs-wasm/ (backend.ts points
// setWasmPaths there) so the page loads nothing from a CDN; csv-parse/sync maps to csv-parse's browser build, which
// bundles its own Buffer shim, so shared/src/data/tabular-text.ts parses CSV in the tab with the Node code.

import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { defineConfig, type Plugin } from 'vite';

const require = createRequire(import.meta.url);
const wasmDir = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');

function copyTfjsWasm(): Plugin {
  return {
    name: 'fedlora-copy-tfjs-wasm',
    generateBundle() {
      for (const f of readdirSync(wasmDir).filter((n) => n.endsWith('.wasm')))
        this.emitFile({ type: 'asset', fileName: `tfjs-wasm/${f}`, source: readFileSync(join(wasmDir, f)) });
    },
  };
}

export default defineConfig({
  base: './',
  resolve: { alias: [{ find: /^csv-parse\/sync$/, replacement: 'csv-parse/browser/esm/sync' }] },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 4096 },
  plugins: [copyTfjsWasm()],
});
