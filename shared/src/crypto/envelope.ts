// Sealed, signed upload envelopes: nacl.box (X25519 + XSalsa20-Poly1305) to the coordinator's per-round key
// from a fresh ephemeral keypair, then an Ed25519 signature by the site over everything (encrypt-then-sign).
// The ephemeral key means only the holder of the round's secret key can decrypt, not even the sender later.
// Note: nacl.box has no associated data, so a site could re-sign another site's ciphertext as its own;
// the receiver must therefore check that the decrypted payload names the authenticated site (decodeUpdate's
// `expect.siteId` does) and reject repeated payload nonces.

import nacl from 'tweetnacl';
import { z } from 'zod';
import { FedloraError } from '../errors';
import { LIMITS } from '../protocol/limits';
import { bytesSchema, IdSchema, parseWith } from '../protocol/schemas';
import { bytesEqual, concatLengthPrefixed, utf8Bytes } from './bytes';
import { signDetached, verifyDetached } from './ed25519';
import { BOX_KEY_BYTES, BOX_NONCE_BYTES, SIGNATURE_BYTES, SIGN_PUBLIC_KEY_BYTES, type KeyPair } from './keys';

/** Domain separation: a signature made for an envelope can never verify as an auth challenge, and vice versa. */
const ENVELOPE_TAG = utf8Bytes('fedlora/envelope/v1');
const CHALLENGE_TAG = utf8Bytes('fedlora/auth-challenge/v1');
export const CHALLENGE_BYTES = 32;

export const EnvelopeSchema = z
  .object({
    v: z.literal(1),
    roundId: IdSchema,
    /** the sender's Ed25519 public key, a hint only: verification uses the key registered for the site */
    sitePublicKey: bytesSchema({ length: SIGN_PUBLIC_KEY_BYTES }).optional(),
    ephemeralPublicKey: bytesSchema({ length: BOX_KEY_BYTES }),
    nonce: bytesSchema({ length: BOX_NONCE_BYTES }),
    ciphertext: bytesSchema({ max: LIMITS.maxFrameBytes + nacl.box.overheadLength }),
    signature: bytesSchema({ length: SIGNATURE_BYTES }),
  })
  .strict();
export type Envelope = z.output<typeof EnvelopeSchema>;

/** Validates an envelope received from a peer (BAD_MESSAGE on any wrong field). */
export function parseEnvelope(x: unknown): Envelope {
  return parseWith(EnvelopeSchema, x, 'envelope');
}

function signedBytes(
  e: Pick<Envelope, 'roundId' | 'ephemeralPublicKey' | 'nonce' | 'ciphertext'>,
  recipient: Uint8Array,
) {
  return concatLengthPrefixed([
    ENVELOPE_TAG,
    utf8Bytes(e.roundId),
    recipient,
    e.ephemeralPublicKey,
    e.nonce,
    e.ciphertext,
  ]);
}

export interface SealOptions {
  roundId: string;
  /** the coordinator's X25519 public key for this round */
  recipientBoxPublicKey: Uint8Array;
  /** the site's Ed25519 keypair */
  signing: KeyPair;
  /** attach the sender's public key as a hint (default true) */
  includeSitePublicKey?: boolean;
}

export function sealAndSign(payload: Uint8Array, o: SealOptions): Envelope {
  if (o.recipientBoxPublicKey.length !== BOX_KEY_BYTES)
    throw new FedloraError('BAD_MESSAGE', `recipient box key must be ${BOX_KEY_BYTES} bytes`);
  const ephemeral = nacl.box.keyPair();
  const nonce = nacl.randomBytes(BOX_NONCE_BYTES); // fresh per message; random 24 bytes never collide in practice
  const ciphertext = nacl.box(payload, nonce, o.recipientBoxPublicKey, ephemeral.secretKey);
  ephemeral.secretKey.fill(0); // nobody, the sender included, needs it again
  const body = { roundId: o.roundId, ephemeralPublicKey: ephemeral.publicKey, nonce, ciphertext };
  const signature = signDetached(signedBytes(body, o.recipientBoxPublicKey), o.signing.secretKey);
  return {
    v: 1,
    ...body,
    ...(o.includeSitePublicKey === false ? {} : { sitePublicKey: o.signing.publicKey }),
    signature,
  };
}

