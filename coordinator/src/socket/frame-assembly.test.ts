// Parted requests (issue 23, defect 5): what splitRequest cuts, FrameAssembly puts back together, within a budget.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { splitRequest } from '@fedlora/shared/protocol/frame-parts.ts';
import { FramePartSchema } from '@fedlora/shared/protocol/frame-parts.ts';
import { FrameAssembly, PartBudget } from './frame-assembly';

const request = { roundId: 'r1', envelope: { ciphertext: new Uint8Array(5000).map((_, i) => i % 256), nonce: 'n' } };

test('when a request is split into parts and they arrive in order, then the same request comes out and the budget is free again', () => {
  // Arrange
  const budget = new PartBudget(10_000);
  const a = new FrameAssembly(budget);
  const parts = splitRequest('update:upload', request, 700);

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

test('when parts repeat, skip, disagree or exceed the budget, then each is refused and abandoning frees the bytes', () => {
  const budget = new PartBudget(8000);
  const a = new FrameAssembly(budget);
  const parts = splitRequest('update:upload', request, 2000).map((p) => FramePartSchema.parse(p));
  const code = (f: () => unknown) => {
    try {
      f();
      return 'ok';
    } catch (err) {
      return isFedloraError(err) ? err.code : String(err);
    }
  };
  assert.equal(code(() => a.add(parts[1])), 'BAD_MESSAGE'); // no first part
  assert.equal(code(() => a.add(parts[0])), 'ok');
  assert.equal(budget.heldBytes, parts[0].totalBytes);
  assert.equal(code(() => a.add(parts[0])), 'ok'); // a new first part restarts the request (budget not doubled)
  assert.equal(budget.heldBytes, parts[0].totalBytes);
  assert.equal(code(() => a.add(parts[2])), 'BAD_MESSAGE'); // skipped part 1
  assert.equal(code(() => a.add({ ...parts[1], count: 9 })), 'BAD_MESSAGE'); // disagrees with the first part
  const b = new FrameAssembly(budget);
  assert.equal(code(() => b.add(parts[0])), 'BUSY'); // 2 × ~5 KB over an 8 KB budget
  a.abandon();
  assert.equal(budget.heldBytes, 0);
  assert.equal(code(() => b.add(parts[0])), 'ok');
});

test('when a request would need more parts than allowed, then splitting refuses it with the fix', () => {
  assert.throws(() => splitRequest('update:upload', request, 1), /use larger parts/);
  assert.throws(() => splitRequest('update:upload', request, 10 * 1024 * 1024), /part size/);
});
