// An in-process SecAgg+ round attempt: n sites and the server through every stage in memory, with a drop set per
// stage (a dropped site sends nothing from that stage on). For tests and the simulator; no transport, no timers.

import nacl from 'tweetnacl';
import { FedloraError, isFedloraError } from '../errors';
import type { KeyPair } from '../crypto/keys';
import type { NamedTensors } from '../tensor';
import type { AttemptContext } from './masks';
import { layoutOf, type QuantizationParams } from './quantize';
import { SecAggServer, type SecAggResult, type SecAggServerOptions } from './server';
import { SecAggSite } from './site';
import type { MaskedUpload, SetupKeys, UnmaskRequest, UnmaskResponse } from './messages';

export const SECAGG_STAGES = ['setup', 'share-keys', 'masked-upload', 'sign-survivors', 'unmask'] as const;
export type SecAggStage = (typeof SECAGG_STAGES)[number];

export interface SimulatedSite {
  siteId: string;
  identity: KeyPair;
  delta: NamedTensors;
  weight: number;
}

export interface SimulationOptions {
  ctx: AttemptContext;
  params: QuantizationParams;
  sites: readonly SimulatedSite[];
  /** sites that drop at (do not answer) each stage */
  drops?: Partial<Record<SecAggStage, ReadonlySet<string>>>;
  graphSeed?: Uint8Array;
  /** graph degree (default: graph.ts defaultDegree) */
  degree?: number;
  decode?: SecAggServerOptions['decode'];
  /** sees every masked upload as the server receives it (blindness tests) */
  onMaskedUpload?: (msg: MaskedUpload) => void;
  /** sees every setup message (key-freshness tests) */
  onSetupKeys?: (msg: SetupKeys) => void;
  /** plays a dishonest coordinator: rewrites the unmask request a site gets (refusal tests) */
  tamperUnmaskRequest?: (siteId: string, req: UnmaskRequest) => UnmaskRequest;
  /** plays a dishonest site: rewrites its unmask response */
  tamperUnmaskResponse?: (res: UnmaskResponse) => UnmaskResponse;
}

export type SimulationOutcome =
  | { ok: true; result: SecAggResult; server: SecAggServer; survivors: string[] }
  | { ok: false; reason: string; stage: SecAggStage; server: SecAggServer };

export function simulatedSite(siteId: string, delta: NamedTensors, weight: number): SimulatedSite {
  return { siteId, identity: nacl.sign.keyPair(), delta, weight };
}

export async function simulateSecAgg(o: SimulationOptions): Promise<SimulationOutcome> {
  const identities = new Map(o.sites.map((s) => [s.siteId, s.identity.publicKey]));
  const identityOf = (id: string) => identities.get(id);
  const layout = layoutOf(o.sites[0].delta);
  const common = { ctx: o.ctx, params: o.params, sampledSites: o.sites.length, layout, identityOf };
  const server = new SecAggServer({ ...common, graphSeed: o.graphSeed ?? nacl.randomBytes(32), degree: o.degree, decode: o.decode });
  const sites = new Map(o.sites.map((s) => [s.siteId, new SecAggSite({ ...common, siteId: s.siteId, identity: s.identity })]));
  const inputs = new Map(o.sites.map((s) => [s.siteId, s]));
  const gone = new Set<string>();
  const answering = (stage: SecAggStage, ids: Iterable<string>) => {
    for (const id of o.drops?.[stage] ?? []) gone.add(id);
    return [...ids].filter((id) => !gone.has(id));
  };

  let stage: SecAggStage = 'setup';
  try {
    for (const id of answering(stage, sites.keys())) {
      const msg = sites.get(id)!.setup();
      o.onSetupKeys?.(msg);
      await server.receiveSetup(msg);
    }
    stage = 'share-keys';
    const shareRequests = server.shareKeysRequests();
    for (const id of answering(stage, shareRequests.keys())) server.receiveShares(await sites.get(id)!.shareKeys(shareRequests.get(id)!));
    stage = 'masked-upload';
    const uploadRequests = server.maskedUploadRequests();
    for (const id of answering(stage, uploadRequests.keys())) {
      const input = inputs.get(id)!;
      const msg = await sites.get(id)!.maskedUpload(uploadRequests.get(id)!, input.delta, input.weight);
      o.onMaskedUpload?.(msg);
      server.receiveMaskedUpload(msg);
    }
    stage = 'sign-survivors';
    const list = server.survivorListRequest();
    for (const id of answering(stage, list.survivors)) await server.receiveSurvivorSignature(sites.get(id)!.signSurvivors(list));
    stage = 'unmask';
    const unmaskRequests = server.unmaskRequests();
    for (const id of answering(stage, unmaskRequests.keys())) {
      const req = unmaskRequests.get(id)!;
      const res = await sites.get(id)!.unmask(o.tamperUnmaskRequest?.(id, req) ?? req);
      server.receiveUnmask(o.tamperUnmaskResponse?.(res) ?? res);
    }
    const result = await server.finish();
    return { ok: true, result, server, survivors: list.survivors };
  } catch (err) {
    if (isFedloraError(err, 'ROUND_ABORTED')) return { ok: false, reason: err.message, stage, server };
    throw err instanceof FedloraError ? err : new FedloraError('INTERNAL', `secure aggregation simulation: ${String(err)}`, { cause: err });
  }
}
