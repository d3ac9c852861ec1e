// Tests for the update/adapter codec and its element encodings (fp32 exact, fp16 and int8 within stated bounds).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { isFedloraError } from '../errors';
import type { NamedTensors } from '../tensor';
import { generateBoxKeyPair, generateSiteKeys } from '../crypto/keys';
import { sealAndSign } from '../crypto/envelope';
import {
  decodeAdapter,
  decodeUpdate,
  encodeAdapter,
  encodeUpdate,
  newMessageNonce,
  type ModelUpdate,
} from './codec';
import { fromHalfBits, toHalfBits } from './quantize';

const code = (c: string) => (err: unknown) => isFedloraError(err) && err.code === c;
const packr = new Packr({ useRecords: false });

function delta(): NamedTensors {
  return {
    'encoder.layer.0.attention.self.query.lora_A': {
      shape: [2, 3],
      data: new Float32Array([0.1, -0.2, 0.3, 1e-3, -4.5, 0]),
    },
    'encoder.layer.0.attention.self.query.lora_B': {
      shape: [3, 2],
      data: new Float32Array([1, 2, 3, -1, -2, 1 / 3]),
    },
  };
}

function update(d = delta()): ModelUpdate {
  return {
    roundId: 'round-1',
    siteId: 'site-a',
    nonce: newMessageNonce(),
    numExamples: 40,
    metrics: { loss: 0.7, accuracy: 0.5 },
    delta: d,
  };
}

/** A valid wire object to corrupt field by field. */
function wire(): Record<string, unknown> {
  return {
    v: 1,
    kind: 'update',
    roundId: 'round-1',
    siteId: 'site-a',
    nonce: 'AAAAAAAAAAAAAAAAAAAAAA==',
    numExamples: 3,
    metrics: { loss: 1 },
    encoding: 'fp32',
    tensors: { w: { shape: [2], data: new Uint8Array(new Float32Array([1, 2]).buffer) } },
  };
}

test('when an fp32 update is encoded and decoded, then every field and value is exact', () => {
  const u = update();
  const back = decodeUpdate(encodeUpdate(u, 'fp32'), { expect: { roundId: 'round-1', siteId: 'site-a' } });
  assert.equal(back.encoding, 'fp32');
  assert.deepEqual({ ...back, encoding: undefined }, { ...u, encoding: undefined });
});

test('when an fp16 update round-trips, then each value is within half an fp16 ulp (relative 2^-11)', () => {
  const u = update();
  const back = decodeUpdate(encodeUpdate(u, 'fp16'));
  for (const [name, t] of Object.entries(u.delta))
    t.data.forEach((x, i) => {
      const err = Math.abs(back.delta[name].data[i] - x);
      assert.ok(
        err <= Math.abs(x) * 2 ** -11 + 2 ** -25,
        `${name}[${i}]: ${x} -> ${back.delta[name].data[i]}`,
      );
    });
});

test('when fp16 bits are computed, then known values match IEEE binary16', () => {
  // hand-checked: 1 = 0x3c00, -2 = 0xc000, 65504 = 0x7bff (max), 2^-24 = 0x0001 (min subnormal), 0.1 -> 0x2e66
  assert.equal(toHalfBits(1), 0x3c00);
  assert.equal(toHalfBits(-2), 0xc000);
  assert.equal(toHalfBits(65504), 0x7bff);
  assert.equal(toHalfBits(2 ** -24), 0x0001);
  assert.equal(toHalfBits(0.1), 0x2e66);
  assert.equal(toHalfBits(65520), 0x7c00); // halfway to 2^16 rounds to even = Infinity
  assert.equal(toHalfBits(1 + 2 ** -11), 0x3c00); // tie rounds to even mantissa (0)
  assert.equal(toHalfBits(1 + 3 * 2 ** -11), 0x3c02); // tie rounds to even mantissa (2)
  assert.equal(fromHalfBits(0x2e66), 0.0999755859375);
  assert.equal(fromHalfBits(0x0001), 2 ** -24);
  for (let h = 0; h < 0x7c00; h += 7) assert.equal(toHalfBits(fromHalfBits(h)), h, `0x${h.toString(16)}`);
});

