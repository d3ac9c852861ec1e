// 'round:evaluate' at both edges (issue 20): the message carries the candidate or names it with its size, never both
// or neither; the ack is aggregates (positive count, finite non-negative loss sum, integer counts) or a NO_HOLDOUT
// decline, and nothing else: no extra field could carry an example back.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '../errors';
import { parseServerMessage, parseServerReply } from './events';

const SHA = 'a'.repeat(64);
const base = { roundId: 'r1-abcd', versionId: 'r1-abcd.candidate', adapterSha256: SHA, maxLength: 64 };
const bad = (err: unknown) => isFedloraError(err, 'BAD_MESSAGE');
const reply = (data: unknown) => parseServerReply('round:evaluate', { ok: true, data });

test('when round:evaluate carries the adapter or names its size, then it parses; both, neither or no maxLength is refused', () => {
  assert.equal(parseServerMessage('round:evaluate', { ...base, adapter: new Uint8Array([1, 2]) }).maxLength, 64);
  assert.equal(parseServerMessage('round:evaluate', { ...base, adapterBytes: 2_000_000 }).adapterBytes, 2_000_000);
  assert.throws(() => parseServerMessage('round:evaluate', { ...base, adapter: new Uint8Array([1]), adapterBytes: 1 }), bad);
  assert.throws(() => parseServerMessage('round:evaluate', base), bad);
  const { maxLength: _m, ...noLength } = base;
  assert.throws(() => parseServerMessage('round:evaluate', { ...noLength, adapterBytes: 5 }), bad);
});

test('when a site acks round:evaluate, then aggregates or a NO_HOLDOUT decline parse and anything else is BAD_MESSAGE', () => {
  assert.deepEqual(reply({ numExamples: 3, lossSum: 1.5, confusion: [[1, 0], [1, 1]] }), { numExamples: 3, lossSum: 1.5, confusion: [[1, 0], [1, 1]] });
  assert.deepEqual(reply({ declined: 'NO_HOLDOUT' }), { declined: 'NO_HOLDOUT' });
  for (const data of [
    { numExamples: 0, lossSum: 0, confusion: [[0, 0], [0, 0]] }, // no example scored
    { numExamples: 2, lossSum: -1, confusion: [[1, 0], [0, 1]] },
    { numExamples: 2, lossSum: Infinity, confusion: [[1, 0], [0, 1]] },
    { numExamples: 2, lossSum: 1, confusion: [[1.5, 0], [0, 0.5]] },
    { numExamples: 2, lossSum: 1, confusion: [[1, 0], [0, 1]], predictions: [0, 1] },
    { declined: 'TIRED' },
    { numExamples: 2, lossSum: 1 },
  ])
    assert.throws(() => reply(data), bad, JSON.stringify(data));
});
