// The coordinator's side of one SecAgg+ round attempt (Bonawitz et al. 2017 Fig. 4; Bell et al. 2020 §3): it checks
// and forwards signed keys along the graph, routes sealed shares it cannot open, sums masked uploads mod 2^32, asks
// survivors for the shares that remove the masks, and decodes the unmasked sum. The only decode is one call of
// `decode` on that sum: no code path here turns one site's masked vector into a delta.
// Sets: U1 = sent keys, U2 = sent shares, U3 = uploaded (live), dead = U2 \ U3, S = signed the survivor list,
// R = answered the unmask request.

import nacl from 'tweetnacl';
import { FedloraError } from '../errors';
import { bytesEqual } from '../crypto/bytes';
import type { NamedTensors } from '../tensor';
import { verifyEd25519 } from './curve';
import { buildGraph, type SecAggGraph } from './graph';
import { addMask, pairwiseSeed, pairwiseSign, type AttemptContext } from './masks';
import { checkQuantizationBound, dequantizeSum, type DecodedSum, type QuantizationParams, type VectorLayout } from './quantize';
import { combineRobust } from './shamir';
import { setupKeysSignedBytes, survivorListSignedBytes } from './transcript';
import {
  bytesToWords,
  type MaskedUpload,
  type MaskedUploadRequest,
  type SealedShares,
  type SetupKeys,
  type SharesUpload,
  type ShareKeysRequest,
  type SurvivorListRequest,
  type SurvivorSignature,
  type UnmaskRequest,
  type UnmaskResponse,
} from './messages';

export interface SecAggServerOptions {
  ctx: AttemptContext;
  params: QuantizationParams;
  /** sites sampled for the round: the n of the n·Q < 2^32 bound */
  sampledSites: number;
  layout: VectorLayout;
  /** Ed25519 identity keys of enrolled sites */
  identityOf: (siteId: string) => Uint8Array | undefined;
  /** 32 random bytes that pick the graph (recorded by a simulation to replay it) */
  graphSeed: Uint8Array;
  degree?: number;
  threshold?: number;
  /** the decoder of the unmasked sum; injectable so a test can watch that it runs once, on the sum only */
  decode?: (sum: Uint32Array, layout: VectorLayout, params: QuantizationParams) => DecodedSum;
}

/** What RoundAggregator.acceptSum takes: Σ nᵢ·Δᵢ over `count` sites with Σ nᵢ = totalWeight. */
export interface SecAggResult {
  sum: NamedTensors;
  totalWeight: number;
  count: number;
}

/**
 * The t rule: every live site needs t share holders among its neighbours (to remove its self mask), and so does every
 * dead site that a live one masked with (to remove those pairwise masks). Returns why it fails, or null.
 */
export function thresholdShortfall(graph: SecAggGraph, live: ReadonlySet<string>, dead: ReadonlySet<string>, holders: ReadonlySet<string>): string | null {
  const holding = (u: string) => graph.neighbours.get(u)!.filter((v) => holders.has(v)).length;
  for (const u of live) {
    const h = holding(u);
    if (h < graph.threshold) return `live site ${u} has ${h} neighbours left to hold its shares, the threshold is ${graph.threshold}`;
  }
  for (const d of dead) {
    if (!graph.neighbours.get(d)!.some((v) => live.has(v))) continue;
    const h = holding(d);
    if (h < graph.threshold) return `dropped site ${d} has ${h} neighbours left to hold its shares, the threshold is ${graph.threshold}`;
  }
  return null;
}

type Stage = 'setup' | 'share-keys' | 'masked-upload' | 'sign-survivors' | 'unmask' | 'done' | 'aborted';

export class SecAggServer {
  private stage: Stage = 'setup';
  private readonly keys = new Map<string, SetupKeys>();
  private graphValue: SecAggGraph | null = null;
  private readonly sharesFrom = new Map<string, SealedShares[]>();
  private shareSenders = new Set<string>(); // U2
  private readonly uploads = new Map<string, Uint32Array>(); // U3
  private survivors: string[] = [];
  private readonly signatures = new Map<string, Uint8Array>(); // S
  private unmaskAsked = new Map<string, UnmaskRequest>();
  private readonly responses = new Map<string, UnmaskResponse>(); // R
  /** why the attempt aborted, for the round history */
  abortReason: string | null = null;

  constructor(private readonly o: SecAggServerOptions) {
    checkQuantizationBound(o.params, o.sampledSites);
  }

  get graph(): SecAggGraph {
    if (!this.graphValue) throw new FedloraError('BAD_MESSAGE', 'secure aggregation: the graph is built after setup');
    return this.graphValue;
  }

  private expect(stage: Stage, what: string): void {
    if (this.stage !== stage) throw new FedloraError('BAD_MESSAGE', `secure aggregation: ${what} arrived in stage ${this.stage}`);
  }

  private abort(reason: string): never {
    this.stage = 'aborted';
    this.abortReason = reason;
    throw new FedloraError('ROUND_ABORTED', `secure aggregation aborted: ${reason}`);
  }

