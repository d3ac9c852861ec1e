// Builds the admin console (coordinator/web/) into coordinator/dist/console/, which the coordinator serves at `/`.
// Run by `npm run build` (and so by `npm ci`, through the root `prepare` script).
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('./web', import.meta.url)),
  base: '/',
  build: {
    outDir: fileURLToPath(new URL('./dist/console', import.meta.url)),
    emptyOutDir: true,
    // chart.js + socket.io-client: one ~250 kB bundle is fine for an operator page
    chunkSizeWarningLimit: 600,
  },
});
