// The coordinator's long-term Ed25519 signing key (issue 21, pinned trust): made on first start and kept with the
// coordinator's identity (coordinator.json, mode 600, or the shared database, so every process of a cluster signs
// with the same key); its fingerprint goes into every join token, and sites accept only what it signs
// (shared/src/crypto/coordinator-trust.ts). The secret key is never logged: only the fingerprint is printed.

import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { bytesEqual, fromBase64, toBase64 } from '@fedlora/shared/crypto/bytes.ts';
import type { KeyPair } from '@fedlora/shared/crypto/keys.ts';
import { signDetached } from '@fedlora/shared/crypto/ed25519.ts';
import {
  coordinatorFingerprint,
  signedMessageBytes,
  signHello,
  type SignedContext,
} from '@fedlora/shared/crypto/coordinator-trust.ts';
import type { Digest } from '@fedlora/shared/crypto/canonical.ts';

/** How the key is stored with the identity record (base64, tweetnacl's layout: the secret key is seed ‖ public key). */
export interface SigningKeyRecord {
  publicKey: string;
  secretKey: string;
}

export function newSigningKeyRecord(): SigningKeyRecord {
  const k = nacl.sign.keyPair();
  return { publicKey: toBase64(k.publicKey), secretKey: toBase64(k.secretKey) };
}

/** The stored key, checked: FILE_CORRUPT (naming where, never the key) when it is malformed or its halves disagree. */
export function parseSigningKeyRecord(rec: unknown, where: string): KeyPair {
  const r = rec as Partial<SigningKeyRecord> | null;
  const bad = (why: string) => new FedloraError('FILE_CORRUPT', `${where}: the coordinator signing key ${why}`);
  if (typeof r !== 'object' || r === null) throw bad('is not an object');
  const publicKey = fromBase64(r.publicKey, 'signing public key', 'FILE_CORRUPT');
  const secretKey = fromBase64(r.secretKey, 'signing secret key', 'FILE_CORRUPT');
  if (publicKey.length !== nacl.sign.publicKeyLength || secretKey.length !== nacl.sign.secretKeyLength) throw bad('has the wrong size');
  if (!bytesEqual(nacl.sign.keyPair.fromSecretKey(secretKey).publicKey, publicKey)) throw bad('halves do not belong together');
  return { publicKey, secretKey };
}

/** signed bytes → signature, per round: one signature serves every site sent the same message */
const SIGNATURE_CACHE_LIMIT = 4096;
/** binary fields at least this large have their digest cached per array (a round's adapter, sent to every site) */
const DIGEST_CACHE_MIN_BYTES = 4096;

/** Signs for the coordinator. Its secret key stays inside: toJSON and inspection show the fingerprint only. */
export class CoordinatorSigner {
  private readonly digests = new WeakMap<Uint8Array, Uint8Array>();
  private readonly signatures = new Map<string, Uint8Array>();
  readonly #secretKey: Uint8Array;

  private constructor(
    keys: KeyPair,
    readonly publicKey: Uint8Array,
    /** grouped base32, as printed at start and carried by join tokens */
    readonly fingerprint: string,
  ) {
    this.#secretKey = keys.secretKey;
  }

  static async create(keys: KeyPair): Promise<CoordinatorSigner> {
    return new CoordinatorSigner(keys, keys.publicKey, await coordinatorFingerprint(keys.publicKey));
  }

  /** node:crypto's SHA-512, the same digest the sites compute with tweetnacl (crypto/canonical.ts) */
  private readonly digest: Digest = (b) => {
    const cached = this.digests.get(b);
    if (cached) return cached;
    const d = new Uint8Array(createHash('sha512').update(b).digest());
    if (b.length >= DIGEST_CACHE_MIN_BYTES) this.digests.set(b, d);
    return d;
  };

  /**
   * The coordinator's signature over (context, body) for `project`'s sites (another project's do not accept it):
   * cached, since a round sends the same body to many sites.
   */
  sign = (context: SignedContext, body: unknown, project?: string): Uint8Array => {
    const bytes = signedMessageBytes(context, body, this.digest, project);
    const key = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
    let sig = this.signatures.get(key);
    if (!sig) {
      if (this.signatures.size >= SIGNATURE_CACHE_LIMIT) this.signatures.clear();
      sig = signDetached(bytes, this.#secretKey);
      this.signatures.set(key, sig);
    }
    return sig;
  };

  /** The answer to a site's 'coordinator:hello'. */
  hello(nonce: Uint8Array, coordinatorId: string): Uint8Array {
    return signHello(nonce, coordinatorId, this.#secretKey);
  }

  toJSON(): { fingerprint: string } {
    return { fingerprint: this.fingerprint };
  }
}
