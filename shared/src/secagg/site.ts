// One site's side of one SecAgg+ round attempt (Bonawitz et al. 2017 Fig. 4 with Bell et al. 2020's neighbour graph):
// setup → shareKeys → maskedUpload → signSurvivors → unmask, each callable once and in order. Every key and seed is
// fresh for the attempt; a rerun after an abort builds a new SecAggSite.

import nacl from 'tweetnacl';
import { FedloraError } from '../errors';
import { bytesEqual } from '../crypto/bytes';
import { signDetached } from '../crypto/ed25519';
import type { KeyPair } from '../crypto/keys';
import type { NamedTensors } from '../tensor';
import { boxSharedKey, verifyEd25519 } from './curve';
import { addMask, pairwiseSeed, pairwiseSign, type AttemptContext } from './masks';
import { SEED_BYTES } from './prg';
import { checkQuantizationBound, quantizeWeighted, type QuantizationParams, type VectorLayout } from './quantize';
import { splitSecret } from './shamir';
import { readSharePair, setupKeysSignedBytes, sharePairPlaintext, survivorListSignedBytes } from './transcript';
import {
  wordsToBytes,
  type MaskedUpload,
  type MaskedUploadRequest,
  type SetupKeys,
  type SharesUpload,
  type ShareKeysRequest,
  type SurvivorListRequest,
  type SurvivorSignature,
  type UnmaskRequest,
  type UnmaskResponse,
} from './messages';

export interface SecAggSiteOptions {
  ctx: AttemptContext;
  siteId: string;
  /** the site's long-term Ed25519 identity (the key it authenticates with) */
  identity: KeyPair;
  /** Ed25519 public keys of enrolled sites, as the coordinator registered them (undefined: unknown site) */
  identityOf: (siteId: string) => Uint8Array | undefined;
  params: QuantizationParams;
  /** sites sampled for the round: the n of the n·Q < 2^32 bound */
  sampledSites: number;
  layout: VectorLayout;
}

type Stage = 'setup' | 'share-keys' | 'masked-upload' | 'sign-survivors' | 'unmask' | 'done';

interface Neighbour {
  keys: SetupKeys;
  /** nacl.box.before of the two c keys: the same at both ends, so it seals to and opens from this neighbour */
  boxKey?: Uint8Array;
  selfMaskShare?: Uint8Array;
  maskKeyShare?: Uint8Array;
}

const refuse = (why: string, code: 'BAD_MESSAGE' | 'BAD_SIGNATURE' = 'BAD_MESSAGE') => new FedloraError(code, `secure aggregation: ${why}`);

export class SecAggSite {
  private stage: Stage = 'setup';
  /** c: neighbours seal shares to it */
  private readonly encryption = nacl.box.keyPair();
  /** s: pairwise mask agreement */
  private readonly mask = nacl.box.keyPair();
  /** b: the self-mask seed */
  private readonly selfMaskSeed = nacl.randomBytes(SEED_BYTES);
  private threshold = 0;
  private readonly neighbours = new Map<string, Neighbour>();
  /** neighbours whose shares arrived in stage 3: the ones this site masks with */
  private maskedWith: string[] = [];
  private signedList: Uint8Array | null = null;

  constructor(private readonly o: SecAggSiteOptions) {
    checkQuantizationBound(o.params, o.sampledSites);
  }

  get siteId(): string {
    return this.o.siteId;
  }

  private enter(expected: Stage, next: Stage): void {
    if (this.stage !== expected) throw refuse(`site ${this.o.siteId} got a ${expected} request in stage ${this.stage}`);
    this.stage = next;
  }

  /** Stage 1: the two fresh public keys, signed and bound to run, round, attempt, stage and site. */
  setup(): SetupKeys {
    this.enter('setup', 'share-keys');
    const { ctx, siteId } = this.o;
    const signed = setupKeysSignedBytes(ctx, siteId, this.encryption.publicKey, this.mask.publicKey);
    return {
      ...ctx,
      siteId,
      encryptionPublicKey: this.encryption.publicKey,
      maskPublicKey: this.mask.publicKey,
      signature: signDetached(signed, this.o.identity.secretKey),
    };
  }

