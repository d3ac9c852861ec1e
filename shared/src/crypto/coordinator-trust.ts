// Pinned trust in the coordinator (issue 21): the coordinator holds a long-term Ed25519 signing key; its fingerprint
// travels to each site out of band in the join token; the site then accepts a coordinator only if it proves that key
// (a signed answer to the site's fresh nonce, 'coordinator:hello') and accepts the manifest, round messages and
// adapter versions only with the coordinator's signature on them. So a network attacker or a swapped coordinator
// cannot make a site train from another base model or adapter: it would need the coordinator's secret key.
// Like envelope.ts, every signature covers a domain-separation tag, the context (event name) and the round id, so a
// signature made for one message can never verify as another kind.

import { FedloraError } from '../errors';
import { concatLengthPrefixed, utf8Bytes } from './bytes';
import { canonicalBytes, portableDigest, type Digest } from './canonical';
import { signDetached, verifyDetached } from './ed25519';
import { sha256 } from './hash';
import { SIGNATURE_BYTES, SIGN_PUBLIC_KEY_BYTES } from './keys';
import { DEFAULT_PROJECT_ID } from '../protocol/project-id';

const HELLO_TAG = utf8Bytes('fedlora/coordinator-hello/v1');
const MESSAGE_TAG = utf8Bytes('fedlora/coordinator-message/v1');
export const HELLO_NONCE_BYTES = 32;

/** What a coordinator signature can be made for; each is its own domain. */
export type SignedContext =
  | 'manifest'
  | 'round:configure'
  | 'round:train'
  | 'round:evaluate'
  | 'version:published'
  | 'round:closed'
  /** the secure-aggregation exchanges: a forged survivor list or unmask request must not reach a site's shares */
  | 'secagg:setup'
  | 'secagg:share-keys'
  | 'secagg:survivors'
  | 'secagg:unmask'
  /** a version's (versionId, adapterSha256), sent with every 'adapter:fetch' and 'adapter:chunk' reply */
  | 'adapter:version';

// ---- fingerprint ----

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
/** 160 bits of SHA-256: a forger must find a key whose hash starts so, 2^160 work */
const FINGERPRINT_BYTES = 20;
const FINGERPRINT_CHARS = (FINGERPRINT_BYTES * 8) / 5; // 32

function base32(bytes: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out; // 20 bytes = 160 bits: no partial group
}

/** Four-character groups, short enough to read aloud over the phone: "k7qm-2xd4-…" (8 groups). */
function grouped(compact: string): string {
  return compact.match(/.{4}/g)?.join('-') ?? compact;
}

/** The fingerprint of a coordinator signing key: base32 of the first 160 bits of SHA-256(public key), grouped. */
export async function coordinatorFingerprint(publicKey: Uint8Array): Promise<string> {
  if (publicKey.length !== SIGN_PUBLIC_KEY_BYTES)
    throw new FedloraError('BAD_MESSAGE', `a coordinator signing key is ${SIGN_PUBLIC_KEY_BYTES} bytes, not ${publicKey.length}`);
  return grouped(base32((await sha256(publicKey)).subarray(0, FINGERPRINT_BYTES)));
}

/** A fingerprint as a person may type it (any case, with or without dashes or spaces), in its grouped form. */
export function parseFingerprint(text: string, what = 'coordinator fingerprint'): string {
  const compact = text.toLowerCase().replace(/[\s:-]/g, '');
  if (compact.length !== FINGERPRINT_CHARS || ![...compact].every((c) => BASE32.includes(c)))
    throw new FedloraError(
      'CONFIG_INVALID',
      `${what} must be ${FINGERPRINT_CHARS} base32 characters (a-z, 2-7), as the coordinator prints it, e.g. ` +
        `"${grouped('a'.repeat(FINGERPRINT_CHARS))}"`,
    );
  return grouped(compact);
}

/** The fingerprint without dashes, as it is appended to a join token. */
export function compactFingerprint(fingerprint: string): string {
  return parseFingerprint(fingerprint).replace(/-/g, '');
}

// ---- signing (coordinator) ----

function roundIdOf(body: unknown): string {
  const id = (body as { roundId?: unknown } | null)?.roundId;
  return typeof id === 'string' ? id : '';
}