  private checkRule(live: ReadonlySet<string>, dead: ReadonlySet<string>, holders: ReadonlySet<string>, when: string): void {
    const shortfall = thresholdShortfall(this.graph, live, dead, holders);
    if (shortfall) this.abort(`${when}: ${shortfall}`);
  }

  /** Stage 1 intake: keys signed by the site's identity for this attempt, once per site. */
  async receiveSetup(msg: SetupKeys): Promise<void> {
    this.expect('setup', 'setup keys');
    const { ctx } = this.o;
    if (msg.runId !== ctx.runId || msg.roundId !== ctx.roundId || msg.attempt !== ctx.attempt)
      throw new FedloraError('WRONG_ROUND', `secure aggregation: keys of ${msg.siteId} are for another attempt`);
    if (this.keys.has(msg.siteId)) throw new FedloraError('REPLAY', `secure aggregation: ${msg.siteId} sent keys twice`);
    const identity = this.o.identityOf(msg.siteId);
    const signed = setupKeysSignedBytes(ctx, msg.siteId, msg.encryptionPublicKey, msg.maskPublicKey);
    if (!identity || !(await verifyEd25519(signed, msg.signature, identity)))
      throw new FedloraError('BAD_SIGNATURE', `secure aggregation: keys of ${msg.siteId} are not signed by it`);
    this.keys.set(msg.siteId, msg);
  }

  /** End of stage 1: the graph over U1, and each site's neighbours with their signed keys. */
  shareKeysRequests(): Map<string, ShareKeysRequest> {
    this.expect('setup', 'the share-keys step');
    try {
      this.graphValue = buildGraph([...this.keys.keys()], this.o.graphSeed, { degree: this.o.degree, threshold: this.o.threshold });
    } catch (err) {
      this.abort(`after setup: ${err instanceof Error ? err.message : String(err)}`);
    }
    this.stage = 'share-keys';
    const g = this.graph;
    return new Map(g.sites.map((u) => [u, { threshold: g.threshold, neighbours: g.neighbours.get(u)!.map((v) => this.keys.get(v)!) }]));
  }

  /** Stage 2 intake: one sealed pair to each neighbour, nothing else. */
  receiveShares(msg: SharesUpload): void {
    this.expect('share-keys', 'shares');
    const neighbours = this.graph.neighbours.get(msg.siteId);
    if (!neighbours) throw new FedloraError('NOT_SAMPLED', `secure aggregation: ${msg.siteId} is not in this attempt's graph`);
    if (this.sharesFrom.has(msg.siteId)) throw new FedloraError('REPLAY', `secure aggregation: ${msg.siteId} sent shares twice`);
    const to = msg.shares.map((s) => s.to).sort();
    if (msg.shares.some((s) => s.from !== msg.siteId) || to.length !== neighbours.length || to.some((v, i) => v !== neighbours[i]))
      throw new FedloraError('BAD_MESSAGE', `secure aggregation: ${msg.siteId} must send exactly one share pair to each neighbour`);
    this.sharesFrom.set(msg.siteId, msg.shares);
  }

  /** End of stage 2: U2 = who sent shares; each gets the pairs its U2 neighbours sealed to it. */
  maskedUploadRequests(): Map<string, MaskedUploadRequest> {
    this.expect('share-keys', 'the masked-upload step');
    this.shareSenders = new Set(this.sharesFrom.keys());
    // each U2 site masks with its U2 neighbours and must find t of them holding its shares
    this.checkRule(this.shareSenders, new Set(), this.shareSenders, 'after share-keys');
    this.stage = 'masked-upload';
    const inbox = new Map<string, SealedShares[]>([...this.shareSenders].map((u) => [u, []]));
    for (const shares of this.sharesFrom.values()) for (const s of shares) inbox.get(s.to)?.push(s);
    return new Map([...inbox].map(([u, shares]) => [u, { shares }]));
  }

  /** Stage 3 intake: one masked vector of the round layout per U2 site. */
  receiveMaskedUpload(msg: MaskedUpload): void {
    this.expect('masked-upload', 'a masked upload');
    if (!this.shareSenders.has(msg.siteId)) throw new FedloraError('NOT_SAMPLED', `secure aggregation: ${msg.siteId} did not share keys`);
    if (this.uploads.has(msg.siteId)) throw new FedloraError('REPLAY', `secure aggregation: ${msg.siteId} uploaded twice`);
    const words = bytesToWords(msg.masked);
    if (words.length !== this.o.layout.length + 1)
      throw new FedloraError('SHAPE_MISMATCH', `secure aggregation: ${msg.siteId} uploaded ${words.length} words, the layout has ${this.o.layout.length + 1}`);
    this.uploads.set(msg.siteId, words.slice());
  }

  private dead(live: ReadonlySet<string>): Set<string> {
    return new Set([...this.shareSenders].filter((u) => !live.has(u)));
  }

  /** End of stage 3: U3 is fixed, and every survivor is asked to sign it. */
  survivorListRequest(): SurvivorListRequest {
    this.expect('masked-upload', 'the survivor list');
    const live = new Set(this.uploads.keys());
    this.checkRule(live, this.dead(live), live, 'after masked upload');
    this.stage = 'sign-survivors';
    this.survivors = [...live].sort();
    return { survivors: this.survivors };
  }

