// Which coordinator messages carry the coordinator's signature, and where (docs/API.md "Signed coordinator messages"):
// every round message (configure, train, evaluate, closed, the secure-aggregation exchanges) and version:published carry it in a `coordinatorSignature` field beside their body; the manifest
// in auth:prove's `manifestSignature`; an adapter version's (versionId, adapterSha256) in every 'adapter:fetch' and
// 'adapter:chunk' reply's `versionSignature`. The site checks each with its CoordinatorTrust before using it.

import { FedloraError } from '../errors';
import type { CoordinatorTrust, SignedContext } from '../crypto/coordinator-trust';
import type { Manifest } from './manifest';
import { parseServerMessage, SIGNATURE_FIELD, type ServerEventName, type ServerMessage } from './events';

/**
 * The coordinator → site messages a site accepts only signed: all of them. round:closed only informs, but a forged one
 * would end a site's round early; a forged SecAgg exchange (a survivor list, an unmask request) would ask a site for
 * shares. The SecAgg bodies are packed (protocol/packed.ts): the signature covers the packed bytes.
 */
export const SIGNED_SERVER_EVENTS = [
  'round:configure',
  'round:train',
  'round:evaluate',
  'round:closed',
  'secagg:setup',
  'secagg:share-keys',
  'secagg:survivors',
  'secagg:unmask',
  'version:published',
] as const;
export type SignedServerEvent = (typeof SIGNED_SERVER_EVENTS)[number];

export function isSignedServerEvent(event: string): event is SignedServerEvent {
  return (SIGNED_SERVER_EVENTS as readonly string[]).includes(event);
}

/** The coordinator's signing, as the coordinator offers it to its socket edge. */
export type SignFn = (context: SignedContext, body: unknown) => Uint8Array;

/** `msg` with the coordinator's signature over it. */
export function signServerMessage<T extends object>(event: SignedServerEvent, msg: T, sign: SignFn): T {
  return { ...msg, [SIGNATURE_FIELD]: sign(event, msg) };
}

function signatureOf(raw: unknown): Uint8Array | null {
  const s = (raw as Record<string, unknown> | null)?.[SIGNATURE_FIELD];
  if (s instanceof Uint8Array) return s;
  if (s instanceof ArrayBuffer) return new Uint8Array(s);
  return null;
}

/**
 * The message's validated body, once its signature is the trusted coordinator's: BAD_MESSAGE for a malformed body,
 * UNTRUSTED_COORDINATOR for a missing or wrong signature. The body is checked as parsed, so field order and binary
 * types on the wire do not matter (crypto/canonical.ts).
 */
export function verifyServerMessage<E extends ServerEventName & SignedServerEvent>(
  trust: CoordinatorTrust,
  event: E,
  raw: unknown,
): ServerMessage<E> {
  const body = parseServerMessage(event, raw);
  trust.verify(event, body, signatureOf(raw));
  return body;
}

/** UNTRUSTED_COORDINATOR unless the manifest carries the trusted coordinator's signature. */
export function verifyManifest(trust: CoordinatorTrust, manifest: Manifest, signature: Uint8Array | undefined): void {
  trust.verify('manifest', manifest, signature);
}

/** The signed part of an adapter version: what a site checks the assembled bytes against. */
export function adapterVersionBody(v: { versionId: string; adapterSha256: string }): { versionId: string; adapterSha256: string } {
  return { versionId: v.versionId, adapterSha256: v.adapterSha256 };
}

/** UNTRUSTED_COORDINATOR unless the coordinator signed this (versionId, adapterSha256). */
export function verifyAdapterVersion(
  trust: CoordinatorTrust,
  v: { versionId: string; adapterSha256: string; versionSignature?: Uint8Array },
): void {
  if (!v.versionId || !v.adapterSha256) throw new FedloraError('BAD_MESSAGE', 'an adapter version needs its id and hash');
  trust.verify('adapter:version', adapterVersionBody(v), v.versionSignature);
}
