// Node-only: reads a saved LoRA adapter directory of either format, whatever task it was trained for (a classification
// head, an MLM head, or none), with what it says about its origin, for merging it into its base (merge-base.ts):
//   - native: fedlora-adapter.json (version, round, LoRA config, sha256 of the weights, optional baseModelSha256) +
//     adapter.fedlora (the coordinator's encodeAdapter bytes), as `fedlora-site predict --save-adapter DIR` writes it;
//   - Hugging Face PEFT: adapter_config.json + adapter_model.safetensors, fedlora's own fields under "fedlora"
//     (base_model_sha256 among them); heads travel as modules_to_save.
// client-node/src/agent/inference.ts reads the same directories for classifying, with its own checks (labels, head).

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { FedloraError } from '../../errors';
import { sha256Hex } from '../../crypto/hash';
import { parseFields } from '../../schema-fields';
import { importPeft } from '../../lora/peft';
import { validateLoraConfig, type LoraConfig } from '../../lora/config';
import { openAdapter } from '../../round/participant';
import type { NamedTensors } from '../../tensor';

export const NATIVE_ADAPTER_META = 'fedlora-adapter.json';
export const NATIVE_ADAPTER_WEIGHTS = 'adapter.fedlora';
export const PEFT_ADAPTER_CONFIG = 'adapter_config.json';
export const PEFT_ADAPTER_WEIGHTS = 'adapter_model.safetensors';

const SHA256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits');

/** The fields of fedlora-adapter.json merge relies on; the classification fields (labels, pooling) are not needed here. */
const NativeMetaSchema = z.looseObject({
  format: z.literal('fedlora-adapter'),
  v: z.literal(1),
  versionId: z.string().min(1),
  sha256: SHA256,
  lora: z.looseObject({}),
  /** the base-model hash (model-hash.ts) of the base the adapter was trained on, when the writer knew it */
  baseModelSha256: SHA256.optional(),
});

const PeftFedloraFieldsSchema = z.looseObject({ base_model_sha256: SHA256.optional() });

export interface SavedLoraAdapter {
  format: 'fedlora' | 'peft';
  config: LoraConfig;
  /** canonical keys (adapter.ts): LoRA tensors and any head (classifier.*, cls.predictions.*) */
  state: NamedTensors;
  /** the version id a native adapter carries; null for PEFT */
  versionId: string | null;
  /** SHA-256 of the weights file (adapter.fedlora or adapter_model.safetensors) */
  weightsSha256: string;
  /** the base-model hash the adapter records, or null when it records none */
  baseModelSha256: string | null;
  dir: string;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FedloraError('ADAPTER_INVALID', `${path} is not valid JSON (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
}

function readBytes(path: string): Uint8Array {
  const b = readFileSync(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export async function readLoraAdapterDir(dir: string): Promise<SavedLoraAdapter> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new FedloraError('FILE_NOT_FOUND', `adapter directory not found: ${dir}`);
  if (existsSync(join(dir, NATIVE_ADAPTER_META))) {
    const metaPath = join(dir, NATIVE_ADAPTER_META);
    const meta = parseFields(NativeMetaSchema, readJson(metaPath), { code: 'ADAPTER_INVALID', prefix: metaPath, root: metaPath });
    if (!existsSync(join(dir, NATIVE_ADAPTER_WEIGHTS)))
      throw new FedloraError('ADAPTER_INVALID', `${dir} has ${NATIVE_ADAPTER_META} but no ${NATIVE_ADAPTER_WEIGHTS}`);
    // openAdapter checks the weights against the recorded sha256 (HASH_MISMATCH) and the version id inside them
    let config: LoraConfig;
    try {
      config = validateLoraConfig(meta.lora as unknown as LoraConfig);
    } catch (err) {
      throw new FedloraError('ADAPTER_INVALID', `${metaPath}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const a = await openAdapter(readBytes(join(dir, NATIVE_ADAPTER_WEIGHTS)), meta.sha256, meta.versionId);
    return {
      format: 'fedlora',
      config,
      state: a.adapter,
      versionId: a.versionId,
      weightsSha256: meta.sha256,
      baseModelSha256: meta.baseModelSha256 ?? null,
      dir,
    };
  }
  if (existsSync(join(dir, PEFT_ADAPTER_CONFIG))) {
    if (!existsSync(join(dir, PEFT_ADAPTER_WEIGHTS)))
      throw new FedloraError('ADAPTER_INVALID', `${dir} has ${PEFT_ADAPTER_CONFIG} but no ${PEFT_ADAPTER_WEIGHTS}`);
    const configPath = join(dir, PEFT_ADAPTER_CONFIG);
    const adapterConfig = readJson(configPath);
    if (typeof adapterConfig !== 'object' || adapterConfig === null || Array.isArray(adapterConfig))
      throw new FedloraError('ADAPTER_INVALID', `${configPath} is not a JSON object`);
    const weights = readBytes(join(dir, PEFT_ADAPTER_WEIGHTS));
    const peft = importPeft({ adapterConfig: adapterConfig as Record<string, unknown>, weights }, dir);
    const fed = parseFields(PeftFedloraFieldsSchema, (adapterConfig as Record<string, unknown>).fedlora ?? {}, {
      code: 'ADAPTER_INVALID',
      prefix: `${configPath}: fedlora`,
    });
    return {
      format: 'peft',
      config: peft.config,
      state: peft.state,
      versionId: null,
      weightsSha256: await sha256Hex(weights),
      baseModelSha256: fed.base_model_sha256 ?? null,
      dir,
    };
  }
  throw new FedloraError('ADAPTER_INVALID', `${dir} holds neither a fedlora adapter (${NATIVE_ADAPTER_META}) nor a PEFT adapter (${PEFT_ADAPTER_CONFIG})`);
}
