// `fedlora-site serve`: a local REST endpoint that classifies texts with the federation's adapter where the data
// lives (agent/serve.ts). Follows the coordinator's current version (polling, hot swap), or a pinned version, or an
// offline saved adapter.

import { initNodeBackend, type BackendName } from '@fedlora/shared/node/backend.ts';
import { describeError, FedloraError } from '@fedlora/shared/errors.ts';
import type { Pooling } from '@fedlora/shared/model/classifier.ts';
import { intFlag, numFlag, parseFlags, strFlag } from '../args';
import { DEFAULT_STATE_DIR } from '../agent/state';
import { fetchGlobalAdapter } from '../agent/predict';
import { Predictor } from '../agent/inference';
import { createServeApp, listen, ServingModel, type RunningServer } from '../agent/serve';
import { parseModelFlags, resolveAdapter } from './predict';

export const TOKEN_ENV = 'FEDLORA_SERVE_TOKEN';

export const help = `fedlora-site serve [options]
  Serves predictions over HTTP on this machine. The model is the coordinator's current global adapter (fetched with
  this site's keys; checked every --poll-s seconds and hot-swapped when a new version is current: requests in flight
  finish on the old one), or a pinned --version, or a saved --adapter DIR (offline, no coordinator).

  API (JSON; errors are {"error": {"code", "message"}}):
    POST /predict   {"texts": ["…", …]} → {"versionId", "predictions": [{"label", "probabilities": {label: p}}]}
    GET  /version   {"versionId", "labels", "loadedAt", "source", "swaps", "queue"}
    GET  /healthz   {"ok": true, "versionId", "uptimeSeconds"} (no token needed)
  Status: 400 malformed JSON or wrong shape or too many texts, 401 missing/wrong token, 413 body too large,
  503 queue full (Retry-After: 1).

  --port N (8765)       port to listen on (0: any free port, printed at start)
  --host ADDR           address to bind (default 127.0.0.1: this machine only)
  --adapter DIR         serve a saved adapter (fedlora or PEFT directory; see predict --help); no coordinator
  --labels A,B,...      --pooling mean|cls|pooler   --max-length N   as for predict
  --version ID          pin this adapter version instead of following the current one
  --poll-s N (30)       seconds between checks for a new current version (0: never)
  --state-dir DIR       keys and site.json from join (default ${DEFAULT_STATE_DIR}; env FEDLORA_STATE_DIR)
  --model DIR           this site's copy of the base model (default: the shipped fedlora-bert-mini)
  --backend NAME        tensorflow|webgpu|wasm|cpu (default: FEDLORA_BACKEND or automatic)
  --batch-size N (32)   texts per forward pass
  --max-texts N (256)   most texts per request (400 above)
  --max-body-kb N (1024) most request body size in KiB (413 above)
  --concurrency N (1)   batches computing at once
  --queue N (64)        batches waiting at most; a request that would exceed it gets 503
  --json                log events as JSON lines on stdout
  --quiet               no log lines
  env ${TOKEN_ENV}   when set, every route but /healthz needs "Authorization: Bearer <token>" (never logged)
  SIGINT/SIGTERM stop it: no new connections, requests in flight are answered, then it exits.`;

export interface ServeCommandOptions {
  port: number;
  host: string;
  adapter?: string;
  labels?: string[];
  pooling?: Pooling;
  maxLength?: number;
  version?: string;
  pollSeconds: number;
  stateDir: string;
  modelDir?: string;
  backend?: BackendName;
  batchSize: number;
  maxTexts: number;
  maxBodyBytes: number;
  concurrency: number;
  queueLimit: number;
  token?: string;
  json: boolean;
  quiet: boolean;
}

