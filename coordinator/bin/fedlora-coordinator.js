#!/usr/bin/env node
// Entry point of the coordinator: runs the TypeScript sources through tsx (no build step).
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../src/main.ts');
const code = await main(process.argv.slice(2));
if (code !== null) process.exit(code);
