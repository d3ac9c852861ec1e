// The committed wasm kernel bytes are the assembled .wat: editing the .wat without rebuilding fails here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { WASM_KERNELS, assembleKernel, generatedModule } from './wasm-kernel-build';

for (const k of WASM_KERNELS) {
  const name = k.source.pathname.split('/').pop();
  test(`when ${name} is assembled (wabt), then the committed module holds exactly its bytes`, async () => {
    const bytes = await assembleKernel(k);
    assert.ok(WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>), 'the assembled module validates');
    assert.equal(
      readFileSync(k.generated, 'utf8'),
      generatedModule(k, bytes),
      'out of date: run npx tsx scripts/build-wasm-kernels.ts',
    );
  });
}
