// The shipped base model (node-only: its directory is found from this file's location in the repository): what a
// user gets when passing no model flags. The training recipe that goes with it is isomorphic (training/recipe.ts).

import { fileURLToPath } from 'node:url';

export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../../models/fedlora-bert-mini/', import.meta.url));
export const DEFAULT_MODEL_ID = 'fedlora-bert-mini';
