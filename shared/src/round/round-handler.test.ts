// The site's round handler on fake ports (a transport that records requests and returns acks, a model whose training
// the test controls, a fixed clock): accept/decline, train → seal → upload, failures → round:fail, closed and
// published broadcasts, once-mode and the per-connection offer. Real crypto, so the upload is opened as the
// coordinator would open it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FedloraError } from '../errors';
import { sha256Hex } from '../crypto/hash';
import { generateBoxKeyPair, generateSiteKeys } from '../crypto/keys';
import { openAndVerify } from '../crypto/envelope';
import { decodeUpdate, encodeAdapter } from '../protocol/codec';
import type { Ack, ClientReply, ClientRequest } from '../protocol/events';
import type { LocalRoundResult } from '../training/local-round';
import type { EncodedExample } from '../training/batches';
import {
  SiteRounds,
  type RoundConnection,
  type RoundEvent,
  type RoundListeners,
  type RoundModel,
  type RoundRequestName,
  type RoundTrainControl,
  type RoundTransport,
  type SiteRoundsOptions,
} from './round-handler';

const NOW = 1_700_000_000_000;
const siteKeys = generateSiteKeys();
const roundKey = generateBoxKeyPair();
const globalAdapter = encodeAdapter({
  versionId: 'v3',
  round: 3,
  adapter: { w: { shape: [2], data: new Float32Array([1, 2]) } },
});

class FakeTransport implements RoundTransport {
  connected = true;
  readonly sent: { event: RoundRequestName; payload: unknown }[] = [];
  /** makes every request fail with this error */
  failWith: Error | null = null;
  private readonly listeners: Partial<Record<keyof RoundListeners, (raw: unknown, ack?: unknown) => void>> =
    {};

  on<E extends keyof RoundListeners>(event: E, listener: RoundListeners[E]): void {
    this.listeners[event] = listener as (raw: unknown, ack?: unknown) => void;
  }

  async request<E extends RoundRequestName>(event: E, payload: ClientRequest<E>): Promise<ClientReply<E>> {
    this.sent.push({ event, payload });
    if (this.failWith) throw this.failWith;
    return {} as ClientReply<E>;
  }

  /** delivers an event the coordinator waits on; resolves with the site's ack */
  ask(event: 'round:configure' | 'round:train' | 'round:evaluate', raw: unknown): Promise<Ack<unknown>> {
    return new Promise((resolve) => this.listeners[event]?.(raw, resolve));
  }

  tell(event: 'round:closed' | 'version:published', raw: unknown): void {
    this.listeners[event]?.(raw);
  }
}

/** Records what the handler reports; next(type) resolves on the next such event (ask before it can happen). */
class Reports {
  readonly events: RoundEvent[] = [];
  private waiting: { type: RoundEvent['type']; resolve: (e: RoundEvent) => void }[] = [];

  readonly report = (e: RoundEvent): void => {
    this.events.push(e);
    const ready = this.waiting.filter((w) => w.type === e.type);
    this.waiting = this.waiting.filter((w) => w.type !== e.type);
    ready.forEach((w) => w.resolve(e));
  };

  next<T extends RoundEvent['type']>(type: T): Promise<Extract<RoundEvent, { type: T }>> {
    return new Promise((resolve) => this.waiting.push({ type, resolve: resolve as (e: RoundEvent) => void }));
  }

  types(): string[] {
    return this.events.map((e) => e.type);
  }
}

const RESULT: LocalRoundResult = {
  delta: { w: { shape: [2], data: new Float32Array([0.25, -0.5]) } },
  numExamples: 3,
  metrics: { loss: 0.7, samplesPerSecond: 12, steps: 2, seconds: 0.25 },
};

interface TrainCall {
  maxLength: number;
  global: number[];
  batchSize: number;
  seed: number;
}