test('when an int8 update round-trips, then each value is within scale/2 with scale = max|x|/127', () => {
  const u = update();
  const back = decodeUpdate(encodeUpdate(u, 'int8'));
  for (const [name, t] of Object.entries(u.delta)) {
    const scale = Math.max(...t.data.map(Math.abs)) / 127; // lora_A: 4.5/127, lora_B: 3/127
    t.data.forEach((x, i) =>
      assert.ok(Math.abs(back.delta[name].data[i] - x) <= scale / 2 + 1e-7, `${name}[${i}]`),
    );
    // the extreme value is exact up to float rounding: it maps to q = ±127
    const iMax = t.data.findIndex((x) => Math.abs(x) === scale * 127);
    assert.ok(Math.abs(back.delta[name].data[iMax] - t.data[iMax]) < 1e-6);
  }
});

test('when an all-zero tensor is int8-encoded, then it decodes to zeros', () => {
  const back = decodeUpdate(encodeUpdate(update({ z: { shape: [4], data: new Float32Array(4) } }), 'int8'));
  assert.deepEqual([...back.delta.z.data], [0, 0, 0, 0]);
});

test('when a delta contains NaN, then encoding and decoding fail with NON_FINITE', () => {
  const bad = update({ w: { shape: [2], data: new Float32Array([1, NaN]) } });
  assert.throws(() => encodeUpdate(bad, 'fp32'), code('NON_FINITE'));
  assert.throws(
    () => encodeUpdate(update({ w: { shape: [1], data: new Float32Array([70000]) } }), 'fp16'),
    code('NON_FINITE'),
  );
  const w = wire();
  w.tensors = { w: { shape: [2], data: new Uint8Array(new Float32Array([1, NaN]).buffer) } };
  assert.throws(() => decodeUpdate(packr.pack(w)), code('NON_FINITE'));
  w.encoding = 'fp16';
  w.tensors = { w: { shape: [1], data: new Uint8Array([0x00, 0x7c]) } }; // +Infinity
  assert.throws(() => decodeUpdate(packr.pack(w)), code('NON_FINITE'));
});

test('when a frame is larger than maxBytes, then decoding fails with FRAME_TOO_LARGE before parsing', () => {
  const bytes = encodeUpdate(update(), 'fp32');
  assert.throws(() => decodeUpdate(bytes, { maxBytes: bytes.length - 1 }), code('FRAME_TOO_LARGE'));
  assert.throws(
    () => decodeUpdate(new Uint8Array(100).fill(0xff), { maxBytes: 99 }),
    code('FRAME_TOO_LARGE'),
  );
});

test('when the bytes are not a valid update, then decoding fails with BAD_MESSAGE', () => {
  const cases: [string, (w: Record<string, unknown>) => void][] = [
    ['wrong version', (w) => (w.v = 2)],
    ['adapter kind', (w) => (w.kind = 'adapter')],
    ['extra field', (w) => (w.text = 'patient note')],
    ['zero examples', (w) => (w.numExamples = 0)],
    ['fractional examples', (w) => (w.numExamples = 1.5)],
    ['missing loss', (w) => (w.metrics = { accuracy: 1 })],
    ['string metric', (w) => (w.metrics = { loss: 1, note: 'hi' })],
    ['bad site id', (w) => (w.siteId = '../etc')],
    ['unknown encoding', (w) => (w.encoding = 'bf16')],
    ['no tensors', (w) => (w.tensors = {})],
    ['zero dim', (w) => (w.tensors = { w: { shape: [0], data: new Uint8Array(0) } })],
    ['fractional dim', (w) => (w.tensors = { w: { shape: [1.5], data: new Uint8Array(4) } })],
    ['length mismatch', (w) => (w.tensors = { w: { shape: [3], data: new Uint8Array(8) } })],
    ['numbers not bytes', (w) => (w.tensors = { w: { shape: [2], data: [1, 2] } })],
    ['bad name', (w) => (w.tensors = { 'a b': { shape: [1], data: new Uint8Array(4) } })],
    ['scale on fp32', (w) => (w.tensors = { w: { shape: [1], data: new Uint8Array(4), scale: 1 } })],
    [
      'int8 without scale',
      (w) => ((w.encoding = 'int8'), (w.tensors = { w: { shape: [1], data: new Uint8Array(1) } })),
    ],
    [
      'int8 -128',
      (w) => (
        (w.encoding = 'int8'),
        (w.tensors = { w: { shape: [1], data: new Uint8Array([0x80]), scale: 1 } })
      ),
    ],
  ];
  for (const [what, corrupt] of cases) {
    const w = wire();
    corrupt(w);
    assert.throws(() => decodeUpdate(packr.pack(w)), code('BAD_MESSAGE'), what);
  }
  assert.doesNotThrow(() => decodeUpdate(packr.pack(wire())), 'the uncorrupted wire object decodes');
  const good = encodeUpdate(update(), 'fp32');
  assert.throws(() => decodeUpdate(good.subarray(0, good.length - 5)), code('BAD_MESSAGE'), 'truncated');
  assert.throws(() => decodeUpdate(new Uint8Array([...good, 0])), code('BAD_MESSAGE'), 'trailing byte');
  assert.throws(() => decodeUpdate(new Uint8Array([0xc1])), code('BAD_MESSAGE'), 'reserved byte');
  assert.throws(() => decodeUpdate(packr.pack([1, 2, 3])), code('BAD_MESSAGE'), 'array');
});

