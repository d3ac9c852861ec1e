// The agent against a minimal in-test coordinator (socket.io on loopback, port 0) that speaks the shared protocol:
// join spends the token once, run authenticates, verifies the base model, trains one real round (2 steps) and
// uploads an envelope the coordinator can open; predict fetches the adapter; a wrong model hash is refused.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server } from 'socket.io';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { initNodeBackend } from '@fedlora/shared/node/backend.ts';
import { generateBoxKeyPair, parsePublicKey } from '@fedlora/shared/crypto/keys.ts';
import { createChallenge, openAndVerify, verifyChallenge } from '@fedlora/shared/crypto/envelope.ts';
import { sha256Hex } from '@fedlora/shared/crypto/hash.ts';
import { ackError, ackOk, parseClientRequest } from '@fedlora/shared/protocol/events.ts';
import { decodeUpdate, encodeAdapter, type DecodedUpdate } from '@fedlora/shared/protocol/codec.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import { loadLocalModel } from '@fedlora/shared/node/model/local-model.ts';
import { joinFederation } from './join';
import { SiteAgent, type AgentEvent } from './site-agent';
import { predictText } from './predict';
import { saveSiteConfig } from './state';
import { testCoordinatorKey } from './testing-coordinator-key';
import { pinnedJoinToken } from '@fedlora/shared/protocol/join-token.ts';

const LABELS = ['ham', 'spam'];
const TOKEN = 'join-token-0123456789';
const quiet = () => {};

