// The edge: every SecAgg message a peer sends is parsed with its schema; a malformed one is a BAD_MESSAGE naming the field.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { isFedloraError } from '../errors';
import { bytesToWords, parseSecAggMessage, wordsToBytes } from './messages';

const setup = {
  runId: 'run',
  roundId: 'round-1',
  attempt: 0,
  siteId: 'site-1',
  encryptionPublicKey: nacl.randomBytes(32),
  maskPublicKey: nacl.randomBytes(32),
  signature: nacl.randomBytes(64),
};

test('when well-formed setup keys arrive as ArrayBuffers (a browser peer), then they parse to Uint8Arrays', () => {
  const parsed = parseSecAggMessage('setup-keys', { ...setup, maskPublicKey: setup.maskPublicKey.slice().buffer });
  assert.ok(parsed.maskPublicKey instanceof Uint8Array);
  assert.deepEqual(parsed.maskPublicKey, setup.maskPublicKey);
});

test('when a message has a short key, an extra field or a negative attempt, then it is a BAD_MESSAGE naming the field', () => {
  const refused = (kind: Parameters<typeof parseSecAggMessage>[0], x: unknown, field: RegExp) =>
    assert.throws(() => parseSecAggMessage(kind, x), (e) => isFedloraError(e, 'BAD_MESSAGE') && field.test(e.message));
  refused('setup-keys', { ...setup, maskPublicKey: new Uint8Array(31) }, /setup-keys: maskPublicKey: must be 32 bytes/);
  refused('setup-keys', { ...setup, extra: 1 }, /setup-keys/);
  refused('setup-keys', { ...setup, attempt: -1 }, /attempt/);
  refused('masked-upload', { siteId: 'site-1', masked: new Uint8Array(7) }, /masked: must be whole uint32 words/);
  refused('unmask-response', { siteId: 'site-1', selfMaskShares: [{ owner: 'site-2', share: new Uint8Array(48) }], maskKeyShares: [] }, /selfMaskShares\.0\.share: must be 49 bytes/);
});

test('when a masked vector goes to bytes and back, then the words are unchanged', () => {
  const words = new Uint32Array([0, 1, 0xffffffff, 0x80000000, 12345]);
  assert.deepEqual(bytesToWords(wordsToBytes(words).slice()), words);
  assert.deepEqual([...wordsToBytes(new Uint32Array([0x01020304]))], [4, 3, 2, 1]);
});
