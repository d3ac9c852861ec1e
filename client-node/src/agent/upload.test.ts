// Data never leaves the site: the frames a site emits for 'update:upload' (the plaintext update before sealing,
// the sealed envelope, and the socket.io packets actually written) contain neither the text of its examples
// nor their token id sequences. Trains for real (2 steps on the shipped model) so the delta is a real one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { initNodeBackend } from '@fedlora/shared/node/backend.ts';
import { generateBoxKeyPair, generateSiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { openAndVerify } from '@fedlora/shared/crypto/envelope.ts';
import { decodeUpdate, ENCODINGS } from '@fedlora/shared/protocol/codec.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import { loadLocalModel } from '@fedlora/shared/node/model/local-model.ts';
import { buildUpload } from '@fedlora/shared/round/participant.ts';
import { EncodedDataCache } from '@fedlora/shared/data/site-data.ts';
import { runLocalRound } from '@fedlora/shared/training/local-round.ts';

const TEXTS = [
  ['Quarterly invoice reconciliation for the Hartwell account is attached', 'ham'],
  ['WIN a FREE cruise now!!! click here to claim your exclusive prize', 'spam'],
  ['Minutes of the committee meeting about the library renovation budget', 'ham'],
  ['Cheap meds without prescription, discreet overnight shipping guaranteed', 'spam'],
  ['Can you review the draft before Thursday afternoon? Thanks, Priya', 'ham'],
  ['Your mortgage refinance is pre-approved, lowest rates of the decade', 'spam'],
  ['The build server reboots tonight for kernel patches at 23:00', 'ham'],
  ['Make thousands weekly working from home with this one secret', 'spam'],
] as const;

/** True when `needle` occurs in `hay` (plain byte search; frames are at most a few MB). */
function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

const le = (ids: number[], T: Int32ArrayConstructor | Uint16ArrayConstructor | Float32ArrayConstructor) => new Uint8Array(new T(ids).buffer);

/** Every byte string that would betray an example: its text, a distinctive word, and windows of 3 token ids. */
function needles(text: string, ids: number[]): { what: string; bytes: Uint8Array }[] {
  const out = [
    { what: 'text', bytes: new TextEncoder().encode(text) },
    { what: 'longest word', bytes: new TextEncoder().encode(text.split(/\W+/).sort((a, b) => b.length - a.length)[0]) },
  ];
  const body = ids.slice(1, -1); // without [CLS] … [SEP], which every example shares
  for (let i = 0; i + 3 <= body.length; i += 3) {
    const w = body.slice(i, i + 3);
    out.push({ what: `int32 ids ${w}`, bytes: le(w, Int32Array) });
    out.push({ what: `uint16 ids ${w}`, bytes: le(w, Uint16Array) });
    out.push({ what: `float32 ids ${w}`, bytes: le(w, Float32Array) });
  }
  return out;
}

test('when a site uploads its trained delta, then no emitted frame contains its texts or token id sequences', async () => {
  await initNodeBackend({ log: () => {} });
  const labels = ['ham', 'spam'];
  const model = loadLocalModel({ modelDir: DEFAULT_MODEL_DIR, lora: DEFAULT_RECIPE.lora, labels, pooling: 'mean', seed: 0 });
  try {
    const ds = { name: 'site', labels, examples: TEXTS.map(([text, label]) => ({ text, label })) };
    const examples = new EncodedDataCache(ds).get(model.tokenizer, labels, 32);
    const global = model.classifier.getTrainableState();
    const r = await runLocalRound(model.classifier, examples, model.tokenizer.special.pad, global, {
      localEpochs: 1, batchSize: 4, learningRate: 2e-3, proximalMu: 0, maxSteps: 2,
    });
    assert.equal(r.metrics.steps, 2);
    const keys = generateSiteKeys();
    const roundKey = generateBoxKeyPair();
    // the same encoder socket.io-client uses to write packets (engine.io then frames them as they are)
    const encoder = (io('http://127.0.0.1:9', { autoConnect: false }).io as unknown as { encoder: { encode(p: unknown): (string | Uint8Array)[] } }).encoder;
    const all = examples.flatMap((e, i) => needles(TEXTS[i][0], e.inputIds));
    assert.ok(all.length >= 8 * 5, `expected needles for every example, got ${all.length}`);

    for (const encoding of ENCODINGS) {
      const up = buildUpload({
        roundId: 'round-1', siteId: 'site-a', delta: r.delta, numExamples: r.numExamples, metrics: r.metrics,
        encoding, recipientBoxPublicKey: roundKey.publicKey, signing: keys.signing,
      });
      const packet = encoder.encode({ type: 2, nsp: '/', data: ['update:upload', up.request], id: 1 });
      const frames: { where: string; bytes: Uint8Array }[] = [
        { where: `${encoding} payload`, bytes: up.payload },
        { where: `${encoding} ciphertext`, bytes: up.request.envelope.ciphertext },
        ...packet.map((p, k) => ({ where: `${encoding} socket.io part ${k}`, bytes: typeof p === 'string' ? new TextEncoder().encode(p) : new Uint8Array(p) })),
      ];
      for (const f of frames) for (const n of all) assert.ok(!contains(f.bytes, n.bytes), `${f.where} contains the ${n.what} of a site example`);
      // the frame does carry what it should: the coordinator can open it and gets the delta back
      const opened = decodeUpdate(openAndVerify(up.request.envelope, { expectedSigningPublicKey: keys.signing.publicKey, recipientSecretKey: roundKey.secretKey }));
      assert.deepEqual(Object.keys(opened.delta), Object.keys(r.delta).sort());
      assert.equal(opened.numExamples, 8);
    }
  } finally {
    model.dispose();
  }
});

test('when a frame does hold an example, then the search finds its text and id windows (the check can fail)', () => {
  const ids = [101, 2023, 7592, 15, 4000, 102];
  const n = needles('hello unsubscribe world', ids);
  const leaky = new Uint8Array([1, 2, 3, ...new TextEncoder().encode('…hello unsubscribe world…'), ...le([2023, 7592, 15], Int32Array), 9]);
  assert.ok(contains(leaky, n[0].bytes));
  assert.ok(contains(leaky, n[1].bytes));
  assert.ok(n.some((x) => x.what.startsWith('int32') && contains(leaky, x.bytes)));
  assert.ok(!contains(leaky, le([2023, 7592, 15], Uint16Array)));
});