export interface OpenOptions {
  /** the Ed25519 key registered for the authenticated site */
  expectedSigningPublicKey: Uint8Array;
  /** the coordinator's X25519 secret key for this round */
  recipientSecretKey: Uint8Array;
  /** when given, an envelope for another round fails with WRONG_ROUND */
  expectedRoundId?: string;
}

/**
 * Verifies, then decrypts. Order matters: the signature is checked before any decryption work, so an
 * unauthenticated peer cannot use the coordinator as a decryption oracle.
 */
export function openAndVerify(envelope: unknown, o: OpenOptions): Uint8Array {
  const e = parseEnvelope(envelope);
  if (o.expectedRoundId !== undefined && e.roundId !== o.expectedRoundId)
    throw new FedloraError('WRONG_ROUND', 'envelope is for another round');
  if (e.sitePublicKey && !bytesEqual(e.sitePublicKey, o.expectedSigningPublicKey))
    throw new FedloraError('BAD_SIGNATURE', "envelope was signed by another key than the site's");
  const recipient = publicKeyOf(o.recipientSecretKey);
  if (!verifyDetached(signedBytes(e, recipient), e.signature, o.expectedSigningPublicKey))
    throw new FedloraError('BAD_SIGNATURE', 'envelope signature does not verify');
  const payload = nacl.box.open(e.ciphertext, e.nonce, e.ephemeralPublicKey, o.recipientSecretKey);
  if (!payload) throw new FedloraError('DECRYPT_FAILED', "envelope does not decrypt with this round's key");
  return payload;
}

// the round's public key per secret key object: a coordinator opens every upload of a round with the same one, and
// deriving it is an X25519 scalar multiplication (~0.6 ms in tweetnacl)
const recipientPublicKeys = new WeakMap<Uint8Array, Uint8Array>();
function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  let pk = recipientPublicKeys.get(secretKey);
  if (!pk) {
    pk = nacl.box.keyPair.fromSecretKey(secretKey).publicKey;
    recipientPublicKeys.set(secretKey, pk);
  }
  return pk;
}

/** 32 random bytes for the coordinator to send to a connecting site. */
export function createChallenge(): Uint8Array {
  return nacl.randomBytes(CHALLENGE_BYTES);
}

function challengeBytes(challenge: Uint8Array, siteId: string, coordinatorId: string): Uint8Array {
  return concatLengthPrefixed([CHALLENGE_TAG, utf8Bytes(coordinatorId), utf8Bytes(siteId), challenge]);
}

/**
 * The site proves it holds its signing key. Binding the coordinator id and site id means a signature
 * relayed to another coordinator, or claimed for another site, does not verify.
 */
export function signChallenge(
  challenge: Uint8Array,
  ctx: { siteId: string; coordinatorId: string },
  signingSecretKey: Uint8Array,
): Uint8Array {
  return signDetached(challengeBytes(challenge, ctx.siteId, ctx.coordinatorId), signingSecretKey);
}

export function verifyChallenge(
  challenge: Uint8Array,
  ctx: { siteId: string; coordinatorId: string },
  signature: Uint8Array,
  signingPublicKey: Uint8Array,
): boolean {
  if (challenge.length !== CHALLENGE_BYTES || signature.length !== SIGNATURE_BYTES) return false;
  if (signingPublicKey.length !== SIGN_PUBLIC_KEY_BYTES) return false;
  return verifyDetached(
    challengeBytes(challenge, ctx.siteId, ctx.coordinatorId),
    signature,
    signingPublicKey,
  );
}
