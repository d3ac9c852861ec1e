// Worker-thread entry: registers tsx so the TypeScript worker can load (a worker does not inherit the main thread's loader).
import { register } from 'tsx/esm/api';
register();
await import('./grad-worker.ts');