/** A model with one trainable tensor w:[2] whose train() takes two steps and returns RESULT (or what `train` does). */
function fakeModel(train?: (control: RoundTrainControl) => Promise<LocalRoundResult>) {
  const calls: TrainCall[] = [];
  const evaluated: { n: number; w: number[] }[] = [];
  let maxLength = 0;
  const model: RoundModel = {
    trainableShapes: () => ({ w: [2] }),
    maxLength: 128,
    async train(examples, global, config, control) {
      calls.push({ maxLength, global: [...global.w.data], batchSize: config.batchSize, seed: control.seed });
      if (train) return train(control);
      for (const step of [1, 2])
        control.onStep({
          epoch: 0,
          step,
          totalSteps: 2,
          loss: 0.7,
          gradNorm: 0,
          samplesSeen: 2 * step,
          samplesPerSecond: 12,
        });
      return RESULT;
    },
    async evaluate(examples, adapter) {
      evaluated.push({ n: examples.length, w: [...adapter.w.data] });
      // predicts class 1 for every example; each costs loss 0.5
      return { n: examples.length, lossSum: 0.5 * examples.length, confusion: [[0, 0], [0, examples.length]] };
    },
  };
  const example: EncodedExample = { inputIds: [2, 7, 3], tokenTypeIds: [0, 0, 0], label: 1 };
  const data = {
    examples: (n: number) => {
      maxLength = n;
      return [example, example, example];
    },
  };
  return { model, data, calls, evaluated };
}

function configure(roundId: string, round: number, o: { deadline?: number; maxLength?: number } = {}) {
  return {
    roundId,
    round,
    config: { localEpochs: 1, batchSize: 2, learningRate: 1e-3, proximalMu: 0, maxLength: o.maxLength ?? 32 },
    adapterVersionId: 'v3',
    coordinatorBoxPublicKey: roundKey.publicKey,
    encoding: 'fp32',
    deadline: o.deadline ?? NOW + 60_000,
  };
}

async function train(roundId: string, o: { tamper?: boolean } = {}) {
  const sha = await sha256Hex(globalAdapter);
  return { roundId, adapter: globalAdapter, adapterSha256: o.tamper ? '0'.repeat(64) : sha };
}

const closed = (roundId: string, round: number) => ({
  roundId,
  round,
  outcome: 'aggregated',
  updates: 1,
  failures: 0,
});

function site(o: Partial<SiteRoundsOptions> & { model?: ReturnType<typeof fakeModel>; heldout?: EncodedExample[] } = {}) {
  const reports = new Reports();
  const rounds = new SiteRounds({
    report: reports.report,
    leaving: () => false,
    clock: { now: () => NOW },
    ...o,
  });
  const fake = o.model ?? fakeModel();
  const connect = (): FakeTransport => {
    const transport = new FakeTransport();
    const c: RoundConnection = {
      siteId: 'site-a',
      signing: siteKeys.signing,
      transport,
      model: fake.model,
      data: fake.data,
      maxSeqLength: 64,
      ...(o.heldout ? { heldout: { examples: () => o.heldout as EncodedExample[] } } : {}),
    };
    rounds.attach(c);
    return transport;
  };
  return { rounds, reports, connect, calls: fake.calls, evaluated: fake.evaluated };
}

/** One turn of the event loop (no timer): the handler finishes the round whose end it just reported. */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

test('when a round is configured before its deadline, then the site accepts it; past the deadline or while leaving, then it declines', async () => {
  // Arrange
  let leaving = false;
  const s = site({ leaving: () => leaving });
  const t = s.connect();

  // Act
  const inTime = await t.ask('round:configure', configure('r1', 1));
  const late = await t.ask('round:configure', configure('r2', 2, { deadline: NOW - 1 }));
  leaving = true;
  const whileLeaving = await t.ask('round:configure', configure('r3', 3));
  const malformed = await t.ask('round:configure', { roundId: 'r4' });

  // Assert
  assert.deepEqual(inTime, { ok: true, data: { accepted: true } });
  assert.deepEqual(late, { ok: true, data: { accepted: false } });
  assert.deepEqual(whileLeaving, { ok: true, data: { accepted: false } });
  assert.equal(malformed.ok, false);
  assert.equal(!malformed.ok && malformed.code, 'BAD_MESSAGE');
  assert.deepEqual(
    s.reports.events.map((e) => (e.type === 'configured' ? `${e.round.roundId} ${e.accepted}` : e.type)),
    ['r1 true', 'r2 false', 'r3 false', 'rejected'],
  );
});