/** The bytes a coordinator signature covers: tag, context, round id (empty outside a round), canonical body. */
/**
 * What the coordinator signs for (context, body) in `project`. A project other than the default adds its id, so a
 * message signed for one project's sites does not verify at another's (one coordinator key serves every project); the
 * default project's bytes are what they were before projects, so its sites need nothing new.
 */
export function signedMessageBytes(
  context: SignedContext,
  body: unknown,
  digest: Digest = portableDigest,
  project: string = DEFAULT_PROJECT_ID,
): Uint8Array {
  return concatLengthPrefixed([
    MESSAGE_TAG,
    utf8Bytes(context),
    utf8Bytes(roundIdOf(body)),
    canonicalBytes(body, digest),
    ...(project === DEFAULT_PROJECT_ID ? [] : [utf8Bytes(`project:${project}`)]),
  ]);
}

export function signCoordinatorMessage(
  context: SignedContext,
  body: unknown,
  signingSecretKey: Uint8Array,
  digest: Digest = portableDigest,
  project: string = DEFAULT_PROJECT_ID,
): Uint8Array {
  return signDetached(signedMessageBytes(context, body, digest, project), signingSecretKey);
}

function helloBytes(coordinatorId: string, nonce: Uint8Array): Uint8Array {
  return concatLengthPrefixed([HELLO_TAG, utf8Bytes(coordinatorId), nonce]);
}

/** The coordinator's proof that it holds its signing key, over the site's fresh nonce and its own id. */
export function signHello(nonce: Uint8Array, coordinatorId: string, signingSecretKey: Uint8Array): Uint8Array {
  return signDetached(helloBytes(coordinatorId, nonce), signingSecretKey);
}

// ---- verifying (site) ----

/** A coordinator whose key the site has checked; verifies everything it signs. */
export class CoordinatorTrust {
  constructor(
    readonly coordinatorId: string,
    readonly publicKey: Uint8Array,
    /** grouped form, as the coordinator prints it */
    readonly fingerprint: string,
    /** the project the site belongs to (signedMessageBytes) */
    readonly project: string = DEFAULT_PROJECT_ID,
  ) {}

  /** UNTRUSTED_COORDINATOR unless `signature` is the coordinator's over (context, body). */
  verify(context: SignedContext, body: unknown, signature: Uint8Array | null | undefined): void {
    const round = roundIdOf(body);
    const what = `${context}${round ? ` (round ${round})` : ''}`;
    if (!signature)
      throw new FedloraError(
        'UNTRUSTED_COORDINATOR',
        `unsigned ${what}: coordinator ${this.fingerprint} must sign it; refusing it`,
      );
    if (signature.length !== SIGNATURE_BYTES || !verifyDetached(signedMessageBytes(context, body, portableDigest, this.project), signature, this.publicKey))
      throw new FedloraError(
        'UNTRUSTED_COORDINATOR',
        `bad signature on ${what}: it was not signed by coordinator ${this.fingerprint}; refusing it`,
      );
  }
}

/**
 * Checks a coordinator's answer to the site's hello: its key must have the pinned fingerprint (null: none pinned yet,
 * the key presented is taken and the caller records its fingerprint) and it must have signed the site's nonce.
 */
export async function trustCoordinator(
  hello: { coordinatorId: string; signingPublicKey: Uint8Array; signature: Uint8Array },
  nonce: Uint8Array,
  pinned: string | null,
  /** the project whose namespace the site talks on: only what the coordinator signed for it verifies */
  project: string = DEFAULT_PROJECT_ID,
): Promise<CoordinatorTrust> {
  const presented = await coordinatorFingerprint(hello.signingPublicKey);
  if (pinned !== null && parseFingerprint(pinned) !== presented)
    throw new FedloraError(
      'UNTRUSTED_COORDINATOR',
      `coordinator fingerprint mismatch: expected ${parseFingerprint(pinned)}, the coordinator presented ${presented}. ` +
        'This is not the coordinator the join token was made for (a swapped coordinator or an attacker in the path); ' +
        'refusing to enroll or train. If the coordinator really changed its key, ask its admin for a new join token',
    );
  if (!verifyDetached(helloBytes(hello.coordinatorId, nonce), hello.signature, hello.signingPublicKey))
    throw new FedloraError(
      'UNTRUSTED_COORDINATOR',
      `bad signature on coordinator:hello: the coordinator presented key ${presented} but did not prove it holds it`,
    );
  return new CoordinatorTrust(hello.coordinatorId, hello.signingPublicKey, presented, project);
}

