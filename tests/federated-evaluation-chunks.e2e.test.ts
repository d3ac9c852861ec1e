// Federated evaluation of a candidate over 1 MiB (issue 20 with issue 18's chunked adapters): 'round:evaluate' names
// the round's candidate ('<roundId>.candidate', not a registry version yet) instead of carrying it, the coordinator
// serves it over 'adapter:chunk' while the evaluation runs and no longer after, and the site's aggregates become the
// version's federated metrics. A real coordinator socket (tiny task, in process) and a scripted site.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { downloadAdapter } from '@fedlora/shared/connection/adapter-download.ts';
import { openAdapter } from '@fedlora/shared/round/participant.ts';
import { LIMITS } from '@fedlora/shared/protocol/limits.ts';
import type { AdapterChunkReply } from '@fedlora/shared/protocol/messages.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { adminApi } from './admin-client';
import { poll, within } from './federation-harness';
import { makeUpload } from '@fedlora/coordinator/testing';
import { ask, authenticate, enrollSites, openSocket } from './socket-sites';
import { startTinyCoordinator, type TinyCoordinator } from './tiny-coordinator';

let tiny: TinyCoordinator | null = null;
after(async () => tiny?.close());

/** the tiny task's head, widened to 2 x 160,000 weights (1.28 MB in fp32), filled with `x` */
function big(x: number): NamedTensors {
  return {
    'classifier.weight': { shape: [2, 160_000], data: new Float32Array(2 * 160_000).fill(x) },
    'classifier.bias': { shape: [2], data: new Float32Array([x, x]) },
  };
}

test('when the candidate is over 1 MiB, then round:evaluate names it, the site fetches it in chunks, and its aggregates become the version\'s federated metrics', { timeout: 120_000 }, async () => {
  // Arrange: one site that uploads a small delta and answers round:evaluate after fetching the candidate
  tiny = await startTinyCoordinator({
    name: 'fedeval-chunks',
    settings: { minSites: 1, sitesPerRound: { kind: 'fraction', value: 1 } },
    initialState: () => big(0),
    federatedEvaluation: true,
  });
  const [identity] = await enrollSites(tiny.url, ['Evaluating Site']);
  const socket = await openSocket(tiny.url);
  await authenticate(socket, identity);
  let round: { roundId: string; coordinatorBoxPublicKey: Uint8Array } | null = null;
  socket.on('round:configure', (m: { roundId: string; coordinatorBoxPublicKey: ArrayBuffer }, ack: (a: unknown) => void) => {
    round = { roundId: m.roundId, coordinatorBoxPublicKey: new Uint8Array(m.coordinatorBoxPublicKey) };
    ack({ ok: true, data: { accepted: true } });
  });
  socket.on('round:train', (_m: unknown, ack: (a: unknown) => void) => {
    ack({ ok: true, data: { started: true } });
    // fp16: the 1.28 MB delta in fp32 would not fit one socket frame (the agent would send it in frame:part's)
    const upload = makeUpload(identity.keys, identity.siteId, round!, big(0.001), { encoding: 'fp16' });
    void ask(socket, 'update:upload', upload);
  });
  const site = { socket, close: () => socket.close() };
  const evaluated = new Promise<{ msg: Record<string, unknown>; weight: number; afterwards: { ok: boolean; code?: string } }>((resolve) => {
    site.socket.on('round:evaluate', (msg: Record<string, unknown>, ack: (a: unknown) => void) => {
      void (async () => {
        const fetchChunk = async (req: { versionId: string; offset: number; length: number }) => {
          const a = await ask(site.socket, 'adapter:chunk', req);
          if (!a.ok) throw new Error(`adapter:chunk: ${a.code} ${a.message}`);
          const r = a.data as unknown as AdapterChunkReply;
          return { ...r, data: new Uint8Array(r.data) };
        };
        const got = await downloadAdapter(fetchChunk, msg.versionId as string, { totalBytes: msg.adapterBytes as number, adapterSha256: msg.adapterSha256 as string });
        const adapter = await openAdapter(got.bytes, msg.adapterSha256 as string, msg.versionId as string);
        ack({ ok: true, data: { numExamples: 4, lossSum: 2, confusion: [[2, 1], [0, 1]] } });
        // once the evaluation is over the candidate is no longer served
        const later = await poll(async () => {
          const a = await ask(site.socket, 'adapter:chunk', { versionId: msg.versionId, offset: 0, length: 16 });
          return a.ok ? undefined : a;
        }, 10_000, 'the candidate to be withdrawn', 100);
        resolve({ msg, weight: adapter.adapter['classifier.weight'].data[0], afterwards: later });
      })();
    });
  });

  // Act
  assert.equal((await ask(socket, 'site:ready', { numExamples: 10, encodings: ['fp16'], backend: 'cpu' })).ok, true);
  assert.equal((await adminApi(tiny.url).call('/api/federation/start', { method: 'POST' })).status, 200);
  const { msg, weight, afterwards } = await within(evaluated, 60_000, 'round:evaluate');

  // Assert: named, not carried; the candidate is version 0 plus the delta
  assert.equal(msg.adapter, undefined);
  assert.match(msg.versionId as string, /^r1-[0-9a-f]+\.candidate$/);
  assert.ok((msg.adapterBytes as number) > LIMITS.adapterInlineBytes);
  assert.ok(Math.abs(weight - 0.001) < 1e-5, `candidate weight ${weight}`);
  assert.equal(afterwards.code, 'NOT_FOUND');
  const v1 = await poll(async () => {
    const { versions } = await adminApi(tiny!.url).json<{ versions: { id: string; metrics: { federated?: { accuracy: number; sites: { siteId: string }[] } } | null }[] }>('/api/versions');
    return versions.find((v) => v.id === 'v1');
  }, 30_000, 'version v1');
  assert.equal(v1.metrics?.federated?.accuracy, 3 / 4);
  assert.deepEqual(v1.metrics?.federated?.sites.map((s) => s.siteId), [identity.siteId]);
  site.close();
});
