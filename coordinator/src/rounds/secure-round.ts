// A round under secure aggregation (SecAgg+, shared/src/secagg, docs/SECAGG.md), as the coordinator runs it: the
// quantization every site uses, the SecAggServer of the round's one attempt, and the three stages a secure round adds
// to the plaintext ones (setup and share-keys before training, unmask after collect); collect takes masked uploads
// instead of sealed ones and aggregate hands the unmasked sum to the strategy (acceptSum). No code path here opens one
// site's update: the server decodes the sum once, after the masks are removed.
// An attempt that cannot finish (too few sites keep t live neighbours) ends the round with its reason; the next round
// has a new round id, so every key, seed and mask is fresh.

import nacl from 'tweetnacl';
import { FedloraError, isFedloraError } from '@fedlora/shared/errors.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { SecAggServer, type SecAggResult } from '@fedlora/shared/secagg/server.ts';
import { layoutOf, levelsFor, type QuantizationParams, type VectorLayout } from '@fedlora/shared/secagg/quantize.ts';
import type { MaskedUploadRequest } from '@fedlora/shared/secagg/messages.ts';
import type { AttemptContext } from '@fedlora/shared/secagg/masks.ts';
import type { ClientRequest, ServerMessage } from '@fedlora/shared/protocol/events.ts';
import type { RoundSecureAggregation } from '../registry/types';
import type { RoundInbox } from './inbox';
import type { RoundEnv, RunningRound, StageResult } from './stages';

const TWO_32 = 2 ** 32;

export type SecureRoundParams = NonNullable<ServerMessage<'round:configure'>['secureAggregation']>;

export interface SecureRoundOptions {
  ctx: AttemptContext;
  /** the adapter the sites train from: the masked vector's layout */
  layout: NamedTensors;
  /** the per-coordinate clip c: under DP the clip norm S, else the most AdamW moves one weight this round */
  clip: number;
  /** the L2 bound the sites apply to their own delta (the coordinator cannot clip a masked one) */
  normBound: number;
  /** graph degree; null = the graph's default 2⌈log2 n⌉+1 */
  degree: number | null;
  /** Shamir threshold; null = the graph's default ⌈k/2⌉+1 */
  threshold: number | null;
  /** every site weighs 1 (client-level DP: the noise is calibrated to the sum of n clipped deltas) */
  equalWeights: boolean;
}

/** One secure round's protocol state; made when the round starts, begun once the sample is known. */
export class SecureRound {
  readonly layout: VectorLayout;
  private server: SecAggServer | null = null;
  private paramsValue: SecureRoundParams | null = null;
  /** Ed25519 identity keys of the round's participants, as enrolled */
  private readonly identities = new Map<string, Uint8Array>();
  /** per site: the sealed shares its neighbours sent it, delivered with 'round:train' */
  private uploadRequests = new Map<string, MaskedUploadRequest>();
  private contributors = 0;
  private dropped = 0;

  constructor(private readonly o: SecureRoundOptions) {
    this.layout = layoutOf(o.layout);
  }

  /**
   * Fixes the quantization for `sampledSites` sites with weights up to `weightCap` (equal weights: 1): the finest
   * levels Q with n·Q < 2^32, and the weight cap lowered so that n·W < 2^32 too.
   */
  begin(sampledSites: number, weightCap: number): SecureRoundParams {
    const cap = this.o.equalWeights || !Number.isFinite(weightCap) ? 1 : Math.ceil(weightCap);
    const maxWeight = Math.max(1, Math.min(cap, Math.floor((TWO_32 - 1) / sampledSites)));
    const params: QuantizationParams = { clip: this.o.clip, levels: levelsFor(sampledSites), maxWeight };
    this.server = new SecAggServer({
      ctx: this.o.ctx,
      params,
      sampledSites,
      layout: this.layout,
      identityOf: (id) => this.identities.get(id),
      graphSeed: nacl.randomBytes(32),
      degree: this.o.degree ?? undefined,
      threshold: this.o.threshold ?? undefined,
    });
    const { runId, attempt } = this.o.ctx;
    this.paramsValue = { runId, attempt, ...params, sampledSites, normBound: this.o.normBound };
    return this.paramsValue;
  }

  get params(): SecureRoundParams {
    if (!this.paramsValue) throw new FedloraError('INTERNAL', 'secure round: begin() first');
    return this.paramsValue;
  }

  private get sa(): SecAggServer {
    if (!this.server) throw new FedloraError('INTERNAL', 'secure round: begin() first');
    return this.server;
  }

  /** the sealed shares for `siteId`'s 'round:train' (none: it did not finish share-keys, and gets an empty list) */
  sharesFor(siteId: string): MaskedUploadRequest {
    return this.uploadRequests.get(siteId) ?? { shares: [] };
  }

  /** collect's intake of one masked upload from the authenticated `siteId` (never decoded). */
  receiveUpload(siteId: string, req: ClientRequest<'secagg:upload'>): number {
    if (req.upload.siteId !== siteId)
      throw new FedloraError('BAD_MESSAGE', `secure aggregation: a masked upload names ${req.upload.siteId}, the connection is ${siteId}`);
    this.sa.receiveMaskedUpload(req.upload);
    return req.upload.masked.length;
  }

  /** What the round record keeps: counts and parameters, never which sites contributed. */
  record(): RoundSecureAggregation | undefined {
    if (!this.paramsValue) return undefined;
    const g = this.server && safeGraph(this.server);
    return {
      contributors: this.contributors,
      dropped: this.dropped,
      degree: g?.degree ?? 0,
      threshold: g?.threshold ?? 0,
      clip: this.paramsValue.clip,
      levels: this.paramsValue.levels,
      maxWeight: this.paramsValue.maxWeight,
    };
  }

