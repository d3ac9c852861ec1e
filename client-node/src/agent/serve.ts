// The site's local prediction endpoint (`fedlora-site serve`): POST /predict, GET /healthz, GET /version, on express.
// - Hot swap: ServingModel holds the current Predictor; a request leases the predictor it started on for all of its
//   batches, and swap() replaces the current one at once: requests in flight finish on the old predictor, which is
//   disposed when its last lease ends. No request fails for a swap.
// - Bounds: a JSON body over maxBodyBytes is 413; more than maxTexts texts, a malformed body or a wrong shape is 400;
//   at most `concurrency` batches compute at once, at most `queueLimit` wait, and a request that would overfill the
//   queue is 503 at once (with Retry-After).
// - Optional bearer token: every route but /healthz needs "Authorization: Bearer <token>" (401 otherwise); compared in
//   constant time and never logged.
// Errors are {"error": {"code", "message"}} as the coordinator's API answers.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { describeError, isFedloraError } from '@fedlora/shared/errors.ts';
import { lengthBatches, type LabelPrediction, type Predictor } from './inference';

/** The subset of Predictor the server needs (tests may pass a fake). */
export type ServablePredictor = Pick<Predictor, 'versionId' | 'labels' | 'predict' | 'dispose'>;

interface Slot {
  predictor: ServablePredictor;
  leases: number;
  retired: boolean;
  loadedAt: string;
  source: string;
}

/** The predictor in use, swapped atomically; old ones are disposed when their last request is done. */
export class ServingModel {
  private slot: Slot;
  swaps = 0;

  constructor(first: ServablePredictor, source = 'unknown') {
    this.slot = { predictor: first, leases: 0, retired: false, loadedAt: new Date().toISOString(), source };
  }

  get current(): { versionId: string; labels: string[]; loadedAt: string; source: string } {
    const s = this.slot;
    return { versionId: s.predictor.versionId, labels: s.predictor.labels, loadedAt: s.loadedAt, source: s.source };
  }

  /** The current predictor, kept alive until release() is called (once). */
  lease(): { predictor: ServablePredictor; release: () => void } {
    const s = this.slot;
    s.leases++;
    let released = false;
    return {
      predictor: s.predictor,
      release: () => {
        if (released) return;
        released = true;
        s.leases--;
        if (s.retired && s.leases === 0) s.predictor.dispose();
      },
    };
  }

  /** Makes `next` current; the previous predictor is disposed now if idle, else when its last lease ends. */
  swap(next: ServablePredictor, source = 'unknown'): void {
    const old = this.slot;
    this.slot = { predictor: next, leases: 0, retired: false, loadedAt: new Date().toISOString(), source };
    this.swaps++;
    old.retired = true;
    if (old.leases === 0) old.predictor.dispose();
  }

  dispose(): void {
    this.slot.retired = true;
    if (this.slot.leases === 0) this.slot.predictor.dispose();
  }
}

/** At most `concurrency` jobs at once, at most `queueLimit` waiting; reserve() refuses what would overfill. */
export class BatchQueue {
  private running = 0;
  private waiting: (() => void)[] = [];
  private reserved = 0;

  constructor(
    readonly concurrency: number,
    readonly queueLimit: number,
  ) {}

