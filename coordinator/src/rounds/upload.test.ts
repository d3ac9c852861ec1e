// Every way an upload is refused at the trust boundary, each with its own code; and the one way it passes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { generateBoxKeyPair, generateSiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { sealAndSign } from '@fedlora/shared/crypto/envelope.ts';
import { newMessageNonce } from '@fedlora/shared/protocol/codec.ts';
import { makeUpload, tinyAdapter } from './fakes';
import { NonceLog, openUpload, type UploadCheck } from './upload';

const code = (c: string) => (err: unknown) => isFedloraError(err) && err.code === c;

function setup(over: Partial<UploadCheck> = {}) {
  const site = generateSiteKeys();
  const roundKey = generateBoxKeyPair();
  const cfg = { roundId: 'r1-abcd', coordinatorBoxPublicKey: roundKey.publicKey };
  const check: UploadCheck = {
    roundId: cfg.roundId,
    siteId: 'site-a',
    siteSigningKey: site.signing.publicKey,
    roundSecretKey: roundKey.secretKey,
    sampled: new Set(['site-a']),
    delivered: new Set(),
    nonces: new NonceLog(),
    layout: tinyAdapter(0),
    maxUploadBytes: 64 * 1024,
    maxDeltaNorm: 10,
    deltaNormPolicy: 'reject',
    declaredExamples: 0,
    ...over,
  };
  return { site, roundKey, cfg, check };
}

test('when a well-formed upload from a sampled site arrives, then it opens to the site result', () => {
  const { site, cfg, check } = setup();
  const req = makeUpload(site, 'site-a', cfg, tinyAdapter(0.25), { numExamples: 7, encoding: 'fp16' });
  const r = openUpload(req, check);
  assert.equal(r.result.siteId, 'site-a');
  assert.equal(r.result.numExamples, 7);
  assert.equal(r.encoding, 'fp16');
  assert.equal(r.result.delta['classifier.bias'].data[1], 0.25);
  assert.equal(r.bytes, req.envelope.ciphertext.byteLength);
});

test('when the upload names another round, then it is WRONG_ROUND', () => {
  const { site, cfg, check } = setup();
  const req = makeUpload(site, 'site-a', cfg, tinyAdapter(0));
  assert.throws(() => openUpload({ ...req, roundId: 'r2-abcd' }, check), code('WRONG_ROUND'));
  // the sealed envelope carries the old round id in its signed header
  assert.throws(() => openUpload(req, { ...check, roundId: 'r2-abcd' }), code('WRONG_ROUND'));
  // and the payload inside too
  const inner = makeUpload(site, 'site-a', cfg, tinyAdapter(0), { roundIdInside: 'r0-zzzz' });
  assert.throws(() => openUpload(inner, check), code('WRONG_ROUND'));
});

test('when the site was not sampled, then it is NOT_SAMPLED', () => {
  const { site, cfg, check } = setup({ sampled: new Set(['site-b']) });
  assert.throws(
    () => openUpload(makeUpload(site, 'site-a', cfg, tinyAdapter(0)), check),
    code('NOT_SAMPLED'),
  );
});

test('when the sealed frame is over the round limit, then it is FRAME_TOO_LARGE', () => {
  const { site, cfg, check } = setup({ maxUploadBytes: 100 });
  assert.throws(
    () => openUpload(makeUpload(site, 'site-a', cfg, tinyAdapter(0)), check),
    code('FRAME_TOO_LARGE'),
  );
});

test('when the envelope is signed by a key other than the registered one, then it is BAD_SIGNATURE', () => {
  const { cfg, check } = setup();
  const forger = generateSiteKeys();
  const req = makeUpload(forger, 'site-a', cfg, tinyAdapter(0));
  assert.throws(() => openUpload(req, check), code('BAD_SIGNATURE'));
  const { sitePublicKey: _hint, ...noHint } = req.envelope;
  assert.throws(() => openUpload({ ...req, envelope: noHint }, check), code('BAD_SIGNATURE'));
});

test('when the payload names another site, then it is UNAUTHORIZED', () => {
  const { site, cfg, check } = setup();
  const req = makeUpload(site, 'site-a', cfg, tinyAdapter(0), { siteIdInside: 'site-b' });
  assert.throws(() => openUpload(req, check), code('UNAUTHORIZED'));
});

