// Tests for the safetensors reader/writer: files built byte by byte here (F32/F16/BF16), round trips, IEEE half
// conversions at hand-computed values, and corrupt or unsupported files mapped to FedloraError codes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError, type FedloraErrorCode } from '../errors';
import { floatToHalf, halfToFloat, parseSafetensors, serializeSafetensors } from './safetensors';

interface RawEntry {
  dtype: string;
  shape: number[];
  bytes: number[]; // little-endian raw bytes of the tensor
}

/** A safetensors file from raw entries, laid out in the given order (no reliance on the writer under test). */
function buildFile(entries: Record<string, RawEntry>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const [name, e] of Object.entries(entries)) {
    header[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
    offset += e.bytes.length;
  }
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const e of Object.values(entries)) {
    out.set(e.bytes, at);
    at += e.bytes.length;
  }
  return out;
}

const u16le = (...hs: number[]) => hs.flatMap((h) => [h & 0xff, h >> 8]);

function f32le(...xs: number[]): number[] {
  const b = new Uint8Array(xs.length * 4);
  const v = new DataView(b.buffer);
  xs.forEach((x, i) => v.setFloat32(i * 4, x, true));
  return [...b];
}

function assertCode(fn: () => unknown, code: FedloraErrorCode, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isFedloraError(err, code), `expected ${code}, got ${String(err)}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

test('when a hand-built F32 file is parsed, then names, shapes, values, dtypes and metadata come back exactly', () => {
  const bytes = buildFile(
    {
      w: { dtype: 'F32', shape: [2, 2], bytes: f32le(1, -2.5, 0.1, 3e38) },
      s: { dtype: 'F32', shape: [], bytes: f32le(7) }, // a scalar: shape [] holds one element
    },
    { format: 'pt', note: 'x' },
  );
  const f = parseSafetensors(bytes);
  assert.deepEqual(Object.keys(f.tensors).sort(), ['s', 'w']);
  assert.deepEqual(f.tensors.w.shape, [2, 2]);
  assert.deepEqual(Array.from(f.tensors.w.data), [1, -2.5, Math.fround(0.1), Math.fround(3e38)]);
  assert.deepEqual(f.tensors.s.shape, []);
  assert.deepEqual(Array.from(f.tensors.s.data), [7]);
  assert.deepEqual(f.dtypes, { w: 'F32', s: 'F32' });
  assert.deepEqual(f.metadata, { format: 'pt', note: 'x' });
});

test('when a hand-built F16 file is parsed, then each half is widened to its exact float value', () => {
  // 0x3c00 = 1, 0xc000 = -2, 0x3555 = 0.333251953125 (1 + 341/1024)·2^-2, 0x0001 = 2^-24 (smallest subnormal)
  const bytes = buildFile({ h: { dtype: 'F16', shape: [4], bytes: u16le(0x3c00, 0xc000, 0x3555, 0x0001) } });
  const f = parseSafetensors(bytes);
  assert.deepEqual(Array.from(f.tensors.h.data), [1, -2, 0.333251953125, 2 ** -24]);
  assert.equal(f.dtypes.h, 'F16');
});

test('when a hand-built BF16 file is parsed, then each value is the top half of the float32 bits', () => {
  // bf16 0x3f80 = 1, 0xc020 = -2.5, 0x4049 = 3.140625 (π truncated to 8 mantissa bits), 0x7f80 = +inf
  const bytes = buildFile({ b: { dtype: 'BF16', shape: [2, 2], bytes: u16le(0x3f80, 0xc020, 0x4049, 0x7f80) } });
  const f = parseSafetensors(bytes);
  assert.deepEqual(Array.from(f.tensors.b.data), [1, -2.5, 3.140625, Infinity]);
  assert.equal(f.dtypes.b, 'BF16');
});

test('when a file is an unaligned view into a larger buffer, then it still parses', () => {
  const inner = buildFile({ w: { dtype: 'F32', shape: [2], bytes: f32le(1.5, -4) } });
  const big = new Uint8Array(inner.length + 3);
  big.set(inner, 3);
  assert.deepEqual(Array.from(parseSafetensors(big.subarray(3)).tensors.w.data), [1.5, -4]);
});

test('when F32 tensors are serialized and parsed back, then every value is bit-identical and the header is 8-aligned', () => {
  const tensors = {
    'b.weight': { shape: [3, 2], data: new Float32Array([0.1, -0.2, 1e-30, -1e30, 123.456, 0]) },
    'a.bias': { shape: [3], data: new Float32Array([Math.PI, -Math.E, 2 ** -140]) },
  };
  const bytes = serializeSafetensors(tensors, { metadata: { round: '3' } });
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + headerLen) % 8, 0, 'data must start on an 8-byte boundary');
  const f = parseSafetensors(bytes);
  assert.deepEqual(f.metadata, { format: 'pt', round: '3' });
  for (const [name, t] of Object.entries(tensors)) {
    assert.deepEqual(f.tensors[name].shape, t.shape);
    assert.deepEqual(f.tensors[name].data, t.data, name);
    assert.equal(f.dtypes[name], 'F32');
  }
});

test('when tensors are serialized as F16 and parsed back, then each value is within half precision (rel 2^-11)', () => {
  const values = [0.1, -0.2, 1, 3.14159, -1000.5, 65000, 1e-3, 0];
  const bytes = serializeSafetensors({ x: { shape: [8], data: new Float32Array(values) } }, { dtype: 'F16' });
  const f = parseSafetensors(bytes);
  assert.equal(f.dtypes.x, 'F16');
  values.forEach((v, i) => {
    const got = f.tensors.x.data[i];
    assert.ok(Math.abs(got - v) <= Math.abs(v) * 2 ** -11, `${v} came back as ${got}`);
  });
  // and an F16 file is about half the size of the F32 one (8 values: 16 vs 32 data bytes)
  const f32 = serializeSafetensors({ x: { shape: [8], data: new Float32Array(values) } });
  assert.ok(bytes.length < f32.length);
});

test('when known halves are converted, then halfToFloat and floatToHalf give the IEEE 754 values', () => {
  const table: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff], // largest finite half
    [2 ** -14, 0x0400], // smallest normal, 6.103515625e-5
    [1023 * 2 ** -24, 0x03ff], // largest subnormal, 6.0975551605e-5
    [2 ** -24, 0x0001], // smallest subnormal
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [0, 0x0000],
  ];
  for (const [f, h] of table) {
    assert.equal(floatToHalf(f), h, `floatToHalf(${f})`);
    assert.equal(halfToFloat(h), f, `halfToFloat(0x${h.toString(16)})`);
  }
  assert.equal(floatToHalf(-0), 0x8000);
  assert.ok(Object.is(halfToFloat(0x8000), -0));
});

test('when floats fall between halves, then floatToHalf rounds to nearest even, to subnormals, to inf and to 0', () => {
  // 6.1e-5 lies between 0x03ff (6.0976e-5, 2.4e-8 away) and 0x0400 (6.1035e-5, 3.5e-8 away): subnormal 0x03ff
  assert.equal(floatToHalf(6.1e-5), 0x03ff);
  assert.equal(halfToFloat(floatToHalf(6.1e-5)), 1023 * 2 ** -24);
  assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00, 'tie between 0x3c00 and 0x3c01 goes to even 0x3c00');
  assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02, 'tie between 0x3c01 and 0x3c02 goes to even 0x3c02');
  assert.equal(floatToHalf(65519), 0x7bff, 'below the halfway point to 65536 stays finite');
  assert.equal(floatToHalf(65520), 0x7c00, 'the tie above 65504 rounds (to even) into inf');
  assert.equal(floatToHalf(1e10), 0x7c00);
  assert.equal(floatToHalf(-1e10), 0xfc00);
  assert.equal(floatToHalf(2 ** -26), 0x0000, 'a quarter of the smallest subnormal underflows to 0');
  assert.equal(floatToHalf(3 * 2 ** -26), 0x0001, 'three quarters of it rounds up to it');
});

test('when NaN is converted either way, then it stays NaN', () => {
  const h = floatToHalf(NaN);
  assert.equal(h & 0x7c00, 0x7c00, 'exponent all ones');
  assert.notEqual(h & 0x03ff, 0, 'non-zero mantissa (not inf)');
  assert.ok(Number.isNaN(halfToFloat(h)));
  assert.ok(Number.isNaN(halfToFloat(0x7e00)));
  assert.ok(Number.isNaN(halfToFloat(0xfc01)));
});

test('when a file is cut short, then parsing fails with FILE_CORRUPT saying truncated', () => {
  const whole = serializeSafetensors({ w: { shape: [4, 4], data: new Float32Array(16).fill(1) } });
  assertCode(() => parseSafetensors(whole.subarray(0, whole.length - 4), 'x.safetensors'), 'FILE_CORRUPT', /^x\.safetensors: .*truncated/);
  assertCode(() => parseSafetensors(whole.subarray(0, 20)), 'FILE_CORRUPT', /truncated/); // cut inside the header
  assertCode(() => parseSafetensors(whole.subarray(0, 5)), 'FILE_CORRUPT', /only 5 bytes/);
});

test('when the header is not valid JSON, or not a JSON object, then parsing fails with FILE_CORRUPT', () => {
  const enc = (s: string) => {
    const h = new TextEncoder().encode(s);
    const out = new Uint8Array(8 + h.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    return out;
  };
  assertCode(() => parseSafetensors(enc('{"w": {"dtype": "F32",')), 'FILE_CORRUPT', /not valid JSON/);
  assertCode(() => parseSafetensors(enc('null')), 'FILE_CORRUPT');
  assertCode(() => parseSafetensors(enc('[1, 2]')), 'FILE_CORRUPT');
  assertCode(() => parseSafetensors(enc('{"w": null}')), 'FILE_CORRUPT');
  assertCode(() => parseSafetensors(new Uint8Array(16)), 'FILE_CORRUPT', /header length 0/);
});

test('when offsets do not match the shape, then parsing fails with FILE_CORRUPT naming the tensor', () => {
  const bytes = buildFile({ w: { dtype: 'F32', shape: [3], bytes: f32le(1, 2) } }); // 8 bytes for 3 floats
  assertCode(() => parseSafetensors(bytes), 'FILE_CORRUPT', /tensor w: offsets \[0, 8\] do not fit shape \[3\] of F32/);
  const badShape = buildFile({ w: { dtype: 'F32', shape: [-1], bytes: f32le(1) } });
  assertCode(() => parseSafetensors(badShape), 'FILE_CORRUPT', /tensor w has a bad shape/);
});

test('when a tensor has an unsupported dtype (I64), then parsing fails with MODEL_UNSUPPORTED naming it', () => {
  const bytes = buildFile({
    ok: { dtype: 'F32', shape: [1], bytes: f32le(1) },
    'embeddings.position_ids': { dtype: 'I64', shape: [1, 2], bytes: [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0] },
  });
  assertCode(() => parseSafetensors(bytes), 'MODEL_UNSUPPORTED', /embeddings\.position_ids has dtype I64; supported: F32, F16, BF16/);
});
