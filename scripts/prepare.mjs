// npm's `prepare` hook (run by `npm ci` and `npm install`): builds the web front-ends with `npm run build` (the
// admin console into coordinator/dist/console, the browser site into client-web/dist). Skipped, with a note, when
// the sources are not there yet: a Docker dependency layer installs from the package manifests alone and must run
// `npm run build` after copying the sources. FEDLORA_SKIP_BUILD=1 skips it on purpose.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

if (process.env.FEDLORA_SKIP_BUILD === '1') {
  console.error('prepare: FEDLORA_SKIP_BUILD=1, not building the web pages (run npm run build later)');
  process.exit(0);
}
if (!existsSync(new URL('../coordinator/web/index.html', import.meta.url))) {
  console.error('prepare: web sources not present (dependency-only install), not building; run npm run build after copying them');
  process.exit(0);
}
// the npm that runs this hook, so a nested npm of another version is never picked from PATH
const npm = process.env.npm_execpath;
const r = npm
  ? spawnSync(process.execPath, [npm, 'run', 'build'], { stdio: 'inherit' })
  : spawnSync('npm', ['run', 'build'], { stdio: 'inherit', shell: process.platform === 'win32' });
process.exit(r.status ?? 1);