test('when round:train follows an accepted configure, then the site trains from the global adapter and uploads a sealed update the coordinator can open', async () => {
  // Arrange
  const s = site();
  const t = s.connect();
  await t.ask('round:configure', configure('r5', 5, { maxLength: 32 }));
  const uploaded = s.reports.next('uploaded');

  // Act
  const ack = await t.ask('round:train', await train('r5'));
  const done = await uploaded;

  // Assert: trained once, from w = [1, 2], seeded by the round number, at the round's 32 tokens (< 64 and 128)
  assert.deepEqual(ack, { ok: true, data: { started: true } });
  assert.deepEqual(s.calls, [{ maxLength: 32, global: [1, 2], batchSize: 2, seed: 5 }]);
  assert.deepEqual(s.reports.types(), ['configured', 'step', 'step', 'trained', 'uploaded']);
  const step = s.reports.events[1];
  assert.equal(step.type === 'step' && step.stepsPerEpoch, 2); // 3 examples in batches of 2
  assert.equal(t.sent.length, 1);
  assert.equal(t.sent[0].event, 'update:upload');
  const { envelope } = t.sent[0].payload as ClientRequest<'update:upload'>;
  const payload = openAndVerify(envelope, {
    expectedSigningPublicKey: siteKeys.signing.publicKey,
    recipientSecretKey: roundKey.secretKey,
    expectedRoundId: 'r5',
  });
  assert.equal(done.payloadBytes, payload.length);
  const update = decodeUpdate(payload, { expect: { roundId: 'r5', siteId: 'site-a' } });
  assert.deepEqual([...update.delta.w.data], [0.25, -0.5]);
  assert.equal(update.numExamples, 3);
  assert.equal(update.metrics.loss, 0.7);
  await settled();
  assert.equal(s.rounds.training, false);
});

test('when round:train names a round this site did not accept, or its adapter hash is wrong, then the ack is an error and nothing trains', async () => {
  // Arrange
  const s = site();
  const t = s.connect();

  // Act
  const unknown = await t.ask('round:train', await train('r1'));
  await t.ask('round:configure', configure('r2', 2));
  const tampered = await t.ask('round:train', await train('r2', { tamper: true }));

  // Assert
  assert.equal(!unknown.ok && unknown.code, 'WRONG_ROUND');
  assert.equal(!tampered.ok && tampered.code, 'HASH_MISMATCH');
  assert.deepEqual(s.calls, []);
  assert.deepEqual(t.sent, []);
  assert.deepEqual(s.reports.types(), ['rejected', 'configured', 'rejected']);
});

test('when a round is configured while another one trains, then the site declines it, and accepts again once done', async () => {
  // Arrange: training waits for the test
  const release = deferred<LocalRoundResult>();
  const s = site({ model: fakeModel(() => release.promise) });
  const t = s.connect();
  await t.ask('round:configure', configure('r1', 1));
  await t.ask('round:train', await train('r1'));
  const uploaded = s.reports.next('uploaded');

  // Act
  const during = await t.ask('round:configure', configure('r2', 2));
  release.resolve(RESULT);
  await uploaded;
  await settled();
  const after = await t.ask('round:configure', configure('r3', 3));

  // Assert
  assert.deepEqual(during, { ok: true, data: { accepted: false } });
  assert.deepEqual(after, { ok: true, data: { accepted: true } });
});

