// Tests for the message schemas, ack helpers and manifest validator.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FedloraError, isFedloraError } from '../errors';
import { generateBoxKeyPair, generateSiteKeys, publicIdentity } from '../crypto/keys';
import { sealAndSign } from '../crypto/envelope';
import {
  ackError,
  ackOk,
  parseClientReply,
  parseClientRequest,
  parseServerMessage,
  parseServerReply,
  type ClientToServerEvents,
  type ServerToClientEvents,
} from './events';
import { parseManifest } from './manifest';

const code = (c: string) => (err: unknown) => isFedloraError(err) && err.code === c;

// Type-level: the maps give typed listeners (a wrong field would not compile).
const _typed: Pick<ServerToClientEvents, 'round:closed'> & Pick<ClientToServerEvents, 'round:fail'> = {
  'round:closed': (m) => void m.outcome.toUpperCase(),
  'round:fail': (req, ack) => ack(req.code === 'NON_FINITE' ? ackOk({}) : ackError(new Error('x'))),
};
void _typed;

test('when a valid upload arrives with ArrayBuffer fields, then it parses to Uint8Arrays', () => {
  const env = sealAndSign(new Uint8Array([1, 2]), {
    roundId: 'r1',
    recipientBoxPublicKey: generateBoxKeyPair().publicKey,
    signing: generateSiteKeys().signing,
  });
  const raw = { roundId: 'r1', envelope: { ...env, ciphertext: env.ciphertext.slice().buffer } };
  const req = parseClientRequest('update:upload', raw);
  assert.ok(req.envelope.ciphertext instanceof Uint8Array);
  assert.deepEqual(req.envelope.ciphertext, env.ciphertext);
});

test('when a request has a wrong or extra field, then it fails with BAD_MESSAGE', () => {
  const keys = publicIdentity(generateSiteKeys());
  const enroll = { token: 'x'.repeat(16), siteId: 'site-a', ...keys };
  assert.doesNotThrow(() => parseClientRequest('site:enroll', enroll));
  assert.throws(() => parseClientRequest('site:enroll', { ...enroll, token: 'short' }), code('BAD_MESSAGE'));
  assert.throws(() => parseClientRequest('site:enroll', { ...enroll, admin: true }), code('BAD_MESSAGE'));
  assert.throws(
    () => parseClientRequest('site:enroll', { ...enroll, boxPublicKey: 'AAAA' }),
    code('BAD_MESSAGE'),
  );
  assert.throws(
    () => parseClientRequest('round:fail', { roundId: 'r', code: 'FILE_NOT_FOUND', message: '' }),
    code('BAD_MESSAGE'),
  );
  assert.throws(
    () => parseClientRequest('auth:prove', { siteId: 'a', signature: new Uint8Array(63) }),
    code('BAD_MESSAGE'),
  );
});

test('when round:configure carries a strategy extra, then the config keeps it; a negative mu is rejected', () => {
  const msg = {
    roundId: 'r3',
    round: 3,
    config: { localEpochs: 1, batchSize: 16, learningRate: 1e-3, proximalMu: 0.01, warmup: true },
    adapterVersionId: 'v2',
    coordinatorBoxPublicKey: new Uint8Array(32),
    encoding: 'fp16',
    deadline: 1_700_000_000_000,
  };
  assert.equal(parseServerMessage('round:configure', msg).config.warmup, true);
  const bad = { ...msg, config: { ...msg.config, proximalMu: -1 } };
  assert.throws(() => parseServerMessage('round:configure', bad), code('BAD_MESSAGE'));
});

test('when an error is turned into an ack, then only peer-visible codes keep their message', () => {
  assert.deepEqual(ackError(new FedloraError('REPLAY', 'nonce seen')), {
    ok: false,
    code: 'REPLAY',
    message: 'nonce seen',
  });
  assert.deepEqual(ackError(new FedloraError('FILE_NOT_FOUND', '/srv/secret/path')), {
    ok: false,
    code: 'INTERNAL',
    message: 'internal error',
  });
  assert.deepEqual(ackError(new TypeError('x is undefined')), {
    ok: false,
    code: 'INTERNAL',
    message: 'internal error',
  });
});

test('when an ack is parsed, then data is validated and errors are rethrown with their code', () => {
  assert.deepEqual(parseClientReply('site:enroll', ackOk({ siteId: 'site-a' })), { siteId: 'site-a' });
  assert.throws(
    () => parseClientReply('site:enroll', ackError(new FedloraError('TOKEN_USED', 'used'))),
    code('TOKEN_USED'),
  );
  assert.throws(
    () => parseClientReply('site:enroll', { ok: true, data: { siteId: 7 } }),
    code('BAD_MESSAGE'),
  );
  assert.throws(
    () => parseClientReply('site:enroll', { ok: false, code: 'MADE_UP', message: '' }),
    code('BAD_MESSAGE'),
  );
  assert.deepEqual(parseServerReply('round:configure', ackOk({ accepted: false })), { accepted: false });
  assert.throws(() => parseServerReply('round:closed', ackOk({})), code('BAD_MESSAGE'));
});

function manifest() {
  return {
    v: 1,
    baseModel: {
      id: 'bert-base-uncased',
      files: [{ path: 'model/weights.bin', sha256: 'a'.repeat(64), bytes: 10 }],
    },
    lora: { r: 8, alpha: 16, dropout: 0, targetModules: ['query', 'value'], layers: null },
    labels: ['card_arrival', 'card_linking'],
    maxSeqLength: 128,
    versionId: null,
  };
}

test('when a manifest is valid, then it parses; a bad field fails with BAD_MESSAGE naming it', () => {
  assert.equal(parseManifest(manifest()).lora.r, 8);
  const cases: [string, (m: ReturnType<typeof manifest>) => void][] = [
    ['path traversal', (m) => (m.baseModel.files[0].path = '../etc/passwd')],
    ['absolute path', (m) => (m.baseModel.files[0].path = '/etc/passwd')],
    ['upper-case hash', (m) => (m.baseModel.files[0].sha256 = 'A'.repeat(64))],
    ['duplicate label', (m) => (m.labels = ['a', 'a'])],
    ['lora rank 0', (m) => (m.lora.r = 0)],
    ['unknown module', (m) => (m.lora.targetModules = ['gate'])],
  ];
  for (const [what, corrupt] of cases) {
    const m = manifest();
    corrupt(m);
    assert.throws(() => parseManifest(m), code('BAD_MESSAGE'), what);
  }
  assert.throws(() => parseManifest({ ...manifest(), lora: { ...manifest().lora, r: 0 } }), /lora|r must/);
});