  // ---- the stages ----

  /** setup: each participant's two fresh signed keys; a site that does not answer leaves the round. */
  async setup(r: RunningRound, env: RoundEnv): Promise<StageResult> {
    const { inbox, plan } = r;
    await eachSite(inbox, env, async (siteId) => {
      const key = await env.transport.identityKey(siteId);
      if (!key) throw new FedloraError('UNKNOWN_SITE', `site ${siteId} is no longer enrolled`);
      this.identities.set(siteId, key);
      const keys = await env.transport.secaggSetup(siteId, { roundId: plan.roundId }, ackMs(env));
      if (keys.siteId !== siteId) throw new FedloraError('BAD_MESSAGE', `secure aggregation: ${siteId} sent keys for ${keys.siteId}`);
      await this.sa.receiveSetup(keys);
    });
    return enough(inbox, env, 'sent keys');
  }

  /** share-keys: the graph over the sites that sent keys; each seals its secrets' shares to its neighbours. */
  async shareKeys(r: RunningRound, env: RoundEnv): Promise<StageResult> {
    const { inbox, plan } = r;
    const requests = await aborting(() => this.sa.shareKeysRequests());
    if (typeof requests === 'string') return kept(requests);
    await eachSite(inbox, env, async (siteId) => {
      const req = requests.get(siteId);
      if (!req) throw new FedloraError('NOT_SAMPLED', `secure aggregation: ${siteId} is not on the round's graph`);
      const identities = [siteId, ...req.neighbours.map((n) => n.siteId)].map((id) => ({
        siteId: id,
        signingPublicKey: this.identities.get(id) as Uint8Array,
      }));
      const shares = await env.transport.secaggShareKeys(siteId, { roundId: plan.roundId, ...req, identities }, ackMs(env));
      if (shares.siteId !== siteId) throw new FedloraError('BAD_MESSAGE', `secure aggregation: ${siteId} sent shares for ${shares.siteId}`);
      this.sa.receiveShares(shares);
    });
    const delivery = await aborting(() => this.sa.maskedUploadRequests());
    if (typeof delivery === 'string') return kept(delivery);
    this.uploadRequests = delivery;
    return enough(inbox, env, 'shared keys');
  }

  /**
   * unmask: the sites whose masked updates arrived sign that list; the signers reveal the shares that remove the
   * masks (self masks of the live, mask keys of the dropped); the server removes them and decodes the sum.
   */
  async unmask(r: RunningRound, env: RoundEnv): Promise<StageResult> {
    const { plan } = r;
    const roundId = plan.roundId;
    const outcome = await aborting(async (): Promise<SecAggResult> => {
      const list = this.sa.survivorListRequest();
      await Promise.all(
        list.survivors.map(async (siteId) => {
          try {
            const sig = await env.transport.secaggSurvivors(siteId, { roundId, ...list }, ackMs(env));
            if (sig.siteId === siteId) await this.sa.receiveSurvivorSignature(sig);
          } catch (err) {
            env.log('secagg.site.failed', { round: plan.round, site: siteId, stage: 'sign-survivors', code: codeOf(err) });
          }
        }),
      );
      const requests = this.sa.unmaskRequests();
      await Promise.all(
        [...requests].map(async ([siteId, req]) => {
          try {
            const res = await env.transport.secaggUnmask(siteId, { roundId, ...req }, ackMs(env));
            if (res.siteId === siteId) this.sa.receiveUnmask(res);
          } catch (err) {
            env.log('secagg.site.failed', { round: plan.round, site: siteId, stage: 'unmask', code: codeOf(err) });
          }
        }),
      );
      return this.sa.finish();
    });
    if (typeof outcome === 'string') return kept(outcome);
    this.contributors = outcome.count;
    this.dropped = this.uploadRequests.size - outcome.count;
    r.secureSum = outcome;
    return 'next';
  }
}

function safeGraph(s: SecAggServer) {
  try {
    return s.graph;
  } catch {
    return null;
  }
}

function codeOf(err: unknown): string {
  return err instanceof FedloraError ? err.code : 'INTERNAL';
}

function ackMs(env: RoundEnv): number {
  return env.settings.ackTimeoutS * 1000;
}

const kept = (reason: string): StageResult => ({ end: 'kept', reason });

/** Runs `f`; an aborted SecAgg attempt becomes its reason (the round ends), anything else is thrown. */
async function aborting<T>(f: () => T | Promise<T>): Promise<T | string> {
  try {
    return await f();
  } catch (err) {
    if (isFedloraError(err, 'ROUND_ABORTED')) return err.message;
    throw err;
  }
}

/** Asks every participant; one that fails or leaves is out of the round (its failure recorded with the code). */
async function eachSite(inbox: RoundInbox, env: RoundEnv, ask: (siteId: string) => Promise<void>): Promise<void> {
  await Promise.all(
    [...inbox.participants].map(async (siteId) => {
      try {
        await inbox.untilLeft(siteId, ask(siteId));
      } catch (err) {
        inbox.fail(siteId, codeOf(err));
      }
    }),
  );
}

function enough(inbox: RoundInbox, env: RoundEnv, did: string): StageResult {
  const n = inbox.participants.size;
  if (n < env.settings.minSites) return kept(`${n} site(s) ${did}, fewer than minSites ${env.settings.minSites}`);
  return 'next';
}
