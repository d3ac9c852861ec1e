// The HTTP side of the metrics (metrics.ts): the /metrics route behind a bearer token of its own (not the admin
// token: a scraper's credential must not open the admin API), the separate metrics port for a scraper on a private
// network, and the bytes of adapters that admins download. Without a token or a port, /metrics is not served.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { CoordinatorMetrics } from '../metrics';
import { bearerToken } from './session';

export const METRICS_PATH = '/metrics';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export function isMetricsRequest(req: IncomingMessage): boolean {
  return (req.url ?? '').split('?')[0] === METRICS_PATH;
}

function fail(res: ServerResponse, status: number, code: string, message: string): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  if (status === 401) res.setHeader('www-authenticate', 'Bearer realm="fedlora metrics"');
  res.end(JSON.stringify({ error: { code, message } }));
}

/** GET /metrics: the exposition text, for `Authorization: Bearer <token>` (compared in constant time) when a token is set. */
export function metricsRoute(metrics: CoordinatorMetrics, token: string | undefined) {
  const expected = token === undefined ? null : digest(token);
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return fail(res, 405, 'BAD_MESSAGE', 'GET /metrics only');
    const given = bearerToken(req.headers.authorization);
    if (expected && !(given !== undefined && timingSafeEqual(digest(given), expected)))
      return fail(res, 401, 'UNAUTHORIZED', 'missing or wrong metrics token (Authorization: Bearer <metrics token>)');
    metrics.expose().then(
      ({ contentType, body }) => {
        res.statusCode = 200;
        res.setHeader('content-type', contentType);
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      () => fail(res, 500, 'INTERNAL', 'metrics could not be collected'),
    );
  };
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/** The metrics port: only /metrics (with the token too when one is set), nothing of the admin API. */
export async function serveMetrics(
  metrics: CoordinatorMetrics,
  o: { port: number; host: string; token?: string },
): Promise<MetricsServer> {
  const route = metricsRoute(metrics, o.token);
  const server = createServer((req, res) =>
    isMetricsRequest(req) ? route(req, res) : fail(res, 404, 'NOT_FOUND', 'only /metrics is served on this port'),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return {
    url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}${METRICS_PATH}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const ADAPTER_DOWNLOAD = /^\/api\/versions\/[^/?]+\/(native|peft)(\?|$)/;

/** Counts the body bytes of a successful admin adapter download (GET /api/versions/:id/native or /peft) once sent. */
export function countAdminDownload(metrics: CoordinatorMetrics, req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' || !ADAPTER_DOWNLOAD.test(req.url ?? '')) return;
  res.once('finish', () => {
    const n = Number(res.getHeader('content-length'));
    if (res.statusCode === 200 && Number.isFinite(n)) metrics.onTransfer('out', 'adapter', n);
  });
}
