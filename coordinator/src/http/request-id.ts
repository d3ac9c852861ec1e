// An id per HTTP request, on every log line written while the request is handled (log.ts withLogContext) and in the
// X-Request-Id response header, so an operator can match a client's error with the coordinator's lines. A proxy's
// own X-Request-Id is kept when it is a plain token; anything else is replaced (it would land in the log verbatim).

import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { withLogContext } from '../log';

export const REQUEST_ID_HEADER = 'x-request-id';
const ACCEPTED = /^[\w.:-]{1,64}$/;

export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && ACCEPTED.test(given) ? given : randomBytes(8).toString('hex');
}

/** Runs `handle` with the request's id in the log context and the response header. */
export function withRequestId(req: IncomingMessage, res: ServerResponse, handle: () => void): void {
  const requestId = requestIdOf(req);
  res.setHeader(REQUEST_ID_HEADER, requestId);
  withLogContext({ requestId }, handle);
}
