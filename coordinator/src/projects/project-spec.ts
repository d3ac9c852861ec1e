// What makes a project (issue 21), as POST /api/projects takes it and projects.json keeps it, and its id: the id
// appears in REST paths (/api/projects/<id>/…), socket.io namespaces (/projects/<id>), data-dir folders
// (projects/<id>/), join tokens and audit entries, so it is kept to characters that are safe in all of them.
// Browser-safe: the console takes the schema from here (through admin-schemas.ts).

import { z } from 'zod';
import { SettingsPatchSchema } from '../rounds/settings';
import { DEFAULT_PROJECT_ID } from '@fedlora/shared/protocol/join-token.ts';

/** The coordinator's first project: today's routes (/api/…), the '/' namespace and the data dir's own files. */
export { DEFAULT_PROJECT_ID };

const PROJECT_ID = 'must be 1-32 characters: lowercase letters, digits and - (starting with a letter)';
export const ProjectIdSchema = z.string({ error: PROJECT_ID }).regex(/^[a-z][a-z0-9-]{0,31}$/, { error: PROJECT_ID });

const LABEL = 'must be 2-1000 distinct labels, each a non-empty string of at most 128 characters';
/**
 * What makes a new project: its id and labels, and optionally its base model and held-out set (paths on the
 * coordinator's machine; default: the coordinator's --model, and no held-out set, which needs federatedEval), the
 * strategy and settings (PUT /settings' fields; default: the coordinator's own settings).
 */
export const ProjectSpecSchema = z
  .object({
    id: ProjectIdSchema.refine((id) => id !== DEFAULT_PROJECT_ID, { error: `${DEFAULT_PROJECT_ID} is the coordinator's own project` }),
    labels: z
      .array(z.string({ error: LABEL }).min(1, { error: LABEL }).max(128, { error: LABEL }), { error: LABEL })
      .min(2, { error: LABEL })
      .max(1000, { error: LABEL })
      .refine((l) => new Set(l).size === l.length, { error: LABEL }),
    model: z.string().min(1).max(4096).optional(),
    modelId: z.string().min(1).max(128).optional(),
    heldout: z.string().min(1).max(4096).optional(),
    heldoutLimit: z.number().int().min(2).optional(),
    textColumn: z.string().min(1).max(128).optional(),
    labelColumn: z.string().min(1).max(128).optional(),
    federatedEval: z.boolean().optional(),
    // kept as given (PUT /settings' input form, e.g. sitesPerRound "0.5") and checked with its schema
    settings: z
      .record(z.string(), z.unknown())
      .superRefine((v, ctx) => {
        const r = SettingsPatchSchema.safeParse(v);
        if (r.success) return;
        for (const i of r.error.issues) {
          const keys = i.code === 'unrecognized_keys' ? i.keys : [];
          if (keys.length > 0) for (const k of keys) ctx.addIssue({ code: 'custom', path: [k], message: 'is not a setting' });
          else ctx.addIssue({ code: 'custom', path: [...i.path] as PropertyKey[], message: i.message });
        }
      })
      .optional(),
  })
  .strict();
export type ProjectSpec = z.output<typeof ProjectSpecSchema>;

