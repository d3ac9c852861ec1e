// Site agent pieces that need no coordinator: key storage, backoff schedule, base-model hash verification,
// label mapping, round-config reading and failure reports.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FedloraError, isFedloraError } from '@fedlora/shared/errors.ts';
import { generateSiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { backoffDelay, Backoff } from '@fedlora/shared/connection/backoff.ts';
import { checkModelFiles, downloadBaseModel, verifyBaseModel, type ManifestFile } from './model-check';
import { hasKeys, loadKeys, loadSiteConfig, saveKeys, saveSiteConfig, KEYS_FILE, SITE_FILE } from './state';
import { checkLabelMapping, labelMapping } from '@fedlora/shared/data/site-data.ts';
import { failureFor, localTrainConfig, roundMaxLength } from '@fedlora/shared/round/participant.ts';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'fedlora-agent-'));
}

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

test('when keys are saved, then the file has mode 600 in a mode-700 directory and loads back equal', () => {
  const dir = join(tmp(), 'state');
  const keys = generateSiteKeys();
  saveKeys(dir, keys);
  assert.equal(statSync(join(dir, KEYS_FILE)).mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.ok(hasKeys(dir));
  const back = loadKeys(dir);
  assert.deepEqual(back.signing.secretKey, keys.signing.secretKey);
  assert.deepEqual(back.box.publicKey, keys.box.publicKey);
  rmSync(dir, { recursive: true, force: true });
});

test('when the key file is readable by others, then loading it is refused with the chmod fix', { skip: process.platform === 'win32' }, () => {
  const dir = tmp();
  saveKeys(dir, generateSiteKeys());
  chmodSync(join(dir, KEYS_FILE), 0o644);
  assert.throws(() => loadKeys(dir), (e: unknown) => isFedloraError(e, 'CONFIG_INVALID') && /chmod 600/.test(e.message));
  rmSync(dir, { recursive: true, force: true });
});

test('when there are no keys, then loading says to run join', () => {
  const dir = tmp();
  assert.throws(() => loadKeys(dir), (e: unknown) => isFedloraError(e, 'FILE_NOT_FOUND') && /fedlora-site join/.test(e.message));
  rmSync(dir, { recursive: true, force: true });
});

test('when a site config is saved, then it loads back and a corrupt one is FILE_CORRUPT', () => {
  const dir = tmp();
  const cfg = { v: 1 as const, coordinator: 'http://localhost:8080', siteId: 'site-a', data: '/data/a.csv', labelColumn: 'label', enrolledAt: '2025-01-01T00:00:00.000Z' };
  saveSiteConfig(dir, cfg);
  assert.deepEqual(loadSiteConfig(dir), cfg);
  writeFileSync(join(dir, SITE_FILE), '{"v":1,"siteId":"x"}');
  assert.throws(() => loadSiteConfig(dir), (e: unknown) => isFedloraError(e, 'FILE_CORRUPT'));
  rmSync(dir, { recursive: true, force: true });
});

test('when retries follow each other, then delays double from the base up to the cap, scaled by the jitter', () => {
  const o = { baseMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 };
  // random() = 1 → the full exponential delay: 500, 1000, 2000, 4000, 8000, 16000, 30000 (capped), 30000
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((a) => backoffDelay(a, o, () => 1)), [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  // random() = 0 → half of it (jitter 0.5): 250, 500, 1000
  assert.deepEqual([0, 1, 2].map((a) => backoffDelay(a, o, () => 0)), [250, 500, 1000]);
  // random() = 0.5 → 0.75 of it: attempt 3 is 4000 · 0.75 = 3000
  assert.equal(backoffDelay(3, o, () => 0.5), 3000);
  // a very long outage stays at the cap instead of overflowing
  assert.equal(backoffDelay(10_000, o, () => 1), 30_000);
});

test('when a Backoff is reset after a successful session, then the next delay is the base again', () => {
  const b = new Backoff({ baseMs: 100, maxMs: 1000, factor: 3, jitter: 0 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next()], [100, 300, 900, 1000]);
  assert.equal(b.attempts, 4);
  b.reset();
  assert.equal(b.next(), 100);
});

function modelDir(): { dir: string; files: ManifestFile[] } {
  const dir = tmp();
  const weights = new Uint8Array(3000).map((_, i) => (i * 7) % 251);
  writeFileSync(join(dir, 'model.safetensors'), weights);
  writeFileSync(join(dir, 'vocab.txt'), '[PAD]\n[UNK]\nhello\n');
  return {
    dir,
    files: [
      { path: 'model.safetensors', sha256: sha(weights), bytes: 3000 },
      { path: 'vocab.txt', sha256: sha('[PAD]\n[UNK]\nhello\n'), bytes: 18 },
    ],
  };
}

test('when the local model files match the manifest hashes, then verification accepts them', async () => {
  const { dir, files } = modelDir();
  assert.deepEqual(await checkModelFiles(dir, files), []);
  await verifyBaseModel(dir, { id: 'tiny', files });
  rmSync(dir, { recursive: true, force: true });
});

test('when one byte of the weights differs, or a file is missing or truncated, then verification refuses with HASH_MISMATCH', async () => {
  const { dir, files } = modelDir();
  const w = readFileSync(join(dir, 'model.safetensors'));
  w[1234] ^= 1;
  writeFileSync(join(dir, 'model.safetensors'), w);
  rmSync(join(dir, 'vocab.txt'));
  const withExtra = [...files, { path: 'config.json', sha256: sha('{}'), bytes: 2 }];
  writeFileSync(join(dir, 'config.json'), '{ }');
  const problems = await checkModelFiles(dir, withExtra);
  assert.deepEqual(problems.map((p) => [p.path, p.problem]), [['model.safetensors', 'sha256'], ['vocab.txt', 'missing'], ['config.json', 'size']]);
  await assert.rejects(verifyBaseModel(dir, { id: 'tiny', files }), (e: unknown) => isFedloraError(e, 'HASH_MISMATCH') && /model\.safetensors/.test(e.message));
  rmSync(dir, { recursive: true, force: true });
});

test('when the base model is downloaded in chunks, then the files verify; a tampered chunk is refused and never put in place', async () => {
  const src = modelDir();
  const files = src.files;
  const read = (path: string) => readFileSync(join(src.dir, path));
  let calls = 0;
  const source = {
    async fetchChunk(path: string, offset: number, length: number) {
      calls++;
      return new Uint8Array(read(path).subarray(offset, offset + Math.min(length, 1000)));
    },
  };
  const target = tmp();
  await downloadBaseModel(target, { id: 'tiny', files }, source);
  assert.deepEqual(await checkModelFiles(target, files), []);
  assert.equal(calls, 3 + 1); // 3000 bytes in 1000-byte chunks, then the 18-byte vocab
  const evil = tmp();
  const tampered = {
    async fetchChunk(path: string, offset: number, length: number) {
      const b = new Uint8Array(read(path).subarray(offset, offset + length));
      b[0] ^= 0xff;
      return b;
    },
  };
  await assert.rejects(downloadBaseModel(evil, { id: 'tiny', files }, tampered), (e: unknown) => isFedloraError(e, 'HASH_MISMATCH'));
  assert.equal((await checkModelFiles(evil, files))[0].problem, 'missing');
  for (const d of [src.dir, target, evil]) rmSync(d, { recursive: true, force: true });
});

test('when site labels are a subset of the federation labels, then the mapping counts them; an unknown label is DATA_INVALID', () => {
  const ds = { name: 'a', labels: ['ham', 'spam'], examples: [{ text: 'x', label: 'spam' }, { text: 'y', label: 'spam' }, { text: 'z', label: 'ham' }] };
  const m = labelMapping(ds, ['ham', 'spam', 'phish']);
  assert.deepEqual(m.rows, [{ label: 'ham', classId: 0, count: 1 }, { label: 'spam', classId: 1, count: 2 }, { label: 'phish', classId: 2, count: 0 }]);
  checkLabelMapping(m, 'a.csv');
  const bad = labelMapping({ ...ds, examples: [...ds.examples, { text: 'w', label: 'Spam' }] }, ['ham', 'spam']);
  assert.deepEqual(bad.unknown, ['Spam']);
  assert.throws(() => checkLabelMapping(bad, 'a.csv'), (e: unknown) => isFedloraError(e, 'DATA_INVALID') && /"Spam"/.test(e.message));
});

test('when the round config carries maxSteps, clipNorm and maxLength, then local training uses them, within the manifest and model limits', () => {
  const base = { localEpochs: 1, batchSize: 16, learningRate: 2e-3, proximalMu: 0.01 };
  assert.deepEqual(localTrainConfig({ ...base, maxSteps: 12, clipNorm: 0.5 }), { ...base, maxSteps: 12, clipNorm: 0.5 });
  assert.equal(localTrainConfig({ ...base, maxSteps: 'x' }).maxSteps, undefined);
  // absent or malformed: undefined, which runLocalRound reads as the recipe's clip (not as "no clipping")
  assert.equal(localTrainConfig({ ...base, clipNorm: -1 }).clipNorm, undefined);
  assert.equal(localTrainConfig({ ...base, clipNorm: 0 }).clipNorm, 0);
  assert.equal(roundMaxLength({ ...base, maxLength: 64 }, 128, 512), 64);
  assert.equal(roundMaxLength({ ...base, maxLength: 256 }, 128, 512), 128);
  assert.equal(roundMaxLength(base, 128, 100), 100);
});

test('when training fails, then round:fail carries a code from the closed list and no free text from elsewhere', () => {
  assert.deepEqual(failureFor('r1', new FedloraError('NON_FINITE', 'loss became NaN\nmore')), { roundId: 'r1', code: 'NON_FINITE', message: 'loss became NaN' });
  assert.deepEqual(failureFor('r1', new FedloraError('FILE_NOT_FOUND', 'x')), { roundId: 'r1', code: 'INTERNAL', message: 'x' });
  assert.deepEqual(failureFor('r1', new Error('secret text')), { roundId: 'r1', code: 'INTERNAL', message: 'local training failed' });
});
