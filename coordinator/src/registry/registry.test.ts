// Adapter registry on disk: atomic files, reload after restart, promote / roll back, hash check, strategy state.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { decodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { DirStorage, writeFileAtomic } from '../storage';
import { tinyAdapter } from '../rounds/fakes';
import { AdapterRegistry } from './registry';
import type { NewVersion } from './types';

const code = (c: string) => (err: unknown) => isFedloraError(err) && err.code === c;

function version(round: number, parent: string | null, accuracy: number): NewVersion {
  return {
    parent,
    round,
    strategy: 'fedadam',
    sites: round === 0 ? 0 : 3,
    examples: round * 10,
    metrics: { accuracy, macroF1: accuracy, loss: 1 - accuracy, examples: 4, perClass: [] },
    trainMetrics: {},
    uploadedBytes: round * 100,
  };
}

function withDir(fn: (dir: string) => Promise<void>) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-registry-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  'when versions are added and the registry is reopened, then every version, its state and the current id come back',
  withDir(async (dir) => {
    const reg = await AdapterRegistry.open(new DirStorage(dir));
    await reg.addVersion(version(0, null, 0.5), tinyAdapter(0), null);
    const adam = {
      strategy: 'fedadam',
      step: 1,
      tensors: { 'm/classifier.bias': { shape: [2], data: new Float32Array([0.5, -0.5]) } },
    };
    const v1 = await reg.addVersion(version(1, 'v0', 0.7), tinyAdapter(0.125), adam);
    await reg.addRound({
      round: 1,
      roundId: 'r1-x',
      startedAt: '',
      durationMs: 5,
      outcome: 'aggregated',
      reason: null,
      stage: 'version',
      strategy: 'fedadam',
      baseVersionId: 'v0',
      versionId: 'v1',
      sampled: 3,
      participants: 3,
      updates: 3,
      failures: [],
      rejections: [],
      uploadedBytes: 300,
      bytesPerUpload: [100, 100, 100],
    });

    const again = await AdapterRegistry.open(new DirStorage(dir));

    assert.deepEqual(again.list(), reg.list());
    assert.equal(again.currentId(), 'v1');
    assert.equal(again.lastRound(), 1);
    assert.equal(again.rounds()[0].roundId, 'r1-x');
    assert.deepEqual([...(await again.loadState('v1'))['classifier.bias'].data], [0.125, 0.125]);
    const st = await again.loadStrategyState('v1');
    assert.equal(st?.step, 1);
    assert.deepEqual([...(st?.tensors['m/classifier.bias'].data ?? [])], [0.5, -0.5]);
    assert.equal(await again.loadStrategyState('v0'), null);
    // the native file is encodeAdapter bytes naming the version and round
    const native = decodeAdapter(await again.loadNative('v1'));
    assert.equal(native.versionId, 'v1');
    assert.equal(native.round, 1);
    assert.equal(v1.bytes, readFileSync(join(dir, 'versions', 'v1.adapter')).byteLength);
    // no temp files are left behind
    const files = [...readdirSync(dir), ...readdirSync(join(dir, 'versions'))];
    assert.ok(
      files.every((f) => !f.endsWith('.tmp')),
      files.join(','),
    );
  }),
);

test(
  'when an older version is promoted, then it is current after a restart and the versions are unchanged',
  withDir(async (dir) => {
    const reg = await AdapterRegistry.open(new DirStorage(dir));
    await reg.addVersion(version(0, null, 0.5), tinyAdapter(0), null);
    await reg.addVersion(version(1, 'v0', 0.7), tinyAdapter(0.1), null);
    const before = reg.list();

    await reg.promote('v0');

    const again = await AdapterRegistry.open(new DirStorage(dir));
    assert.equal(again.currentId(), 'v0');
    assert.deepEqual(again.list(), before);
    // a version made after the rollback has the rolled-back one as parent and continues the id sequence
    const v2 = await again.addVersion(version(2, 'v0', 0.8), tinyAdapter(0.2), null);
    assert.equal(v2.id, 'v2');
    assert.equal(again.currentId(), 'v2');
    await assert.rejects(again.promote('v9'), code('NOT_FOUND'));
  }),
);

test(
  'when a version file is altered on disk, then loading it fails with FILE_CORRUPT',
  withDir(async (dir) => {
    const reg = await AdapterRegistry.open(new DirStorage(dir));
    await reg.addVersion(version(0, null, 0.5), tinyAdapter(0), null);
    const f = join(dir, 'versions', 'v0.adapter');
    const bytes = readFileSync(f);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(f, bytes);
    await assert.rejects(reg.loadState('v0'), code('FILE_CORRUPT'));
  }),
);

test(
  'when the index is not JSON, then opening fails with FILE_CORRUPT',
  withDir(async (dir) => {
    writeFileSync(join(dir, 'index.json'), '{"v":1,');
    await assert.rejects(AdapterRegistry.open(new DirStorage(dir)), code('FILE_CORRUPT'));
  }),
);

test(
  'when a file is written atomically over an old one, then readers see the old or the new content only',
  withDir(async (dir) => {
    const p = join(dir, 'a', 'x.json');
    await writeFileAtomic(p, 'old');
    await writeFileAtomic(p, 'new');
    assert.equal(readFileSync(p, 'utf8'), 'new');
    assert.deepEqual(readdirSync(join(dir, 'a')), ['x.json']);
  }),
);
