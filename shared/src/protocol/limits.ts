// Hard limits on what a peer may send. They bound memory and CPU spent on untrusted input before it is validated.

export const LIMITS = {
  /**
   * Largest encoded update/adapter frame. A BERT-base LoRA adapter (r=8, query+value, 12 layers) is
   * 294,912 floats = 1.2 MB in fp32; 32 MiB leaves room for r=64 on every module. Socket.io's own
   * maxHttpBufferSize (default 1 MB) must be set at least this large on the coordinator.
   */
  maxFrameBytes: 32 * 1024 * 1024,
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
  /** bytes per base-model download chunk ('model:chunk'); below socket.io's frame limit */
  maxModelChunkBytes: 4 * 1024 * 1024,
} as const;
