// A site with a pinned coordinator key (issue 21 must-show 4, unit level): the round handler takes a round only from
// messages the pinned coordinator signed; a forged or unsigned one is acked UNTRUSTED_COORDINATOR, reported, and never
// reaches training.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { randomBytes } from '../crypto/bytes';
import { coordinatorFingerprint, signCoordinatorMessage, signHello, trustCoordinator } from '../crypto/coordinator-trust';
import { generateBoxKeyPair, generateSiteKeys } from '../crypto/keys';
import { sha256Hex } from '../crypto/hash';
import { encodeAdapter } from '../protocol/codec';
import type { Ack, ClientReply, ClientRequest } from '../protocol/events';
import { signServerMessage, type SignFn } from '../protocol/signed-messages';
import {
  SiteRounds,
  type RoundEvent,
  type RoundListeners,
  type RoundModel,
  type RoundRequestName,
  type RoundTransport,
} from './round-handler';

const coordinator = nacl.sign.keyPair();
const impostor = nacl.sign.keyPair();
const signBy = (secretKey: Uint8Array): SignFn => (context, body) => signCoordinatorMessage(context, body, secretKey);

class FakeTransport implements RoundTransport {
  connected = true;
  readonly sent: RoundRequestName[] = [];
  private readonly listeners: Partial<Record<keyof RoundListeners, (raw: unknown, ack?: unknown) => void>> = {};

  on<E extends keyof RoundListeners>(event: E, listener: RoundListeners[E]): void {
    this.listeners[event] = listener as (raw: unknown, ack?: unknown) => void;
  }

  async request<E extends RoundRequestName>(event: E, _payload: ClientRequest<E>): Promise<ClientReply<E>> {
    this.sent.push(event);
    return {} as ClientReply<E>;
  }

  ask(event: 'round:configure' | 'round:train' | 'secagg:setup' | 'secagg:unmask', raw: unknown): Promise<Ack<unknown>> {
    return new Promise((resolve) => this.listeners[event]?.(raw, resolve));
  }

  /** a message without an ack (round:closed, version:published) */
  tell(event: 'round:closed' | 'version:published', raw: unknown): void {
    this.listeners[event]?.(raw);
  }
}

async function pinnedSite() {
  const nonce = randomBytes(32);
  const trust = await trustCoordinator(
    { coordinatorId: 'coord-1', signingPublicKey: coordinator.publicKey, signature: signHello(nonce, 'coord-1', coordinator.secretKey) },
    nonce,
    await coordinatorFingerprint(coordinator.publicKey),
  );
  const transport = new FakeTransport();
  const events: RoundEvent[] = [];
  const trained: number[][] = [];
  const model = {
    trainableShapes: () => ({ w: [2] }),
    maxLength: 64,
    async train(_examples: unknown, global: { w: { data: Float32Array } }) {
      trained.push([...global.w.data]);
      return { delta: { w: { shape: [2], data: new Float32Array([0.1, 0.2]) } }, numExamples: 1, metrics: { loss: 1, samplesPerSecond: 1, steps: 1, seconds: 1 } };
    },
  } as unknown as RoundModel;
  const rounds = new SiteRounds({ report: (e) => events.push(e), leaving: () => false, clock: { now: () => 1_000 } });
  rounds.attach({
    trust,
    siteId: 'site-a',
    signing: generateSiteKeys().signing,
    transport,
    model,
    data: { examples: () => [{ inputIds: [2, 3], tokenTypeIds: [0, 0], label: 0 }] },
    maxSeqLength: 64,
  });
  return { transport, events, trained };
}

const configure = () => ({
  roundId: 'r1',
  round: 1,
  config: { localEpochs: 1, batchSize: 1, learningRate: 0.01, proximalMu: 0 },
  adapterVersionId: 'v0',
  coordinatorBoxPublicKey: generateBoxKeyPair().publicKey,
  encoding: 'fp32' as const,
  deadline: 60_000,
});

async function train(weights: number[]) {
  const adapter = encodeAdapter({ versionId: 'v0', round: 0, adapter: { w: { shape: [2], data: new Float32Array(weights) } } });
  return { roundId: 'r1', adapter, adapterSha256: await sha256Hex(adapter) };
}

test('when the pinned coordinator signs configure and train, then the site trains from that adapter', async () => {
  const { transport, trained } = await pinnedSite();
  const sign = signBy(coordinator.secretKey);
  assert.deepEqual(await transport.ask('round:configure', signServerMessage('round:configure', configure(), sign)), { ok: true, data: { accepted: true } });
  assert.deepEqual(await transport.ask('round:train', signServerMessage('round:train', await train([1, 2]), sign)), { ok: true, data: { started: true } });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(trained, [[1, 2]]);
});

