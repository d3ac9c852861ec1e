// Issue 18, must-show 2, the small version `npm test` runs (tests/fuzz/harness.ts; `npm run fuzz -- --frames 10000`
// runs the full one): 500 fast-check frames at the site socket and the admin API while an honest round runs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { io as connect } from 'socket.io-client';
import { listeningTestCoordinator } from '@fedlora/coordinator/testing';
import { ADMIN_TOKEN, within } from './federation-harness';
import { EVENT_NAMES, ROUTES } from './fuzz/frames';
import { EXPECTED_BIAS, runFuzz } from './fuzz/harness';

test('when 500 malformed, mistyped, non-finite, oversized and replayed frames hit the site socket and the admin API during an honest round, then every one is answered with a documented code or refused by the transport, and the round versions the exact mean', { timeout: 120_000 }, async () => {
  // Act (the property is asserted frame by frame inside: a documented code, no INTERNAL, no 5xx, the process up)
  const s = await runFuzz({ frames: 500, seed: 18_02 });

  // Assert
  console.log(`fuzz: ${s.frames} frames in ${s.seconds.toFixed(1)} s, ${s.reconnects} reconnects`, JSON.stringify(s.outcomes));
  assert.equal(s.frames, 500);
  assert.deepEqual(s.eventsSent, [...EVENT_NAMES].sort(), 'every site event was fuzzed');
  assert.ok(s.routesSent.length >= ROUTES.length - 2, `routes fuzzed: ${s.routesSent.join(', ')}`);
  assert.ok(Object.keys(s.outcomes).some((o) => o.startsWith('socket:') && !['socket:ok', 'socket:closed', 'socket:notification'].includes(o)), 'some frames reached a handler and were refused with a code');
  assert.equal(s.honestRoundOutcome, 'aggregated with 2 updates');
  assert.ok(Math.abs(s.honestBias - EXPECTED_BIAS) < 1e-7, `honest round bias ${s.honestBias}, expected ${EXPECTED_BIAS}`);
});

test('when an EVENT packet carries an ack id and nothing else, then it is answered BAD_MESSAGE (it went unanswered before the fuzz found it)', async () => {
  // Arrange
  const coord = await listeningTestCoordinator({ adminToken: ADMIN_TOKEN });
  const s = connect(coord.url as string, { transports: ['websocket'], reconnection: false, forceNew: true });
  try {
    await new Promise<void>((r) => s.once('connect', () => r()));
    const engine = s.io.engine as unknown as { write(d: string): void; on(e: 'packet', f: (p: { data: unknown }) => void): void };
    const answered = new Promise<string>((resolve) => engine.on('packet', (p) => typeof p.data === 'string' && p.data.startsWith('3900001') && resolve(p.data)));

    // Act: socket.io's EVENT type, an ack id, no name, no payload
    engine.write('2900001');

    // Assert
    assert.match(await within(answered, 5000, 'the answer to "2900001"'), /^3900001\[\{"ok":false,"code":"BAD_MESSAGE"/);
  } finally {
    s.close();
    await coord.close();
  }
});