async function fakeCoordinator(opts: { corruptHash?: boolean } = {}) {
  const files = readdirSync(DEFAULT_MODEL_DIR)
    .filter((f) => ['config.json', 'vocab.txt', 'model.safetensors', 'tokenizer_config.json'].includes(f))
    .map((path) => {
      const b = readFileSync(join(DEFAULT_MODEL_DIR, path));
      return { path, bytes: b.length, sha256: createHash('sha256').update(b).digest('hex') };
    });
  if (opts.corruptHash) files[0].sha256 = '0'.repeat(64);
  const model = loadLocalModel({ modelDir: DEFAULT_MODEL_DIR, lora: DEFAULT_RECIPE.lora, labels: LABELS, pooling: 'mean', seed: 0 });
  const adapterBytes = encodeAdapter({ versionId: 'v0', round: 0, adapter: model.classifier.getTrainableState() });
  model.dispose();
  const adapterSha256 = await sha256Hex(adapterBytes);
  const manifest = { v: 1, baseModel: { id: 'fedlora-bert-mini', files }, lora: DEFAULT_RECIPE.lora, labels: LABELS, maxSeqLength: 64, versionId: 'v0' };
  const tokens = new Set([TOKEN]);
  const sites = new Map<string, Uint8Array>();
  const roundKey = generateBoxKeyPair();
  const coordKey = await testCoordinatorKey('coord-test');
  const updates: DecodedUpdate[] = [];
  const http = createServer();
  const io = new Server(http, { maxHttpBufferSize: 64 * 1024 * 1024 });
  io.on('connection', (socket) => {
    let challenge: Uint8Array | null = null;
    let siteId: string | null = null;
    const handle = (event: string, fn: (raw: unknown) => Promise<unknown> | unknown) =>
      socket.on(event, async (raw: unknown, ack: (r: unknown) => void) => {
        try {
          ack(ackOk(await fn(raw)));
        } catch (err) {
          ack(ackError(err));
        }
      });
    handle('coordinator:hello', (raw) => coordKey.hello(raw));
    handle('site:enroll', (raw) => {
      const r = parseClientRequest('site:enroll', raw);
      if (!tokens.delete(r.token)) throw new FedloraError('TOKEN_USED', 'token already used');
      sites.set(r.siteId, parsePublicKey(r.signingPublicKey, 'signing'));
      return { siteId: r.siteId };
    });
    handle('auth:challenge', (raw) => {
      parseClientRequest('auth:challenge', raw);
      challenge = createChallenge();
      return { challenge, coordinatorId: 'coord-test' };
    });
    handle('auth:prove', (raw) => {
      const r = parseClientRequest('auth:prove', raw);
      const key = sites.get(r.siteId);
      if (!key) throw new FedloraError('UNKNOWN_SITE', 'unknown site');
      if (!challenge || !verifyChallenge(challenge, { siteId: r.siteId, coordinatorId: 'coord-test' }, r.signature, key))
        throw new FedloraError('BAD_SIGNATURE', 'bad signature');
      siteId = r.siteId;
      return { manifest, manifestSignature: coordKey.sign('manifest', manifest) };
    });
    handle('model:chunk', (raw) => {
      const r = parseClientRequest('model:chunk', raw);
      const b = readFileSync(join(DEFAULT_MODEL_DIR, r.path));
      const data = new Uint8Array(b.subarray(r.offset, r.offset + r.length));
      return { path: r.path, offset: r.offset, totalBytes: b.length, data, sha256: createHash('sha256').update(data).digest('hex') };
    });
    handle('adapter:fetch', () => ({ versionId: 'v0', adapter: adapterBytes, adapterSha256, versionSignature: coordKey.versionSignature('v0', adapterSha256) }));
    handle('adapter:chunk', (raw) => {
      const r = parseClientRequest('adapter:chunk', raw);
      const data = adapterBytes.subarray(r.offset, r.offset + r.length);
      return { versionId: 'v0', offset: r.offset, totalBytes: adapterBytes.length, data, sha256: createHash('sha256').update(data).digest('hex'), adapterSha256, versionSignature: coordKey.versionSignature('v0', adapterSha256) };
    });
    handle('site:ready', async (raw) => {
      parseClientRequest('site:ready', raw);
      // start a round right after the ack: configure, then train
      setImmediate(async () => {
        const config = { localEpochs: 1, batchSize: 4, learningRate: 2e-3, proximalMu: 0, maxSteps: 2, maxLength: 32 };
        const c = (await socket.timeout(10_000).emitWithAck('round:configure', coordKey.signed('round:configure', {
          roundId: 'r1', round: 1, config, adapterVersionId: 'v0', coordinatorBoxPublicKey: roundKey.publicKey, encoding: 'fp16' as const, deadline: Date.now() + 60_000,
        }))) as { ok: boolean; data: { accepted: boolean } };
        if (c.ok && c.data.accepted) await socket.timeout(10_000).emitWithAck('round:train', coordKey.signed('round:train', { roundId: 'r1', adapter: adapterBytes, adapterSha256 }));
      });
      return {};
    });
    handle('update:upload', (raw) => {
      const r = parseClientRequest('update:upload', raw);
      const payload = openAndVerify(r.envelope, { expectedSigningPublicKey: sites.get(siteId as string) as Uint8Array, recipientSecretKey: roundKey.secretKey, expectedRoundId: 'r1' });
      updates.push(decodeUpdate(payload, { expect: { roundId: 'r1', siteId: siteId as string } }));
      setImmediate(() => socket.emit('round:closed', coordKey.signed('round:closed', { roundId: 'r1', round: 1, outcome: 'aggregated', updates: 1, failures: 0 })));
      return {};
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, updates, token: pinnedJoinToken(TOKEN, coordKey.fingerprint), fingerprint: coordKey.fingerprint, close: () => new Promise<void>((r) => io.close(() => r())) };
}

const dirs: string[] = [];
function siteDir(): { stateDir: string; data: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-site-'));
  dirs.push(dir);
  const rows = ['"Minutes of the budget meeting, attached",ham', '"WIN a FREE cruise, click now",spam', '"Lunch on Thursday?",ham', '"Cheap meds, no prescription",spam',
    '"Build server reboot tonight",ham', '"Claim your prize today",spam'];
  writeFileSync(join(dir, 'site.csv'), `text,label\n${rows.join('\n')}\n`);
  return { stateDir: join(dir, 'state'), data: join(dir, 'site.csv') };
}
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

test('when a site joins, runs one round and predicts, then the coordinator opens its update and the token works only once', async () => {
  await initNodeBackend({ log: quiet });
  const coord = await fakeCoordinator();
  try {
    const site = siteDir();
    const joined = await joinFederation({ coordinator: coord.url, token: coord.token, data: site.data, stateDir: site.stateDir, siteId: 'site-a', log: quiet });
    assert.equal(joined.siteId, 'site-a');
    assert.equal(joined.enrolled, true);
    assert.match(joined.mapping, /ham → class 0: 3 examples/);
    // re-running join on the enrolled dir does not spend a token
    assert.equal((await joinFederation({ coordinator: coord.url, data: site.data, stateDir: site.stateDir, log: quiet })).enrolled, false);
    // a fresh site with the spent token is refused
    const other = siteDir();
    await assert.rejects(joinFederation({ coordinator: coord.url, token: coord.token, data: other.data, stateDir: other.stateDir, log: quiet }), (e: unknown) => isFedloraError(e, 'TOKEN_USED'));

    const events: AgentEvent[] = [];
    await new SiteAgent({ stateDir: site.stateDir, once: true, quiet: true, log: quiet, download: false, onEvent: (e) => events.push(e) }).run();
    // the fake starts and closes the round while acks are in flight, so only the set of events is fixed
    // 'data': after the upload, the examples it trained on are no longer new (continual re-training)
    assert.deepEqual(events.map((e) => e.type).sort(), ['authenticated', 'backend', 'closed', 'configured', 'data', 'ready', 'uploaded']);
    assert.deepEqual(events.find((e) => e.type === 'data'), { type: 'data', numExamples: (events.find((e) => e.type === 'ready') as { numExamples: number }).numExamples, newExamples: 0 });
    assert.ok((events.find((e) => e.type === 'ready') as { newExamples: number }).newExamples > 0, 'a fresh site has trained on nothing yet');
    assert.equal(coord.updates.length, 1);
    const u = coord.updates[0];
    assert.equal(u.siteId, 'site-a');
    assert.equal(u.encoding, 'fp16');
    assert.equal(u.numExamples, 6); // 2 steps × batch 4 over 6 examples, capped at the 6 the site has
    assert.ok(Object.values(u.delta).some((t) => t.data.some((x) => x !== 0)), 'the delta is not all zeros');

    const p = await predictText({ stateDir: site.stateDir, text: 'free prize, click now', log: quiet });
    assert.equal(p.versionId, 'v0');
    assert.ok(LABELS.includes(p.label));
    assert.ok(Math.abs(p.probabilities.ham + p.probabilities.spam - 1) < 1e-5);
  } finally {
    await coord.close();
  }
});

test('when the manifest hash does not match the local base model and download is off, then the agent refuses with HASH_MISMATCH', async () => {
  const coord = await fakeCoordinator({ corruptHash: true });
  try {
    const site = siteDir();
    await joinFederation({ coordinator: coord.url, token: coord.token, data: site.data, stateDir: site.stateDir, siteId: 'site-b', log: quiet });
    await assert.rejects(
      new SiteAgent({ stateDir: site.stateDir, once: true, quiet: true, log: quiet, download: false }).run(),
      (e: unknown) => isFedloraError(e, 'HASH_MISMATCH') && /refusing to train/.test(e.message),
    );
    assert.equal(coord.updates.length, 0);
  } finally {
    await coord.close();
  }
});

test('when the site has no copy of the base model, then it downloads it in chunks, verifies it and trains on it', async () => {
  const coord = await fakeCoordinator();
  try {
    const site = siteDir();
    await joinFederation({ coordinator: coord.url, token: coord.token, data: site.data, stateDir: site.stateDir, siteId: 'site-c', log: quiet });
    const empty = mkdtempSync(join(tmpdir(), 'fedlora-nomodel-'));
    dirs.push(empty);
    await new SiteAgent({ stateDir: site.stateDir, modelDir: empty, once: true, quiet: true, log: quiet }).run();
    assert.equal(coord.updates.length, 1);
    const shipped = readFileSync(join(DEFAULT_MODEL_DIR, 'model.safetensors'));
    assert.ok(readFileSync(join(site.stateDir, 'model', 'model.safetensors')).equals(shipped));
  } finally {
    await coord.close();
  }
});

test('when the coordinator is unreachable, then join fails with UNREACHABLE and the agent gives up after its attempt budget', async () => {
  const site = siteDir();
  await assert.rejects(joinFederation({ coordinator: 'http://127.0.0.1:9', token: pinnedJoinToken(TOKEN, 'a'.repeat(32)), data: site.data, stateDir: site.stateDir, log: quiet }), (e: unknown) => isFedloraError(e, 'UNREACHABLE'));
  saveSiteConfig(site.stateDir, { v: 1, coordinator: 'http://127.0.0.1:9', siteId: 'site-z', data: site.data, enrolledAt: new Date().toISOString(), coordinatorFingerprint: 'a'.repeat(32) });
  const retries: (number | null)[] = [];
  const agent = new SiteAgent({
    stateDir: site.stateDir, quiet: true, log: quiet, maxAttempts: 3,
    backoff: { baseMs: 1, maxMs: 4, factor: 2, jitter: 0 },
    onEvent: (e) => e.type === 'disconnected' && retries.push(e.retryInMs),
  });
  await assert.rejects(agent.run(), (e: unknown) => isFedloraError(e, 'UNREACHABLE') && /gave up after 3 attempts/.test(e.message));
  assert.deepEqual(retries, [1, 2]); // three tries, two waits between them
});

test('when the join token pins another coordinator key, then join refuses before sending the token, naming both fingerprints', async () => {
  const coord = await fakeCoordinator();
  try {
    const site = siteDir();
    const other = await testCoordinatorKey('coord-other');
    await assert.rejects(
      joinFederation({ coordinator: coord.url, token: pinnedJoinToken(TOKEN, other.fingerprint), data: site.data, stateDir: site.stateDir, log: quiet }),
      (e: unknown) =>
        isFedloraError(e, 'UNTRUSTED_COORDINATOR') &&
        e.message.includes(`expected ${other.fingerprint}, the coordinator presented ${coord.fingerprint}`),
    );
    // the token was never sent: the site with the right pin can still spend it
    assert.equal((await joinFederation({ coordinator: coord.url, token: coord.token, data: site.data, stateDir: site.stateDir, siteId: 'site-d', log: quiet })).enrolled, true);
    // a token from before pinning is refused unless the fingerprint comes with it
    const legacy = siteDir();
    await assert.rejects(
      joinFederation({ coordinator: coord.url, token: TOKEN, data: legacy.data, stateDir: legacy.stateDir, log: quiet }),
      (e: unknown) => isFedloraError(e, 'CONFIG_INVALID') && /carries no coordinator fingerprint/.test(e.message),
    );
  } finally {
    await coord.close();
  }
});