test('when an update is decoded with expectations, then another round or site is rejected', () => {
  const bytes = encodeUpdate(update(), 'fp32');
  assert.throws(() => decodeUpdate(bytes, { expect: { roundId: 'round-2' } }), code('WRONG_ROUND'));
  assert.throws(() => decodeUpdate(bytes, { expect: { siteId: 'site-b' } }), code('UNAUTHORIZED'));
});

test('when an update object carries extra fields, then only declared fields reach the wire', () => {
  const secret = 'PATIENT-NOTE-7731';
  const u = { ...update(), text: secret, metrics: { loss: 1 } } as ModelUpdate;
  const bytes = encodeUpdate(u, 'fp32');
  assert.equal(new TextDecoder('latin1').decode(bytes).includes(secret), false);
  assert.equal(Object.hasOwn(decodeUpdate(bytes), 'text'), false);
});

test('when an encoded update is sealed, then no id, name or metric text is visible in the envelope', () => {
  const bytes = encodeUpdate(update(), 'fp32');
  const plain = new TextDecoder('latin1').decode(bytes);
  assert.ok(plain.includes('lora_A') && plain.includes('site-a')); // the check below can fail
  const env = sealAndSign(bytes, {
    roundId: 'round-1',
    recipientBoxPublicKey: generateBoxKeyPair().publicKey,
    signing: generateSiteKeys().signing,
  });
  const sealed = new TextDecoder('latin1').decode(env.ciphertext);
  for (const s of ['lora_A', 'encoder.layer', 'site-a', 'accuracy', 'numExamples'])
    assert.equal(sealed.includes(s), false, s);
});

test('when the global adapter round-trips, then it is exact fp32 and cannot be read as an update', () => {
  const bytes = encodeAdapter({ versionId: 'v3', round: 3, adapter: delta() });
  const back = decodeAdapter(bytes);
  assert.deepEqual(back, { versionId: 'v3', round: 3, adapter: delta() });
  assert.throws(() => decodeUpdate(bytes), code('BAD_MESSAGE'));
  assert.throws(() => decodeAdapter(encodeUpdate(update(), 'fp32')), code('BAD_MESSAGE'));
});

test('when a tensor shape does not match its data, then encoding fails with SHAPE_MISMATCH', () => {
  assert.throws(
    () => encodeUpdate(update({ w: { shape: [3], data: new Float32Array(2) } }), 'fp32'),
    code('SHAPE_MISMATCH'),
  );
});

test('when the frame is a view at an odd offset of a larger buffer (as socket.io delivers), then decoding is exact', () => {
  const u = update();
  const bytes = encodeUpdate(u, 'fp32');
  const big = new Uint8Array(bytes.length + 10).fill(0xee);
  big.set(bytes, 3);
  const back = decodeUpdate(big.subarray(3, 3 + bytes.length));
  assert.deepEqual(back.delta, u.delta);
});