  get stats(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  /** Reserves room for `jobs` jobs of one request; false when running + waiting would exceed the bounds. */
  reserve(jobs: number): boolean {
    if (this.reserved + jobs > this.concurrency + this.queueLimit && this.reserved > 0) return false;
    this.reserved += jobs;
    return true;
  }

  unreserve(jobs: number): void {
    this.reserved -= jobs;
  }

  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      // a forward pass blocks the thread (wasm/cpu compute synchronously) and queued passes would otherwise follow
      // each other in microtasks: yield to the event loop between them, so new requests are read and /healthz answers
      await new Promise<void>((resolve) => setImmediate(resolve));
      return await job();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}

export interface ServeOptions {
  /** texts per forward pass (a request's texts are cut into batches of this size) */
  batchSize: number;
  /** most texts one request may carry */
  maxTexts: number;
  /** most bytes a request body may have */
  maxBodyBytes: number;
  /** most characters one text may have (longer texts are truncated to the model's tokens anyway) */
  maxTextChars: number;
  concurrency: number;
  queueLimit: number;
  /** bearer token; undefined = no authentication */
  token?: string;
  log: (event: string, fields?: Record<string, unknown>) => void;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function tokenCheck(token: string): (given: string | undefined) => boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  const expected = digest(token);
  return (given) => {
    const m = /^Bearer (.+)$/.exec(given ?? '');
    return m !== null && timingSafeEqual(digest(m[1]), expected);
  };
}

/** Validates a /predict body: {"texts": [string, …]} with 1..maxTexts non-empty strings. */
export function parsePredictBody(body: unknown, o: Pick<ServeOptions, 'maxTexts' | 'maxTextChars'>): string[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new HttpError(400, 'BAD_REQUEST', 'body must be a JSON object {"texts": ["…", …]}');
  const extra = Object.keys(body).filter((k) => k !== 'texts');
  if (extra.length) throw new HttpError(400, 'BAD_REQUEST', `unknown field(s) ${extra.map((k) => JSON.stringify(k)).join(', ')}; the body is {"texts": [...]}`);
  const texts = (body as { texts?: unknown }).texts;
  if (!Array.isArray(texts)) throw new HttpError(400, 'BAD_REQUEST', '"texts" must be an array of strings');
  if (texts.length === 0) throw new HttpError(400, 'BAD_REQUEST', '"texts" is empty');
  if (texts.length > o.maxTexts) throw new HttpError(400, 'TOO_MANY_TEXTS', `"texts" has ${texts.length} entries, over the limit of ${o.maxTexts} per request`);
  texts.forEach((t, i) => {
    if (typeof t !== 'string') throw new HttpError(400, 'BAD_REQUEST', `texts[${i}] is ${t === null ? 'null' : typeof t}, not a string`);
    if (t.trim() === '') throw new HttpError(400, 'BAD_REQUEST', `texts[${i}] is empty`);
    if (t.length > o.maxTextChars) throw new HttpError(400, 'TEXT_TOO_LONG', `texts[${i}] has ${t.length} characters, over ${o.maxTextChars}`);
  });
  return texts as string[];
}

export function createServeApp(model: ServingModel, o: ServeOptions): { app: express.Express; queue: BatchQueue } {
  const app = express();
  app.disable('x-powered-by');
  const queue = new BatchQueue(o.concurrency, o.queueLimit);
  const authorized = o.token ? tokenCheck(o.token) : null;
  const started = Date.now();

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, versionId: model.current.versionId, uptimeSeconds: Math.round((Date.now() - started) / 1000) });
  });
  app.use((req: Request, _res: Response, next: NextFunction) => {
    if (authorized && !authorized(req.get('authorization')))
      return next(new HttpError(401, 'UNAUTHORIZED', 'missing or wrong token (Authorization: Bearer <token>)'));
    next();
  });
  app.get('/version', (_req, res) => {
    const c = model.current;
    res.json({ versionId: c.versionId, labels: c.labels, loadedAt: c.loadedAt, source: c.source, swaps: model.swaps, queue: queue.stats });
  });
  app.post(
    '/predict',
    // any content type is read as JSON (curl's default form type included); the limit applies before parsing
    express.json({ limit: o.maxBodyBytes, type: () => true, strict: false }),
    async (req: Request, res: Response, next: NextFunction) => {
      let texts: string[];
      try {
        texts = parsePredictBody(req.body, o);
      } catch (err) {
        return next(err);
      }
      // texts of like length (in characters, a proxy for tokens) share a batch; answers go back in request order
      const batches = lengthBatches(texts.map((t) => t.length), o.batchSize);
      // the queue counts nominal batches (texts / batch size, rounded up), however the texts were grouped
      const nominal = Math.ceil(texts.length / o.batchSize);
      if (!queue.reserve(nominal)) {
        res.set('Retry-After', '1');
        return next(new HttpError(503, 'BUSY', `the prediction queue is full (${queue.concurrency} computing, ${queue.queueLimit} waiting); retry shortly`));
      }
      // one version for the whole request, even when a swap happens between its batches
      const lease = model.lease();
      const t0 = Date.now();
      try {
        const predictions = new Array<LabelPrediction>(texts.length);
        await Promise.all(
          batches.map(async (idx) => {
            const preds = await queue.run(() => lease.predictor.predict(idx.map((i) => texts[i])));
            idx.forEach((i, j) => (predictions[i] = preds[j]));
          }),
        );
        res.json({ versionId: lease.predictor.versionId, predictions });
        o.log('serve.predict', { texts: texts.length, batches: batches.length, ms: Date.now() - t0, versionId: lease.predictor.versionId });
      } catch (err) {
        next(err);
      } finally {
        lease.release();
        queue.unreserve(nominal);
      }
    },
  );
  app.use((_req: Request, _res: Response, next: NextFunction) => next(new HttpError(404, 'NOT_FOUND', 'no such route (POST /predict, GET /healthz, GET /version)')));
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    let status = 500;
    let code = 'INTERNAL';
    let message = 'internal error';
    const type = (err as { type?: string }).type;
    if (err instanceof HttpError) [status, code, message] = [err.status, err.code, err.message];
    else if (type === 'entity.too.large') [status, code, message] = [413, 'BODY_TOO_LARGE', `body over the limit of ${o.maxBodyBytes} bytes`];
    else if (type === 'entity.parse.failed') [status, code, message] = [400, 'BAD_JSON', 'body is not valid JSON'];
    else if (typeof (err as { status?: unknown }).status === 'number' && (err as { status: number }).status >= 400 && (err as { status: number }).status < 500)
      [status, code, message] = [400, 'BAD_REQUEST', 'malformed request (body encoding or charset)'];
    else if (isFedloraError(err)) message = err.message;
    // never the Authorization header, never the texts
    o.log(status >= 500 ? 'serve.error' : 'serve.rejected', { method: req.method, path: req.path, status, code, ...(status >= 500 ? { reason: describeError(err) } : {}) });
    if (res.headersSent) return;
    res.status(status).json({ error: { code, message } });
  });
  return { app, queue };
}

export interface RunningServer {
  url: string;
  port: number;
  server: Server;
  /** stops accepting, lets requests in flight finish (up to graceMs), then closes */
  close(graceMs?: number): Promise<void>;
}

export async function listen(app: express.Express, port: number, host: string): Promise<RunningServer> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(port, host, (err?: Error) => (err ? reject(err) : resolve(s)));
    s.once('error', reject);
  });
  // an idle keep-alive socket is closed after this; Node's 5 s default could expire while a long forward pass blocks
  // the thread, dropping a request the client had just sent on it ("other side closed")
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  const addr = server.address() as { port: number; address: string };
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${addr.port}`,
    port: addr.port,
    server,
    close: (graceMs = 10_000) =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
