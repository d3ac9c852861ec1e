// A project spec the coordinator process cannot serve is refused before any model is loaded, as CONFIG_INVALID naming
// the project and what is wrong (POST /api/projects answers it 400): a held-out file that is not there, one whose
// labels are not the project's, and no held-out set without federated evaluation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { parseConfig, type CoordinatorConfig } from '../config';
import { modelProjectFactory } from './model-project';
import { ProjectSpecSchema } from './project-spec';

const config = parseConfig(['--admin-token', 'model-project-test-token-0123456789']) as CoordinatorConfig;
const spec = (o: object) => ProjectSpecSchema.parse({ id: 'triage', labels: ['billing', 'tech'], ...o });

test('when a project spec names a missing held-out file, foreign labels or no evaluation at all, then it is CONFIG_INVALID naming the project and the cause', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-model-project-'));
  try {
    const make = modelProjectFactory(config);
    const missing = join(dir, 'nope.csv');
    await assert.rejects(make(spec({ heldout: missing })), (e) => isFedloraError(e, 'CONFIG_INVALID') && e.message.startsWith('project triage: ') && e.message.includes(missing));
    const foreign = join(dir, 'foreign.csv');
    writeFileSync(foreign, 'text,label\nmy card was charged twice,billing\nthe parcel is late,shipping\n');
    await assert.rejects(make(spec({ heldout: foreign })), (e) => isFedloraError(e, 'CONFIG_INVALID') && /labels the project does not \(shipping\)/.test(e.message));
    await assert.rejects(make(spec({})), (e) => isFedloraError(e, 'CONFIG_INVALID') && /held-out set \(heldout\) or turn on federated evaluation/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
