// A site's side of a secure-aggregation round (SecAgg+, shared/src/secagg), between the socket and SecAggSite: every
// coordinator message is parsed and must name the round the site accepted; the site checks that the coordinator
// vouches for its own identity key, learns its neighbours' identity keys from the share-keys message, clips its delta
// to the round's norm bound (the coordinator cannot clip a masked update), and uploads it masked. The round handler
// (round-handler.ts) runs one per accepted secure round, for the Node agent and the browser site alike.

import { FedloraError } from '../errors';
import { bytesEqual } from '../crypto/bytes';
import type { KeyPair } from '../crypto/keys';
import { parseServerMessage, type ClientRequest } from '../protocol/events';
import { pack, unpack, type Packed } from '../protocol/packed';
import {
  SecAggShareKeysMessageSchema,
  SecAggSurvivorsMessageSchema,
  SecAggUnmaskMessageSchema,
} from '../protocol/messages';
import type { NamedTensors } from '../tensor';
import { clipToL2Norm } from '../privacy/clipping';
import { SecAggSite } from '../secagg/site';
import { layoutOfShapes } from '../secagg/quantize';
import type { MaskedUploadRequest } from '../secagg/messages';
import type { ConfiguredRound } from './participant';

export type SecureRoundConfig = NonNullable<ConfiguredRound['secureAggregation']>;

export class SecureParticipant {
  private readonly site: SecAggSite;
  private readonly identities = new Map<string, Uint8Array>();
  readonly roundId: string;

  constructor(
    round: ConfiguredRound & { secureAggregation: SecureRoundConfig },
    private readonly siteId: string,
    private readonly identity: KeyPair,
    trainableShapes: Record<string, number[]>,
  ) {
    const p = round.secureAggregation;
    this.roundId = round.roundId;
    this.site = new SecAggSite({
      ctx: { runId: p.runId, roundId: round.roundId, attempt: p.attempt },
      siteId,
      identity,
      identityOf: (id) => this.identities.get(id),
      params: { clip: p.clip, levels: p.levels, maxWeight: p.maxWeight },
      sampledSites: p.sampledSites,
      layout: layoutOfShapes(trainableShapes),
    });
    this.params = p;
  }

  private readonly params: SecureRoundConfig;

  private own<M extends { roundId: string }>(msg: M): M {
    if (msg.roundId !== this.roundId)
      throw new FedloraError('WRONG_ROUND', `secure aggregation: a message for round ${msg.roundId}, this site is in ${this.roundId}`);
    return msg;
  }

  /** setup: two fresh X25519 keys, signed with the site's identity key. Each reply is packed (protocol/packed.ts). */
  setup(raw: unknown): Packed {
    this.own(parseServerMessage('secagg:setup', raw));
    return pack(this.site.setup());
  }

  /** share-keys: checks the identities the coordinator vouches for, then seals the shares to the neighbours. */
  async shareKeys(raw: unknown): Promise<Packed> {
    const msg = this.own(unpack(SecAggShareKeysMessageSchema, raw, 'secagg:share-keys'));
    for (const { siteId, signingPublicKey } of msg.identities) {
      if (this.identities.has(siteId)) throw new FedloraError('BAD_MESSAGE', `secure aggregation: ${siteId}'s identity is listed twice`);
      this.identities.set(siteId, signingPublicKey);
    }
    const mine = this.identities.get(this.siteId);
    // a coordinator that does not know this site's key could be vouching for impostors as well
    if (!mine || !bytesEqual(mine, this.identity.publicKey))
      throw new FedloraError('BAD_SIGNATURE', 'secure aggregation: the coordinator lists another identity key for this site');
    const { threshold, neighbours } = msg;
    return pack(await this.site.shareKeys({ threshold, neighbours }));
  }

  /** collect: the delta clipped to the round's norm bound, quantized with its weight, and masked. */
  async upload(shares: MaskedUploadRequest, delta: NamedTensors, numExamples: number): Promise<ClientRequest<'secagg:upload'>> {
    const clipped = clipToL2Norm(delta, this.params.normBound).delta;
    const weight = Math.max(1, Math.min(Math.round(numExamples), this.params.maxWeight));
    return { roundId: this.roundId, upload: await this.site.maskedUpload(shares, clipped, weight) };
  }

  /** unmask, first half: signs the survivor list (if it names this site and t of its neighbours). */
  signSurvivors(raw: unknown): Packed {
    const { survivors } = this.own(unpack(SecAggSurvivorsMessageSchema, raw, 'secagg:survivors'));
    return pack(this.site.signSurvivors({ survivors }));
  }

  /** unmask: the shares asked for, never both of one site (SecAggSite refuses). */
  async unmask(raw: unknown): Promise<Packed> {
    const { roundId: _r, ...req } = this.own(unpack(SecAggUnmaskMessageSchema, raw, 'secagg:unmask'));
    return pack(await this.site.unmask(req));
  }
}

/** The round's secure-aggregation config, or null for a plaintext round. */
export function isSecureRound(round: ConfiguredRound): round is ConfiguredRound & { secureAggregation: SecureRoundConfig } {
  return round.secureAggregation !== undefined;
}

