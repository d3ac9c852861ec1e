// Parted requests (issue 23, defect 5): what splitRequest cuts, FrameAssembly puts back together, within a budget.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { sha256Hex } from '@fedlora/shared/crypto/hash.ts';
import { splitRequest } from '@fedlora/shared/protocol/frame-parts.ts';
import { FramePartSchema } from '@fedlora/shared/protocol/frame-parts.ts';
import { FrameAssembly, PartBudget } from './frame-assembly';

const code = (f: () => unknown) => {
  try {
    f();
    return 'ok';
  } catch (err) {
    return isFedloraError(err) ? err.code : String(err);
  }
};

/** A copy of `bytes` with one byte changed. */
const flipped = (bytes: Uint8Array, at: number) => {
  const b = new Uint8Array(bytes);
  b[at] ^= 0x01;
  return b;
};

const request = { roundId: 'r1', envelope: { ciphertext: new Uint8Array(5000).map((_, i) => i % 256), nonce: 'n' } };

test('when a request is split into parts and they arrive in order, then the same request comes out and the budget is free again', async () => {
  // Arrange
  const budget = new PartBudget(10_000);
  const a = new FrameAssembly(budget);
  const parts = await splitRequest('update:upload', request, 700);

  // Act
  const results = parts.map((p) => a.add(FramePartSchema.parse(p)));

  // Assert
  assert.equal(parts.length, Math.ceil(parts[0].totalBytes / 700));
  assert.deepEqual(results.slice(0, -1).map((r) => (r.complete ? -1 : r.received)), parts.slice(0, -1).map((_, i) => i + 1));
  const last = results.at(-1);
  assert.ok(last?.complete);
  const out = last.payload as typeof request;
  assert.equal(out.roundId, 'r1');
  assert.deepEqual([...new Uint8Array(out.envelope.ciphertext)], [...request.envelope.ciphertext]);
  assert.equal(budget.heldBytes, 0);
});

test('when parts repeat, skip, disagree or exceed the budget, then each is refused and abandoning frees the bytes', async () => {
  const budget = new PartBudget(8000);
  const a = new FrameAssembly(budget);
  const parts = (await splitRequest('update:upload', request, 2000)).map((p) => FramePartSchema.parse(p));
  assert.equal(code(() => a.add(parts[1])), 'BAD_MESSAGE'); // no first part
  assert.equal(code(() => a.add(parts[0])), 'ok');
  assert.equal(budget.heldBytes, parts[0].totalBytes);
  assert.equal(code(() => a.add(parts[0])), 'ok'); // a new first part restarts the request (budget not doubled)
  assert.equal(budget.heldBytes, parts[0].totalBytes);
  assert.equal(code(() => a.add(parts[2])), 'BAD_MESSAGE'); // skipped part 1
  assert.equal(code(() => a.add({ ...parts[1], count: 9 })), 'BAD_MESSAGE'); // disagrees with the first part
  assert.equal(code(() => a.add({ ...parts[1], requestSha256: '0'.repeat(64) })), 'BAD_MESSAGE'); // another request's hash
  const b = new FrameAssembly(budget);
  assert.equal(code(() => b.add(parts[0])), 'BUSY'); // 2 × ~5 KB over an 8 KB budget
  a.abandon();
  assert.equal(budget.heldBytes, 0);
  assert.equal(code(() => b.add(parts[0])), 'ok');
});

test('when one byte of a part is flipped in transit, then that part is HASH_MISMATCH, the partial request is dropped and another socket is untouched', async () => {
  // Arrange: two sockets' requests in progress under one budget
  const budget = new PartBudget(20_000);
  const a = new FrameAssembly(budget);
  const b = new FrameAssembly(budget);
  const mine = (await splitRequest('update:upload', request, 2000)).map((p) => FramePartSchema.parse(p));
  const theirs = (await splitRequest('update:upload', { ...request, roundId: 'r2' }, 2000)).map((p) => FramePartSchema.parse(p));
  assert.equal(code(() => a.add(mine[0])), 'ok');
  assert.equal(code(() => b.add(theirs[0])), 'ok');

  // Act
  const bad = code(() => a.add({ ...mine[1], data: flipped(mine[1].data, 17) }));

  // Assert: refused with its code, this socket's bytes given back, its later parts have no request to join
  assert.equal(bad, 'HASH_MISMATCH');
  assert.equal(budget.heldBytes, theirs[0].totalBytes);
  assert.equal(code(() => a.add(mine[1])), 'BAD_MESSAGE');
  // the other socket's request completes as sent
  const results = theirs.slice(1).map((p) => b.add(p));
  const last = results.at(-1);
  assert.ok(last?.complete);
  assert.equal((last.payload as typeof request).roundId, 'r2');
  assert.equal(budget.heldBytes, 0);
  // and the damaged request sent again whole goes through
  const again = mine.map((p) => a.add(p)).at(-1);
  assert.ok(again?.complete);
  assert.equal(budget.heldBytes, 0);
});

test('when every part matches its own hash but the joined bytes do not match the request hash, then the request is HASH_MISMATCH before it is parsed', async () => {
  // Arrange: a byte flipped before hashing the part (so the part verifies), as a sender mixing up two requests would
  const budget = new PartBudget(20_000);
  const a = new FrameAssembly(budget);
  const parts = (await splitRequest('update:upload', request, 2000)).map((p) => FramePartSchema.parse(p));
  const data = flipped(parts[2].data, 0);
  const forged = { ...parts[2], data, sha256: await sha256Hex(data) };

  // Act
  const codes = [...parts.slice(0, 2), forged, ...parts.slice(3)].map((p) => code(() => a.add(p)));

  // Assert
  assert.equal(codes.at(-1), 'HASH_MISMATCH');
  assert.ok(codes.slice(0, -1).every((c) => c === 'ok'), codes.join());
  assert.equal(budget.heldBytes, 0);
});

test('when a request would need more parts than allowed, then splitting refuses it with the fix', async () => {
  await assert.rejects(() => splitRequest('update:upload', request, 1), /use larger parts/);
  await assert.rejects(() => splitRequest('update:upload', request, 10 * 1024 * 1024), /part size/);
});
