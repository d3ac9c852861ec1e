// Hard limits on what a peer may send. They bound memory and CPU spent on untrusted input before it is validated.

export const LIMITS = {
  /**
   * Largest encoded update/adapter frame. A BERT-base LoRA adapter (r=8, query+value, 12 layers) is
   * 294,912 floats = 1.2 MB in fp32; 32 MiB leaves room for r=64 on every module. A request this large
   * crosses the socket in 'frame:part's (protocol/frame-parts.ts), never as one transport frame.
   */
  maxFrameBytes: 32 * 1024 * 1024,
  /**
   * socket.io's frame limit (maxHttpBufferSize) on the coordinator, for every peer: the transport parses a frame
   * before anyone is authenticated, so it stays small (32 unauthenticated 32 MiB frames once cost ~1 GB of RSS).
   */
  maxSocketFrameBytes: 1024 * 1024,
  /** request bytes per 'frame:part'; polling base64-encodes binary (×4/3), still under maxSocketFrameBytes */
  framePartBytes: 512 * 1024,
  /** parts of one request: a full-size request in parts of 64 KiB or more */
  maxFrameParts: 512,
  /** tensors per adapter: BERT-large with all six modules adapted has 24 * 6 * 2 = 288 */
  maxTensors: 4096,
  /** LoRA matrices are rank 2; a little slack for biases and heads */
  maxRank: 4,
  /** elements in one tensor (also caps fp16/int8 expansion to 4 bytes/element after decode) */
  maxTensorElements: 64 * 1024 * 1024,
  /** PEFT-style names such as "bert.encoder.layer.11.attention.self.query.lora_A.weight" */
  maxNameLength: 256,
  /** entries in a metrics map */
  maxMetrics: 32,
  /** site, round and version identifiers */
  maxIdLength: 128,
  /** free-text messages (errors); never echoed from untrusted input */
  maxMessageLength: 1024,
  /** labels of a classification task (Banking77 has 77) */
  maxLabels: 10_000,
  /** bytes per base-model download chunk ('model:chunk', coordinator → site: sites set no frame limit) */
  maxModelChunkBytes: 4 * 1024 * 1024,
  /**
   * the largest adapter sent whole ('round:train', 'adapter:fetch'); a larger one travels in 'adapter:chunk's of at
   * most this size, each with its own SHA-256 (connection/adapter-download.ts)
   */
  adapterInlineBytes: 1024 * 1024,
} as const;
