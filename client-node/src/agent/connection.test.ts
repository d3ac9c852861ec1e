// A request waiting for the coordinator's ack fails as soon as the connection is lost, not at its timeout
// (issue 23, defect 4): a site agent whose upload hung on a dead socket declined every round until it timed out.
// Real socket.io on loopback; the coordinator side never acks, so only a disconnect can end the request early.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket as ServerSocket } from 'socket.io';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { openSocket, request, type SiteSocket } from './connection';

/** Far above the 1 s the tests allow: a request that ends only at its timeout fails the assertion. */
const REQUEST_TIMEOUT_MS = 5_000;
const READY = { numExamples: 10, encodings: ['fp32' as const], backend: 'cpu' };

const servers: { io: Server; close(): Promise<void> }[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

/** A coordinator that takes every event and never acks; `onEvent` sees each (the server socket included). */
async function silentCoordinator(
  opts: { pingIntervalMs?: number; pingTimeoutMs?: number } = {},
  onEvent: (socket: ServerSocket) => void = () => {},
) {
  const http = createServer();
  const io = new Server(http, {
    pingInterval: opts.pingIntervalMs ?? 25_000,
    pingTimeout: opts.pingTimeoutMs ?? 20_000,
  });
  io.on('connection', (socket) => socket.onAny(() => onEvent(socket)));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const server = {
    io,
    url,
    close: () => new Promise<void>((resolve) => io.close(() => resolve())),
  };
  servers.push(server);
  return server;
}

/** Milliseconds until `p` settles, and the error it rejected with. */
async function timeToFail(p: Promise<unknown>): Promise<{ ms: number; err: unknown }> {
  const t0 = performance.now();
  try {
    await p;
  } catch (err) {
    return { ms: performance.now() - t0, err };
  }
  assert.fail('the request resolved');
}

test('when the coordinator drops the connection while a request waits for its ack, then the request fails at once', async () => {
  const server = await silentCoordinator({}, (s) => setTimeout(() => s.disconnect(true), 50));
  const socket: SiteSocket = await openSocket(server.url);

  const { ms, err } = await timeToFail(request(socket, 'site:ready', READY, REQUEST_TIMEOUT_MS));

  assert.ok(isFedloraError(err, 'UNREACHABLE'), String(err));
  assert.ok(ms < 1000, `failed after ${ms.toFixed(0)} ms`);
  socket.close();
});

test('when the connection is already lost, then a request fails at once instead of waiting for its timeout', async () => {
  const server = await silentCoordinator();
  const socket: SiteSocket = await openSocket(server.url);
  const lost = new Promise((resolve) => socket.once('disconnect', resolve));
  server.io.disconnectSockets(true);
  await lost;

  const { ms, err } = await timeToFail(request(socket, 'site:ready', READY, REQUEST_TIMEOUT_MS));

  assert.ok(isFedloraError(err, 'UNREACHABLE'), String(err));
  assert.ok(ms < 1000, `failed after ${ms.toFixed(0)} ms`);
  socket.close();
});

test('when training kept the event loop busy past the ping timeout, then the upload fails as soon as the connection closes', async () => {
  // socket.io-client buffers a packet emitted once the ping has expired (for a reconnection) and closes the
  // connection; a buffered packet's ack is not failed on disconnect, so without failOnDisconnect it waits the timeout
  const server = await silentCoordinator({ pingIntervalMs: 50, pingTimeoutMs: 50 });
  const socket: SiteSocket = await openSocket(server.url);
  await new Promise((resolve) => setTimeout(resolve, 20));
  const busyUntil = Date.now() + 400; // a training step on the main thread
  while (Date.now() < busyUntil);

  const { ms, err } = await timeToFail(request(socket, 'site:ready', READY, REQUEST_TIMEOUT_MS));

  assert.ok(isFedloraError(err, 'UNREACHABLE'), String(err));
  assert.ok(ms < 1000, `failed after ${ms.toFixed(0)} ms`);
  socket.close();
});
