// Runs every *.test.ts of the workspaces with node's test runner (Node 20's --test does not expand globs itself).
// Usage: node scripts/test.mjs [filter…]   e.g. `npm test -- coordinator` runs only paths containing "coordinator".
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const roots = ['shared/src', 'coordinator/src', 'client-node/src', 'client-web/src', 'simulations/src', 'tests'];
const filters = process.argv.slice(2);
const files = roots
  .flatMap((dir) => {
    try {
      return readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile() && e.name.endsWith('.test.ts') && !e.parentPath.includes('node_modules'))
        .map((e) => relative(root, join(e.parentPath, e.name)));
    } catch {
      return [];
    }
  })
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
console.error(`running ${files.length} test files`);
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