test('when an attacker swaps the adapter of a signed round:train, or signs it with its own key, then the site refuses and never trains', async () => {
  const { transport, events, trained } = await pinnedSite();
  const sign = signBy(coordinator.secretKey);
  await transport.ask('round:configure', signServerMessage('round:configure', configure(), sign));
  const genuine = signServerMessage('round:train', await train([1, 2]), sign);
  // the attacker's adapter with its own, matching sha256, under the genuine signature
  const swapped = { ...genuine, ...(await train([9, 9])) };
  const refused = await transport.ask('round:train', swapped);
  assert.equal(refused.ok, false);
  assert.equal(!refused.ok && refused.code, 'UNTRUSTED_COORDINATOR');
  assert.match(!refused.ok ? refused.message : '', /bad signature on round:train \(round r1\)/);
  const byImpostor = signServerMessage('round:train', await train([9, 9]), signBy(impostor.secretKey));
  assert.equal((await transport.ask('round:train', byImpostor)).ok, false);
  const unsigned = await train([9, 9]);
  assert.equal((await transport.ask('round:train', unsigned)).ok, false);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(trained, []);
  const untrusted = events.filter((e) => e.type === 'untrusted');
  assert.equal(untrusted.length, 3);
  assert.match(String((untrusted[2] as { error: Error }).error.message), /unsigned round:train/);
});

test('when round:configure is not signed by the pinned key, then the site does not accept the round', async () => {
  const { transport, events } = await pinnedSite();
  const reply = await transport.ask('round:configure', signServerMessage('round:configure', configure(), signBy(impostor.secretKey)));
  assert.equal(!reply.ok && reply.code, 'UNTRUSTED_COORDINATOR');
  assert.ok(!events.some((e) => e.type === 'configured'));
});

test('when a secure-aggregation exchange is unsigned or signed by another key, then the site answers UNTRUSTED_COORDINATOR and never reaches its shares', async () => {
  const { transport, events } = await pinnedSite();
  const setup = { roundId: 'r1' };
  for (const raw of [setup, signServerMessage('secagg:setup', setup, signBy(impostor.secretKey))]) {
    const reply = await transport.ask('secagg:setup', raw);
    assert.equal(!reply.ok && reply.code, 'UNTRUSTED_COORDINATOR');
  }
  // an unmask request (packed: the signature covers the packed bytes) altered after signing
  const packed = { packed: new Uint8Array([0x81, 0xa1, 0x61, 0x01]) };
  const signed = signServerMessage('secagg:unmask', packed, signBy(coordinator.secretKey));
  const altered = await transport.ask('secagg:unmask', { ...signed, packed: new Uint8Array([0x81, 0xa1, 0x61, 0x02]) });
  assert.equal(!altered.ok && altered.code, 'UNTRUSTED_COORDINATOR');
  assert.equal(events.filter((e) => e.type === 'untrusted').length, 3);
  assert.ok(!events.some((e) => e.type === 'secagg-refused'), 'none reached the secure-round handler');
  // signed by the pinned key, the same messages pass the check and reach the handler (which has no secure round here)
  const genuine = await transport.ask('secagg:setup', signServerMessage('secagg:setup', setup, signBy(coordinator.secretKey)));
  assert.equal(!genuine.ok && genuine.code, 'WRONG_ROUND');
  assert.equal((await transport.ask('secagg:unmask', signed)).ok, false);
  assert.equal(events.filter((e) => e.type === 'secagg-refused').length, 2);
});

test('when round:closed is unsigned or forged, then the site ignores it; signed, it closes the round', async () => {
  const { transport, events } = await pinnedSite();
  const closed = { roundId: 'r1', round: 1, outcome: 'cancelled' as const, updates: 0, failures: 0 };
  transport.tell('round:closed', closed);
  transport.tell('round:closed', signServerMessage('round:closed', closed, signBy(impostor.secretKey)));
  assert.ok(!events.some((e) => e.type === 'closed'));
  assert.deepEqual(
    events.filter((e) => e.type === 'untrusted').map((e) => (e as { event: string }).event),
    ['round:closed', 'round:closed'],
  );
  transport.tell('round:closed', signServerMessage('round:closed', closed, signBy(coordinator.secretKey)));
  assert.deepEqual(events.filter((e) => e.type === 'closed').map((e) => (e as { message: { roundId: string } }).message.roundId), ['r1']);
});
