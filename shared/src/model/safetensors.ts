// The safetensors container (https://github.com/huggingface/safetensors): an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets: [begin, end]}}, then the raw little-endian tensor bytes.
// Isomorphic (Uint8Array in, Uint8Array out). Reads F32/F16/BF16 into Float32Array; writes F32 or F16.

import { FedloraError } from '../errors';
import { numel, type HostTensor, type NamedTensors } from '../tensor';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';
const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

export interface SafetensorsFile {
  tensors: NamedTensors;
  /** dtype each tensor had on disk */
  dtypes: Record<string, SafetensorsDtype>;
  metadata: Record<string, string>;
}

/** IEEE 754 binary16 → float32. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // subnormal
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** float32 → IEEE 754 binary16 bits, rounding to nearest even. */
export function floatToHalf(f: number): number {
  const f32 = new Float32Array([f]);
  const x = new Uint32Array(f32.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow → ±0
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // may carry into the exponent: still correct
  return sign | half;
}

export function parseSafetensors(bytes: Uint8Array, source = 'safetensors file'): SafetensorsFile {
  const corrupt = (why: string) => new FedloraError('FILE_CORRUPT', `${source}: ${why}`);
  if (bytes.byteLength < 8) throw corrupt(`only ${bytes.byteLength} bytes, not a safetensors file`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen <= 0 || 8 + headerLen > bytes.byteLength)
    throw corrupt(`header length ${headerLen} exceeds file size ${bytes.byteLength} (truncated or not safetensors)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  } catch (err) {
    throw new FedloraError('FILE_CORRUPT', `${source}: header is not valid JSON`, { cause: err });
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw corrupt('header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = bytes.byteLength - dataStart;
  const out: SafetensorsFile = { tensors: {}, dtypes: {}, metadata: {} };
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      out.metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    if (typeof raw !== 'object' || raw === null) throw corrupt(`tensor ${name} has no header entry object`);
    const entry = raw as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    const dtype = entry.dtype as SafetensorsDtype;
    if (!(dtype in BYTES))
      throw new FedloraError(
        'MODEL_UNSUPPORTED',
        `${source}: tensor ${name} has dtype ${entry.dtype}; supported: F32, F16, BF16`,
      );
    const shape = entry.shape ?? [];
    const [begin, end] = entry.data_offsets ?? [-1, -1];
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) throw corrupt(`tensor ${name} has a bad shape`);
    const n = numel(shape);
    if (!(begin >= 0 && end >= begin && end - begin === n * BYTES[dtype]))
      throw corrupt(`tensor ${name}: offsets [${begin}, ${end}] do not fit shape [${shape}] of ${dtype}`);
    if (end > dataLen) throw corrupt(`tensor ${name} ends at byte ${end} but the data is ${dataLen} bytes (truncated)`);
    const at = bytes.byteOffset + dataStart + begin;
    const data = new Float32Array(n);
    const dv = new DataView(bytes.buffer, at, end - begin);
    if (dtype === 'F32') for (let i = 0; i < n; i++) data[i] = dv.getFloat32(i * 4, true);
    else if (dtype === 'F16') for (let i = 0; i < n; i++) data[i] = halfToFloat(dv.getUint16(i * 2, true));
    else {
      const u = new Uint32Array(1);
      const f = new Float32Array(u.buffer);
      for (let i = 0; i < n; i++) {
        u[0] = dv.getUint16(i * 2, true) << 16;
        data[i] = f[0];
      }
    }
    out.tensors[name] = { shape: [...shape], data };
    out.dtypes[name] = dtype;
  }
  return out;
}

export function serializeSafetensors(
  tensors: NamedTensors,
  opts: { dtype?: 'F32' | 'F16'; metadata?: Record<string, string> } = {},
): Uint8Array {
  const dtype = opts.dtype ?? 'F32';
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', ...(opts.metadata ?? {}) } };
  let offset = 0;
  for (const name of names) {
    const t: HostTensor = tensors[name];
    const size = t.data.length * BYTES[dtype];
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let headerBytes = new TextEncoder().encode(JSON.stringify(header));
  // pad the header with spaces to an 8-byte boundary, as the reference writer does
  const pad = (8 - (headerBytes.length % 8)) % 8;
  if (pad) headerBytes = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const d = tensors[name].data;
    if (dtype === 'F32') for (let i = 0; i < d.length; i++, at += 4) view.setFloat32(at, d[i], true);
    else for (let i = 0; i < d.length; i++, at += 2) view.setUint16(at, floatToHalf(d[i]), true);
  }
  return out;
}
