// Site identity: an Ed25519 signing keypair (authentication, signatures) plus an X25519 box keypair
// (reserved for pairwise key agreement in SecAgg+). tweetnacl implements both; keys travel as base64 strings.

import nacl from 'tweetnacl';
import { FedloraError } from '../errors';
import { bytesEqual, fromBase64, toBase64 } from './bytes';

export interface KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

export interface SiteKeys {
  /** Ed25519: publicKey 32 bytes, secretKey 64 bytes (seed ‖ publicKey, tweetnacl's layout) */
  signing: KeyPair;
  /** X25519: both 32 bytes */
  box: KeyPair;
}

/** JSON-safe form of SiteKeys, for a key file (keep it private: it holds secret keys). */
export interface SerializedSiteKeys {
  v: 1;
  signingPublicKey: string;
  signingSecretKey: string;
  boxPublicKey: string;
  boxSecretKey: string;
}

/** What a coordinator registers for a site: public halves only. */
export interface PublicIdentity {
  signingPublicKey: string;
  boxPublicKey: string;
}

export const SIGN_PUBLIC_KEY_BYTES = nacl.sign.publicKeyLength; // 32
export const SIGN_SECRET_KEY_BYTES = nacl.sign.secretKeyLength; // 64
export const SIGNATURE_BYTES = nacl.sign.signatureLength; // 64
export const BOX_KEY_BYTES = nacl.box.publicKeyLength; // 32 (secret keys have the same length)
export const BOX_NONCE_BYTES = nacl.box.nonceLength; // 24

export function generateSiteKeys(): SiteKeys {
  return { signing: nacl.sign.keyPair(), box: nacl.box.keyPair() };
}

/** A fresh X25519 keypair, e.g. the coordinator's per-round key that upload envelopes are sealed to. */
export function generateBoxKeyPair(): KeyPair {
  return nacl.box.keyPair();
}

export function serializeSiteKeys(k: SiteKeys): SerializedSiteKeys {
  return {
    v: 1,
    signingPublicKey: toBase64(k.signing.publicKey),
    signingSecretKey: toBase64(k.signing.secretKey),
    boxPublicKey: toBase64(k.box.publicKey),
    boxSecretKey: toBase64(k.box.secretKey),
  };
}

export function publicIdentity(k: SiteKeys): PublicIdentity {
  return { signingPublicKey: toBase64(k.signing.publicKey), boxPublicKey: toBase64(k.box.publicKey) };
}

/**
 * Parses a key file's JSON value. Checks lengths and that each public key really belongs to its secret key,
 * so a hand-edited or mixed-up file fails here (CONFIG_INVALID) rather than as a signature error later.
 */
export function parseSiteKeys(json: unknown): SiteKeys {
  const bad = (why: string) => new FedloraError('CONFIG_INVALID', `site keys: ${why}`);
  if (typeof json !== 'object' || json === null) throw bad('expected an object');
  const o = json as Record<string, unknown>;
  if (o.v !== 1) throw bad(`unsupported version ${String(o.v)}`);
  const field = (name: keyof SerializedSiteKeys, len: number) => {
    const b = fromBase64(o[name], `site keys: ${name}`, 'CONFIG_INVALID');
    if (b.length !== len) throw bad(`${name} must be ${len} bytes, got ${b.length}`);
    return b;
  };
  const signingPublicKey = field('signingPublicKey', SIGN_PUBLIC_KEY_BYTES);
  const signingSecretKey = field('signingSecretKey', SIGN_SECRET_KEY_BYTES);
  const boxPublicKey = field('boxPublicKey', BOX_KEY_BYTES);
  const boxSecretKey = field('boxSecretKey', BOX_KEY_BYTES);
  if (!bytesEqual(nacl.sign.keyPair.fromSecretKey(signingSecretKey).publicKey, signingPublicKey))
    throw bad('signingPublicKey does not match signingSecretKey');
  if (!bytesEqual(nacl.box.keyPair.fromSecretKey(boxSecretKey).publicKey, boxPublicKey))
    throw bad('boxPublicKey does not match boxSecretKey');
  return {
    signing: { publicKey: signingPublicKey, secretKey: signingSecretKey },
    box: { publicKey: boxPublicKey, secretKey: boxSecretKey },
  };
}

/** Parses one base64 public key received from a peer (BAD_MESSAGE on a wrong encoding or length). */
export function parsePublicKey(b64: unknown, kind: 'signing' | 'box'): Uint8Array {
  const len = kind === 'signing' ? SIGN_PUBLIC_KEY_BYTES : BOX_KEY_BYTES;
  const b = fromBase64(b64, `${kind} public key`);
  if (b.length !== len)
    throw new FedloraError('BAD_MESSAGE', `${kind} public key must be ${len} bytes, got ${b.length}`);
  return b;
}

export function parsePublicIdentity(
  json: unknown,
): PublicIdentity & { signing: Uint8Array; box: Uint8Array } {
  if (typeof json !== 'object' || json === null)
    throw new FedloraError('BAD_MESSAGE', 'public identity: expected an object');
  const o = json as Record<string, unknown>;
  const signing = parsePublicKey(o.signingPublicKey, 'signing');
  const box = parsePublicKey(o.boxPublicKey, 'box');
  return { signingPublicKey: toBase64(signing), boxPublicKey: toBase64(box), signing, box };
}