test('when the same upload is sent twice, or a second one after delivery, then it is REPLAY', () => {
  const { site, cfg, check } = setup();
  const req = makeUpload(site, 'site-a', cfg, tinyAdapter(0));
  openUpload(req, check);
  assert.throws(() => openUpload(req, check), code('REPLAY'));
  const again = makeUpload(site, 'site-a', cfg, tinyAdapter(0));
  assert.throws(() => openUpload(again, { ...check, delivered: new Set(['site-a']) }), code('REPLAY'));
});

test('when tensor names or shapes differ from the adapter, then it is DELTA_INVALID', () => {
  const { site, cfg, check } = setup();
  const wrongShape = tinyAdapter(0);
  wrongShape['classifier.bias'] = { shape: [3], data: new Float32Array(3) };
  assert.throws(() => openUpload(makeUpload(site, 'site-a', cfg, wrongShape), check), code('DELTA_INVALID'));
  const missing = tinyAdapter(0);
  delete missing['classifier.weight'];
  assert.throws(() => openUpload(makeUpload(site, 'site-a', cfg, missing), check), code('DELTA_INVALID'));
});

test('when the delta norm is over the bound and the policy rejects, then it is DELTA_INVALID', () => {
  const { site, cfg, check } = setup({ maxDeltaNorm: 10, deltaNormPolicy: 'reject' });
  // 30 values of 2: norm = 2·√30 ≈ 10.95 > 10
  assert.throws(
    () => openUpload(makeUpload(site, 'site-a', cfg, tinyAdapter(2)), check),
    code('DELTA_INVALID'),
  );
  // 30 values of 1.8: norm ≈ 9.86 passes
  assert.doesNotThrow(() => openUpload(makeUpload(site, 'site-a', cfg, tinyAdapter(1.8)), check));
});

test('when the delta norm is over the bound and the policy clips, then the delta is scaled down to the bound and marked', () => {
  const { site, cfg, check } = setup({ maxDeltaNorm: 10, deltaNormPolicy: 'clip' });
  // 30 values of 4: norm = 4·√30 ≈ 21.9, scaled by 10 / 21.9 to norm 10 (every value 10 / √30)
  const r = openUpload(makeUpload(site, 'site-a', cfg, tinyAdapter(4)), check);
  assert.ok(Math.abs((r.clippedFrom ?? 0) - 4 * Math.sqrt(30)) < 1e-4, `clipped from ${r.clippedFrom}`);
  assert.equal(r.norm, 10);
  for (const t of Object.values(r.result.delta))
    for (const x of t.data) assert.ok(Math.abs(x - 10 / Math.sqrt(30)) < 1e-6, `value ${x}`);
  // within the bound: the delta passes as sent
  const within = openUpload(makeUpload(site, 'site-a', cfg, tinyAdapter(1.8)), check);
  assert.equal(within.clippedFrom, null);
  assert.equal(within.result.delta['classifier.bias'].data[0], Math.fround(1.8));
});

test('when a hand-made update carries NaN, then it is NON_FINITE', () => {
  const { site, cfg, check } = setup();
  // encodeUpdate refuses NaN, so a malicious site would pack the frame itself
  const tensors: Record<string, unknown> = {};
  for (const [k, t] of Object.entries(tinyAdapter(0))) {
    const d = new Float32Array(t.data);
    if (k === 'classifier.bias') d[0] = NaN;
    tensors[k] = { shape: t.shape, data: new Uint8Array(d.buffer) };
  }
  const wire = {
    v: 1,
    kind: 'update',
    roundId: cfg.roundId,
    siteId: 'site-a',
    nonce: newMessageNonce(),
    numExamples: 5,
    metrics: { loss: 1 },
    encoding: 'fp32',
    tensors,
  };
  const payload = new Uint8Array(new Packr({ useRecords: false }).pack(wire));
  const envelope = sealAndSign(payload, {
    roundId: cfg.roundId,
    recipientBoxPublicKey: cfg.coordinatorBoxPublicKey,
    signing: site.signing,
  });
  assert.throws(() => openUpload({ roundId: cfg.roundId, envelope }, check), code('NON_FINITE'));
});

test('when the decrypted payload is not an update, then it is BAD_MESSAGE', () => {
  const { site, cfg, check } = setup();
  const envelope = sealAndSign(new Uint8Array([1, 2, 3]), {
    roundId: cfg.roundId,
    recipientBoxPublicKey: cfg.coordinatorBoxPublicKey,
    signing: site.signing,
  });
  assert.throws(() => openUpload({ roundId: cfg.roundId, envelope }, check), code('BAD_MESSAGE'));
});