  async receiveSurvivorSignature(msg: SurvivorSignature): Promise<void> {
    this.expect('sign-survivors', 'a survivor signature');
    const identity = this.o.identityOf(msg.siteId);
    if (!this.uploads.has(msg.siteId) || !identity || !(await verifyEd25519(survivorListSignedBytes(this.o.ctx, this.survivors), msg.signature, identity)))
      throw new FedloraError('BAD_SIGNATURE', `secure aggregation: ${msg.siteId}'s signature on the survivor list does not verify`);
    this.signatures.set(msg.siteId, msg.signature);
  }

  /**
   * End of stage 4a: an unmask request to each signer that holds t signatures of its neighbours (the others would
   * refuse): b-shares of its live neighbours, s-shares of its dead ones.
   */
  unmaskRequests(): Map<string, UnmaskRequest> {
    this.expect('sign-survivors', 'the unmask step');
    const g = this.graph;
    const live = new Set(this.survivors);
    const dead = this.dead(live);
    const signedNeighbours = (v: string) => g.neighbours.get(v)!.filter((w) => this.signatures.has(w));
    const asked = [...this.signatures.keys()].filter((v) => signedNeighbours(v).length >= g.threshold);
    this.checkRule(live, dead, new Set(asked), 'after the survivor list was signed');
    this.stage = 'unmask';
    this.unmaskAsked = new Map(
      asked.map((v) => [
        v,
        {
          survivors: this.survivors,
          signatures: signedNeighbours(v).map((w) => ({ siteId: w, signature: this.signatures.get(w)! })),
          selfMaskOf: g.neighbours.get(v)!.filter((w) => live.has(w)),
          maskKeyOf: g.neighbours.get(v)!.filter((w) => dead.has(w)),
        },
      ]),
    );
    return this.unmaskAsked;
  }

  receiveUnmask(msg: UnmaskResponse): void {
    this.expect('unmask', 'an unmask response');
    const asked = this.unmaskAsked.get(msg.siteId);
    if (!asked || this.responses.has(msg.siteId))
      throw new FedloraError('BAD_MESSAGE', `secure aggregation: an unexpected unmask response from ${msg.siteId}`);
    // exactly the owners asked for, each once: a site cannot slip in shares of a site it was not asked about
    const same = (got: { owner: string }[], want: string[]) => got.length === want.length && got.map((s) => s.owner).sort().every((o, i) => o === [...want].sort()[i]);
    if (!same(msg.selfMaskShares, asked.selfMaskOf) || !same(msg.maskKeyShares, asked.maskKeyOf))
      throw new FedloraError('BAD_MESSAGE', `secure aggregation: ${msg.siteId}'s unmask response does not answer the request`);
    this.responses.set(msg.siteId, msg);
  }

  /** End of stage 4b: reconstruct b of the live and s_sk of the dead, remove every mask, decode the sum once. */
  async finish(): Promise<SecAggResult> {
    this.expect('unmask', 'the unmasking');
    const g = this.graph;
    const live = new Set(this.survivors);
    const dead = this.dead(live);
    this.checkRule(live, dead, new Set(this.responses.keys()), 'after unmask');
    const sharesOf = (owner: string, kind: 'selfMaskShares' | 'maskKeyShares') =>
      [...this.responses.values()].flatMap((r) => r[kind].filter((s) => s.owner === owner).map((s) => s.share));

    const sum = new Uint32Array(this.o.layout.length + 1);
    for (const words of this.uploads.values()) for (let i = 0; i < sum.length; i++) sum[i] += words[i];
    try {
      for (const u of live) {
        const b = await combineRobust(sharesOf(u, 'selfMaskShares'), g.threshold);
        addMask(sum, b, 'self-mask', -1);
      }
      for (const d of dead) {
        const liveNeighbours = g.neighbours.get(d)!.filter((v) => live.has(v));
        if (liveNeighbours.length === 0) continue;
        const secretKey = await combineRobust(sharesOf(d, 'maskKeyShares'), g.threshold);
        if (!bytesEqual(nacl.box.keyPair.fromSecretKey(secretKey).publicKey, this.keys.get(d)!.maskPublicKey))
          throw new FedloraError('ROUND_ABORTED', `the reconstructed mask key of ${d} does not match its public key`);
        for (const v of liveNeighbours) {
          const seed = await pairwiseSeed(secretKey, this.keys.get(v)!.maskPublicKey, this.o.ctx, d, v);
          addMask(sum, seed, 'pairwise-mask', pairwiseSign(v, d) === 1 ? -1 : 1);
        }
        secretKey.fill(0);
      }
    } catch (err) {
      this.abort(`unmasking: ${err instanceof Error ? err.message : String(err)}`);
    }
    const decoded = (this.o.decode ?? dequantizeSum)(sum, this.o.layout, this.o.params);
    this.stage = 'done';
    return { sum: decoded.sum, totalWeight: decoded.totalWeight, count: live.size };
  }
}
