// Public API of fedlora's wire protocol: limits, primitive schemas, the tensor codec, manifest, messages
// and the typed socket.io event maps.

export { LIMITS } from './limits';
export { bytesSchema, FiniteNumberSchema, IdSchema, NameSchema, parseWith, Sha256HexSchema } from './schemas';
export { BYTES_PER_ELEMENT, ENCODINGS, fromHalfBits, toHalfBits, type TensorEncoding } from './quantize';
export {
  decodeAdapter,
  decodeUpdate,
  encodeAdapter,
  encodeUpdate,
  MessageNonceSchema,
  MetricsSchema,
  newMessageNonce,
  type DecodedUpdate,
  type DecodeOptions,
  type DecodeUpdateOptions,
  type GlobalAdapter,
  type ModelUpdate,
  type UpdateMetrics,
} from './codec';
export { ManifestSchema, parseManifest, type Manifest } from './manifest';
export * from './messages';
export * from './events';