test('when local training fails, then the site reports round:fail with the failure code and no data', async () => {
  // Arrange
  const over = deferred<void>();
  const s = site({
    once: { over: () => over.resolve() },
    model: fakeModel(async () => {
      throw new FedloraError('NON_FINITE', 'loss became NaN\nstep 2, batch of "secret text"');
    }),
  });
  const t = s.connect();
  await t.ask('round:configure', configure('r1', 1));

  // Act
  await t.ask('round:train', await train('r1'));
  await over.promise; // once-mode: a failed round is over for the site

  // Assert
  assert.deepEqual(t.sent, [
    { event: 'round:fail', payload: { roundId: 'r1', code: 'NON_FINITE', message: 'loss became NaN' } },
  ]);
  assert.deepEqual(s.reports.types(), ['configured', 'failed']);
});

test('when the report of a failure cannot be delivered, then the site says so and carries on', async () => {
  // Arrange
  const over = deferred<void>();
  const s = site({
    once: { over: () => over.resolve() },
    model: fakeModel(async () => {
      throw new Error('out of memory');
    }),
  });
  const t = s.connect();
  t.failWith = new FedloraError('UNREACHABLE', 'round:fail: connection to the coordinator lost');
  await t.ask('round:configure', configure('r1', 1));

  // Act
  await t.ask('round:train', await train('r1'));
  await over.promise;

  // Assert: an error that is not ours goes out as INTERNAL with a fixed message
  assert.deepEqual(t.sent, [
    { event: 'round:fail', payload: { roundId: 'r1', code: 'INTERNAL', message: 'local training failed' } },
  ]);
  assert.deepEqual(s.reports.types(), ['configured', 'failed', 'fail-undelivered']);
  assert.equal(s.rounds.training, false);
});

test('when the round closes while the site trains, then training is told to stop and no round:fail is sent', async () => {
  // Arrange: training runs until the handler asks it to stop
  const stopAsked = deferred<void>();
  const started = deferred<RoundTrainControl>();
  const over = deferred<void>();
  const s = site({
    once: { over: () => over.resolve() },
    model: fakeModel(async (control) => {
      started.resolve(control);
      await stopAsked.promise;
      assert.equal(control.shouldStop(), true);
      throw new FedloraError('INTERNAL', 'local training was stopped before it finished');
    }),
  });
  const t = s.connect();
  await t.ask('round:configure', configure('r1', 1));
  await t.ask('round:train', await train('r1'));
  const control = await started.promise;
  assert.equal(control.shouldStop(), false);

  // Act
  t.tell('round:closed', closed('r1', 1));
  stopAsked.resolve();
  await over.promise;

  // Assert
  assert.deepEqual(t.sent, []);
  assert.deepEqual(s.reports.types(), ['configured', 'closed', 'failed']);
});

test('when round:closed and version:published arrive, then the site reports them; malformed ones are ignored', () => {
  // Arrange
  const s = site();
  const t = s.connect();

  // Act
  t.tell('round:closed', closed('r1', 1));
  t.tell('version:published', {
    versionId: 'v4',
    round: 1,
    metrics: { accuracy: 0.9 },
    adapterSha256: 'a'.repeat(64),
  });
  t.tell('round:closed', { roundId: 'r2' });
  t.tell('version:published', 'v5');

  // Assert
  const [c, v, ...ignored] = s.reports.events;
  assert.equal(c.type === 'closed' && c.message.outcome, 'aggregated');
  assert.equal(v.type === 'version' && v.message.metrics.accuracy, 0.9);
  assert.deepEqual(
    ignored.map((e) => e.type === 'ignored' && e.event),
    ['round:closed', 'version:published'],
  );
});

test('when a configured round closes before its train message, then that message is refused', async () => {
  // Arrange
  const s = site();
  const t = s.connect();
  await t.ask('round:configure', configure('r1', 1));

  // Act
  t.tell('round:closed', { ...closed('r1', 1), outcome: 'kept', updates: 0 });
  const ack = await t.ask('round:train', await train('r1'));

  // Assert
  assert.equal(!ack.ok && ack.code, 'WRONG_ROUND');
  assert.deepEqual(s.calls, []);
});

