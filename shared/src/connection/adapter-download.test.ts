// A large adapter crosses in 'adapter:chunk's: each chunk is hash-checked as it arrives (a damaged one fetched
// again), 'latest' is pinned by the first reply, and the round's train message that names a version instead of
// carrying it yields the same adapter as the inline message.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { encodeAdapter } from '../protocol/codec';
import type { AdapterChunkReply, AdapterChunkRequest } from '../protocol/messages';
import { acceptTrainMessage, type ConfiguredRound } from '../round/participant';
import { downloadAdapter } from './adapter-download';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** a coordinator's adapter:chunk over `bytes` (version v3); `damage(req)` may flip a byte of the reply's data */
function server(bytes: Uint8Array, o: { damage?: (req: AdapterChunkRequest, n: number) => boolean } = {}) {
  const asked: AdapterChunkRequest[] = [];
  const ask = async (req: AdapterChunkRequest): Promise<AdapterChunkReply> => {
    asked.push(req);
    const data = bytes.slice(req.offset, Math.min(bytes.length, req.offset + req.length));
    const reply = { versionId: 'v3', offset: req.offset, totalBytes: bytes.length, data, sha256: sha(data), adapterSha256: sha(bytes) };
    if (o.damage?.(req, asked.filter((a) => a.offset === req.offset).length)) reply.data = data.map((x, i) => (i === 0 ? x ^ 1 : x));
    return reply;
  };
  return { ask, asked };
}

const bytes = new Uint8Array(10_000).map((_, i) => (i * 7919) % 251);

test('when an adapter is fetched in chunks, then the bytes are the adapter and latest is pinned to the version of the first reply', async () => {
  const s = server(bytes);
  const got = await downloadAdapter(s.ask, 'latest', undefined, { chunkBytes: 3000 });
  assert.deepEqual(got.bytes, bytes);
  assert.equal(got.versionId, 'v3');
  assert.equal(got.adapterSha256, sha(bytes));
  assert.deepEqual(s.asked.map((r) => [r.versionId, r.offset]), [['latest', 0], ['v3', 3000], ['v3', 6000], ['v3', 9000]]);
});

test('when a chunk arrives damaged once, then it is fetched again; when always, then HASH_MISMATCH after 3 attempts', async () => {
  const once = server(bytes, { damage: (req, n) => req.offset === 3000 && n === 1 });
  assert.deepEqual((await downloadAdapter(once.ask, 'v3', undefined, { chunkBytes: 3000 })).bytes, bytes);
  assert.equal(once.asked.filter((r) => r.offset === 3000).length, 2);

  const always = server(bytes, { damage: (req) => req.offset === 6000 });
  await assert.rejects(downloadAdapter(always.ask, 'v3', undefined, { chunkBytes: 3000 }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'HASH_MISMATCH');
    assert.match(err.message, /v3@6000.*3 attempts/);
    return true;
  });
});

test('when the announced size or hash disagrees with the chunks, then the download is refused', async () => {
  const s = server(bytes);
  await assert.rejects(downloadAdapter(s.ask, 'v3', { totalBytes: bytes.length + 1, adapterSha256: sha(bytes) }, { chunkBytes: 3000 }), { code: 'BAD_MESSAGE' });
  await assert.rejects(downloadAdapter(s.ask, 'v3', { totalBytes: bytes.length, adapterSha256: '0'.repeat(64) }, { chunkBytes: 3000 }), { code: 'BAD_MESSAGE' });
});

test('when round:train names a version instead of carrying the adapter, then the site fetches it in chunks and accepts the same adapter', async () => {
  const delta = { 'classifier.bias': { shape: [2], data: new Float32Array([0.5, -0.5]) } };
  const encoded = encodeAdapter({ versionId: 'v3', round: 2, adapter: delta });
  const configured = { roundId: 'r3-abcd', adapterVersionId: 'v3' } as unknown as ConfiguredRound;
  const shapes = { 'classifier.bias': [2] };
  const s = server(encoded);

  const byName = await acceptTrainMessage({ roundId: 'r3-abcd', versionId: 'v3', adapterBytes: encoded.length, adapterSha256: sha(encoded) }, configured, shapes, s.ask);
  const inline = await acceptTrainMessage({ roundId: 'r3-abcd', adapter: encoded, adapterSha256: sha(encoded) }, configured, shapes);

  assert.deepEqual(byName.adapter, inline.adapter);
  assert.ok(s.asked.length >= 1);
  await assert.rejects(
    acceptTrainMessage({ roundId: 'r3-abcd', versionId: 'v2', adapterBytes: encoded.length, adapterSha256: sha(encoded) }, configured, shapes, s.ask),
    { code: 'WRONG_ROUND' },
  );
  await assert.rejects(acceptTrainMessage({ roundId: 'r3-abcd', versionId: 'v3', adapterSha256: sha(encoded) }, configured, shapes, s.ask), { code: 'BAD_MESSAGE' });
});