  /** Stage 2: verifies the neighbours' signed keys, then seals one share of b and one of s_sk to each. */
  async shareKeys(req: ShareKeysRequest): Promise<SharesUpload> {
    this.enter('share-keys', 'masked-upload');
    const { ctx, siteId } = this.o;
    const k = req.neighbours.length;
    if (2 * req.threshold <= k || req.threshold > k) throw refuse(`threshold ${req.threshold} must satisfy k/2 < t ≤ k for ${k} neighbours`);
    for (const n of req.neighbours) {
      if (n.siteId === siteId || this.neighbours.has(n.siteId)) throw refuse(`neighbour ${n.siteId} is listed twice or is this site`);
      if (n.runId !== ctx.runId || n.roundId !== ctx.roundId || n.attempt !== ctx.attempt) throw refuse(`neighbour ${n.siteId}'s keys are for another attempt`);
      const identity = this.o.identityOf(n.siteId);
      const signed = setupKeysSignedBytes(ctx, n.siteId, n.encryptionPublicKey, n.maskPublicKey);
      if (!identity || !(await verifyEd25519(signed, n.signature, identity))) throw refuse(`neighbour ${n.siteId}'s keys are not signed by it`, 'BAD_SIGNATURE');
      if (bytesEqual(n.maskPublicKey, this.mask.publicKey) || bytesEqual(n.encryptionPublicKey, this.encryption.publicKey)) throw refuse(`neighbour ${n.siteId} repeats this site's keys`);
      this.neighbours.set(n.siteId, { keys: n, boxKey: await boxSharedKey(this.encryption.secretKey, n.encryptionPublicKey) });
    }
    this.threshold = req.threshold;
    const selfMaskShares = await splitSecret(this.selfMaskSeed, k, req.threshold);
    const maskKeyShares = await splitSecret(this.mask.secretKey, k, req.threshold);
    const shares = req.neighbours.map((n, i) => {
      const nonce = nacl.randomBytes(nacl.box.nonceLength);
      const plaintext = sharePairPlaintext(ctx, siteId, n.siteId, selfMaskShares[i], maskKeyShares[i]);
      const boxKey = this.neighbours.get(n.siteId)!.boxKey!;
      return { from: siteId, to: n.siteId, nonce, ciphertext: nacl.box.after(plaintext, nonce, boxKey) };
    });
    return { siteId, shares };
  }

  /** Stage 3: keeps the shares its neighbours sealed to it, then uploads y = x + PRG(b) + Σ ±PRG(s_uv) mod 2^32. */
  async maskedUpload(req: MaskedUploadRequest, delta: NamedTensors, weight: number): Promise<MaskedUpload> {
    this.enter('masked-upload', 'sign-survivors');
    const { ctx, siteId } = this.o;
    for (const sealed of req.shares) {
      const n = this.neighbours.get(sealed.from);
      if (!n || sealed.to !== siteId) throw refuse(`a share from ${sealed.from} to ${sealed.to} is not from a neighbour to this site`);
      if (n.selfMaskShare) throw refuse(`two shares from ${sealed.from}`);
      const plaintext = nacl.box.open.after(sealed.ciphertext, sealed.nonce, n.boxKey!);
      if (!plaintext) throw refuse(`the share from ${sealed.from} does not decrypt`, 'BAD_SIGNATURE');
      Object.assign(n, readSharePair(ctx, sealed.from, siteId, plaintext));
    }
    this.maskedWith = [...this.neighbours.keys()].filter((id) => this.neighbours.get(id)!.selfMaskShare).sort();
    if (this.maskedWith.length < this.threshold) throw refuse(`only ${this.maskedWith.length} neighbours shared keys, the threshold is ${this.threshold}`);
    const masked = quantizeWeighted(delta, weight, this.o.layout, this.o.params);
    addMask(masked, this.selfMaskSeed, 'self-mask', 1);
    for (const id of this.maskedWith) {
      const seed = await pairwiseSeed(this.mask.secretKey, this.neighbours.get(id)!.keys.maskPublicKey, ctx, siteId, id);
      addMask(masked, seed, 'pairwise-mask', pairwiseSign(siteId, id));
      seed.fill(0);
    }
    return { siteId, masked: wordsToBytes(masked) };
  }

