// Element encodings for tensors on the wire, all little-endian: fp32 (exact), IEEE 754 binary16 (fp16,
// round-to-nearest-even) and symmetric per-tensor int8 (scale = max|x| / 127, as in e.g. QSGD-style
// uniform quantizers; -128 is never produced so the grid is symmetric around 0).

import { FedloraError } from '../errors';

export const ENCODINGS = ['fp32', 'fp16', 'int8'] as const;
export type TensorEncoding = (typeof ENCODINGS)[number];

export const BYTES_PER_ELEMENT: Record<TensorEncoding, number> = { fp32: 4, fp16: 2, int8: 1 };

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → binary16 bits, round to nearest even; |x| > 65504 rounds to ±Infinity as IEEE does. */
export function toHalfBits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf, or a quiet NaN
  const e = exp - 127 + 15; // re-biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    // half subnormal: value = h * 2^-24, and value = mant24 * 2^(exp-150), so h = mant24 >> (14 - e)
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is still correct (up to Inf)
  return sign | h;
}

export function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

let halfTable: Float32Array | null = null;
/** All 65,536 half values, built once (256 KB): decoding becomes one lookup per element. */
function halfLookup(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = fromHalfBits(h);
  }
  return halfTable;
}

export interface EncodedTensorData {
  data: Uint8Array;
  /** int8 only: value = q * scale */
  scale?: number;
}

/** `name` only labels errors. Non-finite input, or a value fp16 cannot hold, is NON_FINITE. */
export function encodeElements(x: Float32Array, encoding: TensorEncoding, name: string): EncodedTensorData {
  for (let i = 0; i < x.length; i++)
    if (!Number.isFinite(x[i]))
      throw new FedloraError('NON_FINITE', `tensor ${name} has a non-finite value at ${i}`);
  switch (encoding) {
    case 'fp32': {
      if (LITTLE_ENDIAN)
        return { data: new Uint8Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength)) };
      const out = new Uint8Array(x.length * 4);
      const dv = new DataView(out.buffer);
      for (let i = 0; i < x.length; i++) dv.setFloat32(i * 4, x[i], true);
      return { data: out };
    }
    case 'fp16': {
      const out = new Uint8Array(x.length * 2);
      const dv = new DataView(out.buffer);
      for (let i = 0; i < x.length; i++) {
        const h = toHalfBits(x[i]);
        if ((h & 0x7c00) === 0x7c00)
          throw new FedloraError(
            'NON_FINITE',
            `tensor ${name} value ${x[i]} at ${i} overflows fp16 (max 65504)`,
          );
        dv.setUint16(i * 2, h, true);
      }
      return { data: out };
    }
    case 'int8': {
      let maxAbs = 0;
      for (let i = 0; i < x.length; i++) maxAbs = Math.max(maxAbs, Math.abs(x[i]));
      const scale = maxAbs / 127; // 0 for an all-zero tensor: every q is 0 and decodes to 0
      const out = new Int8Array(x.length);
      if (scale > 0)
        for (let i = 0; i < x.length; i++) out[i] = Math.max(-127, Math.min(127, Math.round(x[i] / scale)));
      return { data: new Uint8Array(out.buffer), scale };
    }
  }
}

/**
 * Decodes `count` elements. The caller has checked data.length === count * BYTES_PER_ELEMENT[encoding].
 * Non-finite results are NON_FINITE; an int8 byte of -128 (outside the symmetric grid) is BAD_MESSAGE.
 */
export function decodeElements(
  bytes: Uint8Array,
  count: number,
  encoding: TensorEncoding,
  scale: number | undefined,
  name: string,
): Float32Array {
  const nonFinite = (i: number) =>
    new FedloraError('NON_FINITE', `tensor ${name} has a non-finite value at ${i}`);
  let out: Float32Array;
  switch (encoding) {
    case 'fp32': {
      if (LITTLE_ENDIAN) {
        // new Uint8Array(view) copies into a fresh, aligned buffer (Buffer#slice would not copy)
        out = new Float32Array(new Uint8Array(bytes).buffer, 0, count);
      } else {
        out = new Float32Array(count);
        const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      }
      for (let i = 0; i < count; i++) if (!Number.isFinite(out[i])) throw nonFinite(i);
      return out;
    }
    case 'fp16': {
      const table = halfLookup();
      out = new Float32Array(count);
      for (let i = 0; i < count; i++) {
        const h = bytes[2 * i] | (bytes[2 * i + 1] << 8);
        if ((h & 0x7c00) === 0x7c00) throw nonFinite(i);
        out[i] = table[h];
      }
      return out;
    }
    case 'int8': {
      if (scale === undefined || !Number.isFinite(scale) || scale < 0)
        throw new FedloraError('BAD_MESSAGE', `tensor ${name}: int8 needs a finite non-negative scale`);
      const q = new Int8Array(bytes.buffer, bytes.byteOffset, count);
      out = new Float32Array(count);
      for (let i = 0; i < count; i++) {
        if (q[i] === -128) throw new FedloraError('BAD_MESSAGE', `tensor ${name}: int8 value -128 at ${i}`);
        out[i] = q[i] * scale;
        if (!Number.isFinite(out[i])) throw nonFinite(i); // a huge scale can overflow float32
      }
      return out;
    }
  }
}
