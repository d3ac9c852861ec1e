// Per-chunk integrity of the base-model download (issue 18): a flipped byte in a 'model:chunk' reply is caught by
// the chunk's own sha256, fetched again, and never reaches the assembled model.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '../errors';
import { sha256Hex } from '../crypto/hash';
import { ackOk, parseClientReply } from '../protocol/events';
import type { ModelChunkReply, ModelChunkRequest } from '../protocol/messages';
import { verifiedChunkSource, verifyModelChunk } from './model-chunk';
import { fetchModelFile } from './model-download';

const FILE = new Uint8Array(2500).map((_, i) => (i * 7) % 256);
const code = (c: string) => (err: unknown) => isFedloraError(err) && err.code === c;

/** What the coordinator answers, through the reply schema a site validates with; `damage` flips a byte after hashing. */
async function reply(req: ModelChunkRequest, damage = false): Promise<ModelChunkReply> {
  const data = FILE.slice(req.offset, req.offset + req.length);
  const sha256 = await sha256Hex(data);
  if (damage) data[data.length >> 1] ^= 0x80;
  return parseClientReply('model:chunk', ackOk({ path: req.path, offset: req.offset, totalBytes: FILE.length, data, sha256 }));
}

test('when a chunk arrives as sent, then its bytes are returned', async () => {
  const req = { path: 'model.safetensors', offset: 1000, length: 1000 };
  assert.deepEqual(await verifyModelChunk(req, await reply(req)), FILE.slice(1000, 2000));
});

test('when one byte of a chunk is flipped after the coordinator hashed it, then the check is HASH_MISMATCH naming the file and offset', async () => {
  const req = { path: 'model.safetensors', offset: 1000, length: 1000 };
  await assert.rejects(verifyModelChunk(req, await reply(req, true)), (err: unknown) => {
    assert.ok(code('HASH_MISMATCH')(err), String(err));
    assert.match((err as Error).message, /model\.safetensors@1000/);
    return true;
  });
});

test('when the reply is for another chunk, then the check is BAD_MESSAGE', async () => {
  const req = { path: 'model.safetensors', offset: 1000, length: 1000 };
  await assert.rejects(verifyModelChunk(req, await reply({ ...req, offset: 0 })), code('BAD_MESSAGE'));
});

test('when the reply lacks the chunk sha256, then the reply schema refuses it', () => {
  assert.throws(
    () => parseClientReply('model:chunk', ackOk({ path: 'model.safetensors', offset: 0, totalBytes: 10, data: new Uint8Array(10) })),
    code('BAD_MESSAGE'),
  );
});

test('when a chunk is damaged once in transit, then it is fetched again and the downloaded file verifies', async () => {
  // Arrange: the second chunk's first delivery is damaged
  const asked: number[] = [];
  const source = verifiedChunkSource(async (req) => {
    asked.push(req.offset);
    return reply(req, req.offset === 1000 && asked.filter((o) => o === 1000).length === 1);
  });
  const f = { path: 'model.safetensors', bytes: FILE.length, sha256: await sha256Hex(FILE) };

  // Act
  const bytes = await fetchModelFileIn(source, f, 1000);

  // Assert
  assert.deepEqual(bytes, FILE);
  assert.deepEqual(asked, [0, 1000, 1000, 2000]);
});

test('when a chunk is damaged on every attempt, then the download fails with HASH_MISMATCH and returns nothing', async () => {
  let calls = 0;
  const source = verifiedChunkSource(async (req) => {
    calls++;
    return reply(req, true);
  }, 3);
  const f = { path: 'model.safetensors', bytes: FILE.length, sha256: await sha256Hex(FILE) };
  await assert.rejects(fetchModelFile(source, f), (err: unknown) => {
    assert.ok(code('HASH_MISMATCH')(err), String(err));
    assert.match((err as Error).message, /3 attempts/);
    return true;
  });
  assert.equal(calls, 3);
});

/** fetchModelFile with smaller chunks than MODEL_CHUNK_BYTES, so a 2.5 KB file takes several. */
async function fetchModelFileIn(
  source: ReturnType<typeof verifiedChunkSource>,
  f: { path: string; bytes: number; sha256: string },
  chunkBytes: number,
): Promise<Uint8Array> {
  const small = { fetchChunk: (path: string, offset: number, length: number) => source.fetchChunk(path, offset, Math.min(length, chunkBytes)) };
  return fetchModelFile(small, f);
}