  private liveNeighbours(survivors: readonly string[]): string[] {
    const listed = new Set(survivors);
    return this.maskedWith.filter((id) => listed.has(id));
  }

  /** Stage 4a: signs the list of sites whose uploads are in the sum, if it names this site and ≥ t neighbours. */
  signSurvivors(req: SurvivorListRequest): SurvivorSignature {
    this.enter('sign-survivors', 'unmask');
    const { ctx, siteId } = this.o;
    if (new Set(req.survivors).size !== req.survivors.length) throw refuse('the survivor list repeats a site');
    if (!req.survivors.includes(siteId)) throw refuse(`the survivor list omits ${siteId}, which uploaded`);
    const live = this.liveNeighbours(req.survivors).length;
    if (live < this.threshold) throw refuse(`the survivor list names ${live} of this site's neighbours, fewer than the threshold ${this.threshold}`);
    this.signedList = survivorListSignedBytes(ctx, req.survivors);
    return { siteId, signature: signDetached(this.signedList, this.o.identity.secretKey) };
  }

  /**
   * Stage 4b, answered once: b-shares of live neighbours, s-shares of dead ones. Refuses a request that asks for both
   * shares of one site, lists fewer than t of its neighbours, is not the list this site signed, or lacks t valid
   * neighbour signatures (or carries any invalid one).
   */
  async unmask(req: UnmaskRequest): Promise<UnmaskResponse> {
    this.enter('unmask', 'done');
    const { ctx, siteId } = this.o;
    const both = req.selfMaskOf.filter((id) => req.maskKeyOf.includes(id));
    if (both.length > 0) throw refuse(`the unmask request asks for both shares of ${both[0]}`);
    const live = new Set(this.liveNeighbours(req.survivors));
    if (live.size < this.threshold) throw refuse(`the unmask request lists ${live.size} of this site's neighbours as survivors, fewer than the threshold ${this.threshold}`);
    const listed = survivorListSignedBytes(ctx, req.survivors);
    if (!this.signedList || !bytesEqual(listed, this.signedList)) throw refuse('the unmask request is not for the survivor list this site signed', 'BAD_SIGNATURE');
    const signers = new Set<string>();
    for (const s of req.signatures) {
      const n = this.neighbours.get(s.siteId);
      const identity = this.o.identityOf(s.siteId);
      if (!n || !live.has(s.siteId) || !identity || !(await verifyEd25519(listed, s.signature, identity)))
        throw refuse(`the survivor list carries an invalid signature for ${s.siteId}`, 'BAD_SIGNATURE');
      signers.add(s.siteId);
    }
    if (signers.size < this.threshold) throw refuse(`the survivor list is signed by ${signers.size} neighbours, fewer than the threshold ${this.threshold}`, 'BAD_SIGNATURE');
    const selfMaskShares = req.selfMaskOf.map((owner) => {
      if (!live.has(owner)) throw refuse(`asked for the self-mask share of ${owner}, which is not a live neighbour`);
      return { owner, share: this.neighbours.get(owner)!.selfMaskShare! };
    });
    const maskKeyShares = req.maskKeyOf.map((owner) => {
      if (live.has(owner) || !this.maskedWith.includes(owner)) throw refuse(`asked for the mask-key share of ${owner}, which is not a dead neighbour`);
      return { owner, share: this.neighbours.get(owner)!.maskKeyShare! };
    });
    return { siteId, selfMaskShares, maskKeyShares };
  }
}
