#!/usr/bin/env node
// Entry point of fedlora-privacy (the DP accountant's command line): runs the TypeScript sources through tsx.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../src/privacy-command.ts');
// exitCode rather than exit(): stdout is flushed before the process ends, even into a pipe
process.exitCode = main(process.argv.slice(2));