test('when the connection changes between configure and train, then the new connection does not train the old offer', async () => {
  // Arrange
  const s = site();
  const first = s.connect();
  await first.ask('round:configure', configure('r1', 1));

  // Act
  const second = s.connect();
  const ack = await second.ask('round:train', await train('r1'));

  // Assert
  assert.equal(!ack.ok && ack.code, 'WRONG_ROUND');
});

test('when the site runs once, then it declines rounds after the one it trained in, and that round is over when it closes', async () => {
  // Arrange
  let overCalls = 0;
  const s = site({ once: { over: () => overCalls++ } });
  const t = s.connect();
  await t.ask('round:configure', configure('r1', 1));
  const uploaded = s.reports.next('uploaded');
  await t.ask('round:train', await train('r1'));
  await uploaded;

  // Act
  const next = await t.ask('round:configure', configure('r2', 2));
  const beforeClose = overCalls;
  t.tell('round:closed', closed('r1', 1));

  // Assert
  assert.deepEqual(next, { ok: true, data: { accepted: false } });
  assert.equal(s.rounds.onceDone, true);
  assert.equal(beforeClose, 0);
  assert.equal(overCalls, 1);
});

const evaluate = async (o: { tamper?: boolean } = {}) => ({
  roundId: 'r7',
  versionId: 'v3',
  adapter: globalAdapter,
  adapterSha256: o.tamper ? '0'.repeat(64) : await sha256Hex(globalAdapter),
  maxLength: 32,
});

test('when round:evaluate arrives at a site with a held-out split, then it scores the candidate there and answers with aggregates only', async () => {
  // Arrange
  const example: EncodedExample = { inputIds: [2, 5, 3], tokenTypeIds: [0, 0, 0], label: 1 };
  const s = site({ heldout: [example, example] });
  const t = s.connect();

  // Act
  const ack = await t.ask('round:evaluate', await evaluate());

  // Assert: the candidate's weights were used on the 2 held-out examples, and the reply has counts and a sum only
  assert.deepEqual(s.evaluated, [{ n: 2, w: [1, 2] }]);
  assert.deepEqual(ack, { ok: true, data: { numExamples: 2, lossSum: 1, confusion: [[0, 0], [0, 2]] } });
  assert.deepEqual(s.calls, []);
});

test('when round:evaluate arrives at a site without a held-out split, then it declines with NO_HOLDOUT; a bad hash or malformed message is refused', async () => {
  // Arrange
  const none = site();
  const withSplit = site({ heldout: [{ inputIds: [2, 3], tokenTypeIds: [0, 0], label: 0 }] });
  const t = none.connect();
  const u = withSplit.connect();

  // Act
  const declined = await t.ask('round:evaluate', await evaluate());
  const tampered = await u.ask('round:evaluate', await evaluate({ tamper: true }));
  const malformed = await u.ask('round:evaluate', { roundId: 'r7', versionId: 'v3' });

  // Assert
  assert.deepEqual(declined, { ok: true, data: { declined: 'NO_HOLDOUT' } });
  assert.equal(!tampered.ok && tampered.code, 'HASH_MISMATCH');
  assert.equal(!malformed.ok && malformed.code, 'BAD_MESSAGE');
  assert.deepEqual(withSplit.evaluated, []);
  assert.deepEqual(withSplit.reports.types(), ['evaluate-refused', 'evaluate-refused']);
});

test('when round:evaluate arrives while the site trains, then it answers BUSY and training goes on', async () => {
  // Arrange
  const gate = deferred<LocalRoundResult>();
  const s = site({ model: fakeModel(() => gate.promise), heldout: [{ inputIds: [2, 3], tokenTypeIds: [0, 0], label: 0 }] });
  const t = s.connect();
  await t.ask('round:configure', configure('r8', 8));
  await t.ask('round:train', await train('r8'));

  // Act
  const busy = await t.ask('round:evaluate', await evaluate());
  const uploaded = s.reports.next('uploaded');
  gate.resolve(RESULT);
  await uploaded;
  const after = await t.ask('round:evaluate', await evaluate());

  // Assert
  assert.equal(!busy.ok && busy.code, 'BUSY');
  assert.equal(after.ok, true);
});
