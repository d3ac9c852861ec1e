// The round manifest: what a site must hold to take part (base model and file hashes, LoRA config,
// label set, current global adapter version). Sent to a site after authentication; the site checks its
// local base-model files against the hashes (HASH_MISMATCH) before it trains anything.

import { z } from 'zod';
import { FedloraError } from '../errors';
import { LORA_TARGETS, validateLoraConfig, type LoraConfig } from '../lora/config';
import { LIMITS } from './limits';
import { IdSchema, parseWith, Sha256HexSchema } from './schemas';

/** A relative path inside the model directory: no absolute paths, no "..", no backslashes. */
export const ModelFilePathSchema = z
  .string()
  .min(1)
  .max(LIMITS.maxNameLength)
  .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, 'must be a relative path of letters, digits and _ . -')
  .refine(
    (p) => !p.split('/').some((seg) => seg === '..' || seg === '.'),
    'must not contain "." or ".." segments',
  );

const LoraConfigSchema = z
  .object({
    r: z.number(),
    alpha: z.number(),
    dropout: z.number(),
    targetModules: z.array(z.enum(LORA_TARGETS)),
    layers: z.array(z.number()).nullable(),
  })
  .strict();

/**
 * What the federation trains (issue 24): absent = classification (labels, a classifier head); 'mlm' = masked-LM domain
 * adaptation on the sites' unlabelled text: LoRA on the encoder and, with headTransform, the MLM head's transform
 * (training/mlm-state.ts), no labels and no classifier head. A site that does not know the field refuses the manifest.
 */
export const ManifestTaskSchema = z.object({ kind: z.literal('mlm'), headTransform: z.boolean() }).strict();
export type ManifestTask = z.output<typeof ManifestTaskSchema>;

export const ManifestSchema = z
  .object({
    v: z.literal(1),
    baseModel: z
      .object({
        /** e.g. "bert-base-uncased" or "google-bert/bert-base-uncased" */
        id: z
          .string()
          .min(1)
          .max(LIMITS.maxIdLength)
          .regex(/^[A-Za-z0-9][A-Za-z0-9_.\-/]*$/),
        files: z
          .array(
            z
              .object({ path: ModelFilePathSchema, sha256: Sha256HexSchema, bytes: z.number().int().min(0) })
              .strict(),
          )
          .min(1)
          .refine((fs) => new Set(fs.map((f) => f.path)).size === fs.length, 'has a duplicate path'),
      })
      .strict(),
    lora: LoraConfigSchema,
    /** class labels in output-index order (at least 2); empty in an 'mlm' federation */
    labels: z
      .array(z.string().min(1).max(LIMITS.maxNameLength))
      .max(LIMITS.maxLabels)
      .refine((ls) => new Set(ls).size === ls.length, 'has a duplicate label'),
    task: ManifestTaskSchema.optional(),
    /** how the classifier pools token vectors (model/classifier.ts); absent = 'mean', the shipped recipe's */
    pooling: z.enum(['mean', 'cls', 'pooler']).optional(),
    /** tokens per example the sites must truncate/pad to (BERT's position table has 512) */
    maxSeqLength: z.number().int().min(8).max(512),
    /** the current global adapter; null before the first round is versioned */
    versionId: IdSchema.nullable(),
  })
  .strict()
  .refine((m) => (m.task?.kind === 'mlm' ? m.labels.length === 0 : m.labels.length >= 2), {
    message: 'labels: a classification federation needs at least 2 labels, a masked-LM one none',
    path: ['labels'],
  });

/** The manifest as parsed (lora is the validated LoraConfig). */
export type Manifest = Omit<z.output<typeof ManifestSchema>, 'lora'> & { lora: LoraConfig };

/**
 * Validates a manifest from a peer or a file. Shape errors are BAD_MESSAGE; the LoRA config goes through
 * the one LoRA validator (lora/config.ts) so both use the same rules, its error kept as the cause.
 */
export function parseManifest(x: unknown): Manifest {
  const m = parseWith(ManifestSchema, x, 'manifest');
  let lora: LoraConfig;
  try {
    lora = validateLoraConfig(m.lora);
  } catch (err) {
    throw new FedloraError(
      'BAD_MESSAGE',
      `manifest: ${err instanceof Error ? err.message : 'invalid lora'}`,
      {
        cause: err,
      },
    );
  }
  return { ...m, lora };
}
