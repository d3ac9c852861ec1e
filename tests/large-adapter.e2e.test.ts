// Issue 18, "Durable rounds": an adapter over 1 MiB never crosses the socket whole. A coordinator whose version 0 is
// a 1.2 MB adapter names it in round:train instead of carrying it, refuses adapter:fetch of it, and serves it in
// 'adapter:chunk's with a SHA-256 each, which assemble to exactly the adapter (connection/adapter-download.ts).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { downloadAdapter } from '@fedlora/shared/connection/adapter-download.ts';
import { openAdapter } from '@fedlora/shared/round/participant.ts';
import { LIMITS } from '@fedlora/shared/protocol/limits.ts';
import type { AdapterChunkReply } from '@fedlora/shared/protocol/messages.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { adminApi } from './admin-client';
import { within } from './federation-harness';
import { ask, authenticate, enrollSites, openSocket } from './socket-sites';
import { startTinyCoordinator, type TinyCoordinator } from './tiny-coordinator';

let tiny: TinyCoordinator | null = null;
after(async () => tiny?.close());

/** the tiny task's head, widened to 2 x 160,000 weights: 1.28 MB in fp32 */
function bigAdapter(): NamedTensors {
  const w = new Float32Array(2 * 160_000).map((_, i) => ((i * 7919) % 1000) / 1e4);
  return { 'classifier.weight': { shape: [2, 160_000], data: w }, 'classifier.bias': { shape: [2], data: new Float32Array([0.1, -0.1]) } };
}

test('when the global adapter is over 1 MiB, then round:train names it and the site fetches it in hashed chunks', { timeout: 120_000 }, async () => {
  tiny = await startTinyCoordinator({ name: 'big-adapter', settings: { minSites: 1, sitesPerRound: { kind: 'fraction', value: 1 } }, initialState: bigAdapter });
  const [site] = await enrollSites(tiny.url, ['Big Site']);
  const s = await openSocket(tiny.url);
  await authenticate(s, site);
  const train = new Promise<Record<string, unknown>>((resolve) => {
    s.on('round:configure', (_m: unknown, ack: (a: unknown) => void) => ack({ ok: true, data: { accepted: true } }));
    s.on('round:train', (m: Record<string, unknown>, ack: (a: unknown) => void) => {
      ack({ ok: true, data: { started: true } });
      resolve(m);
    });
  });
  assert.equal((await ask(s, 'site:ready', { numExamples: 10, encodings: ['fp32'], backend: 'cpu' })).ok, true);
  assert.equal((await adminApi(tiny.url).call('/api/federation/start', { method: 'POST' })).status, 200);

  const msg = await within(train, 60_000, 'round:train');
  assert.equal(msg.adapter, undefined, 'the adapter does not come whole');
  assert.equal(msg.versionId, 'v0');
  assert.ok((msg.adapterBytes as number) > LIMITS.adapterInlineBytes, `${msg.adapterBytes} bytes`);

  const chunkSizes: number[] = [];
  const got = await downloadAdapter(
    async (req) => {
      const a = await ask(s, 'adapter:chunk', req);
      if (!a.ok) throw new Error(`adapter:chunk: ${a.code} ${a.message}`);
      const r = a.data as unknown as AdapterChunkReply;
      chunkSizes.push(r.data.byteLength);
      return { ...r, data: new Uint8Array(r.data) };
    },
    'v0',
    { totalBytes: msg.adapterBytes as number, adapterSha256: msg.adapterSha256 as string },
  );
  const adapter = await openAdapter(got.bytes, msg.adapterSha256 as string, 'v0');
  assert.deepEqual(adapter.adapter['classifier.weight'].data, bigAdapter()['classifier.weight'].data);
  assert.ok(chunkSizes.length >= 2 && chunkSizes.every((n) => n <= LIMITS.adapterInlineBytes), `chunks ${chunkSizes}`);

  const whole = await ask(s, 'adapter:fetch', { versionId: 'v0' });
  assert.equal(whole.code, 'FRAME_TOO_LARGE');
  assert.match(String(whole.message), /adapter:chunk/);
  await ask(s, 'round:fail', { roundId: msg.roundId, code: 'DATA_INVALID', message: 'test site: done' });
  s.close();
});