export function parse(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeCommandOptions | 'help' {
  const f = parseFlags(argv, {
    port: { type: 'string' }, host: { type: 'string' }, adapter: { type: 'string' }, labels: { type: 'string' },
    pooling: { type: 'string' }, 'max-length': { type: 'string' }, version: { type: 'string' }, 'poll-s': { type: 'string' },
    'state-dir': { type: 'string' }, model: { type: 'string' }, backend: { type: 'string' }, 'batch-size': { type: 'string' },
    'max-texts': { type: 'string' }, 'max-body-kb': { type: 'string' }, concurrency: { type: 'string' }, queue: { type: 'string' },
    json: { type: 'boolean' }, quiet: { type: 'boolean' },
  });
  if (f.help) return 'help';
  const adapter = strFlag(f.adapter);
  for (const flag of ['version', 'poll-s', 'state-dir'] as const)
    if (adapter && f[flag] !== undefined) throw new FedloraError('CONFIG_INVALID', `--${flag} is for the coordinator's adapters; leave it out with --adapter`);
  if (f.version !== undefined && f['poll-s'] !== undefined) throw new FedloraError('CONFIG_INVALID', '--poll-s follows the current version; a pinned --version does not change');
  const port = intFlag(f.port, 'port', 8765, 0);
  if (port > 65535) throw new FedloraError('CONFIG_INVALID', `--port must be ≤ 65535, got ${port}`);
  const { backend, pooling, labels } = parseModelFlags(f);
  const token = env[TOKEN_ENV] || undefined;
  return {
    port,
    host: strFlag(f.host) ?? '127.0.0.1',
    adapter,
    labels,
    pooling,
    maxLength: f['max-length'] === undefined ? undefined : intFlag(f['max-length'], 'max-length', 128, 3),
    version: strFlag(f.version),
    pollSeconds: numFlag(f['poll-s'], 'poll-s', 30),
    stateDir: strFlag(f['state-dir']) ?? env.FEDLORA_STATE_DIR ?? DEFAULT_STATE_DIR,
    modelDir: strFlag(f.model),
    backend,
    batchSize: intFlag(f['batch-size'], 'batch-size', 32),
    maxTexts: intFlag(f['max-texts'], 'max-texts', 256),
    maxBodyBytes: intFlag(f['max-body-kb'], 'max-body-kb', 1024) * 1024,
    concurrency: intFlag(f.concurrency, 'concurrency', 1),
    queueLimit: intFlag(f.queue, 'queue', 64, 0),
    token,
    json: Boolean(f.json),
    quiet: Boolean(f.quiet),
  };
}

export interface Serving {
  server: RunningServer;
  model: ServingModel;
  /** one check for a new current version (what the poll timer runs); true when it swapped */
  checkForNewVersion(): Promise<boolean>;
  stop(): Promise<void>;
}

/** Loads the model, starts the server and (when following the coordinator) the version poll. */
export async function startServe(o: ServeCommandOptions, out: (line: string) => void = console.log): Promise<Serving> {
  const logLine = (line: string) => o.quiet || process.stderr.write(line + '\n');
  const log = (event: string, fields: Record<string, unknown> = {}) => {
    if (o.quiet) return;
    if (o.json) out(JSON.stringify({ event, time: new Date().toISOString(), ...fields }));
    else if (event !== 'serve.predict') logLine(`${event} ${Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')}`);
  };
  const backend = await initNodeBackend({ force: o.backend, log: logLine });
  const { spec, modelDir } = await resolveAdapter({ ...o, saveAdapter: undefined }, logLine);
  const source = o.adapter ? `adapter ${o.adapter}` : o.version ? `coordinator (pinned ${o.version})` : 'coordinator (current)';
  const model = new ServingModel(Predictor.load(modelDir, spec), source);
  const { app } = createServeApp(model, { ...o, maxTextChars: 100_000, log });
  let server: RunningServer;
  try {
    server = await listen(app, o.port, o.host);
  } catch (err) {
    model.dispose();
    throw new FedloraError('CONFIG_INVALID', `cannot listen on ${o.host}:${o.port} (${describeError(err)})`, { cause: err });
  }
  log('serve.listening', { url: server.url, versionId: spec.versionId, source, backend: backend.name, auth: o.token ? 'bearer' : 'none' });

  const following = !o.adapter && !o.version;
  let checking: Promise<boolean> | null = null;
  const checkForNewVersion = (): Promise<boolean> => {
    // one check at a time: a slow fetch is not overtaken by the next tick
    checking ??= (async () => {
      try {
        const fetched = await fetchGlobalAdapter({ stateDir: o.stateDir, modelDir: o.modelDir, unlessCurrentIs: model.current.versionId, log: logLine });
        if (!fetched || fetched.spec.versionId === model.current.versionId) return false;
        const next = Predictor.load(fetched.modelDir, { ...fetched.spec, labels: o.labels ?? fetched.spec.labels, pooling: o.pooling ?? fetched.spec.pooling, maxLength: o.maxLength ?? fetched.spec.maxLength });
        const from = model.current.versionId;
        model.swap(next, source);
        log('serve.swapped', { from, to: next.versionId });
        return true;
      } catch (err) {
        // the old version keeps serving; the next tick tries again
        log('serve.poll_failed', { reason: describeError(err) });
        return false;
      } finally {
        checking = null;
      }
    })();
    return checking;
  };
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const schedule = () => {
    if (stopped || !following || o.pollSeconds <= 0) return;
    timer = setTimeout(() => void checkForNewVersion().finally(schedule), o.pollSeconds * 1000);
    timer.unref();
  };
  schedule();
  return {
    server,
    model,
    checkForNewVersion,
    stop: async () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      await server.close();
      await checking;
      model.dispose();
      log('serve.stopped', {});
    },
  };
}

export async function run(o: ServeCommandOptions, out: (line: string) => void = console.log): Promise<number> {
  const serving = await startServe(o, out);
  if (!o.json && !o.quiet) out(`serving adapter ${serving.model.current.versionId} on ${serving.server.url} (POST /predict, GET /version, GET /healthz)`);
  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      signals++;
      if (signals > 1) process.exit(130);
      process.stderr.write(`${sig}: answering requests in flight, then stopping (again to exit now)\n`);
      void serving.stop().finally(() => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        resolve();
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  return 0;
}
