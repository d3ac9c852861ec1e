// Password and API-token hashing for console users, with node:crypto only (no native dependency). Passwords: scrypt
// with a per-user random salt and OWASP's scrypt parameters N=2^15, r=8, p=3 (32 MiB, the same work as N=2^17, p=1
// in a quarter of the memory; Password Storage Cheat Sheet). The parameters are stored with the hash, so raising them
// later keeps old hashes verifiable. API tokens are 256 random bits: a SHA-256 is enough to store them (nothing to
// brute-force), and it lets the coordinator find a token's user by an index lookup.

import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { FedloraError } from '@fedlora/shared/errors.ts';

export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 256;
const COST = { N: 2 ** 15, r: 8, p: 3 };
const KEY_BYTES = 32;
const SALT_BYTES = 16;

function derive(password: string, salt: Buffer, o: { N: number; r: number; p: number }): Promise<Buffer> {
  const options: ScryptOptions = { N: o.N, r: o.r, p: o.p, maxmem: 256 * o.N * o.r + 1024 * 1024 };
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFC'), salt, KEY_BYTES, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** `scrypt$N$r$p$<salt b64>$<key b64>` for a new password (BAD_MESSAGE when it is too short or too long). */
export async function hashPassword(password: string): Promise<string> {
  if (password.length < PASSWORD_MIN || password.length > PASSWORD_MAX)
    throw new FedloraError('BAD_MESSAGE', `password must be ${PASSWORD_MIN}-${PASSWORD_MAX} characters`);
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, COST);
  return ['scrypt', COST.N, COST.r, COST.p, salt.toString('base64'), key.toString('base64')].join('$');
}

/** A stored hash of no password: verifying against it costs what a real check costs (unknown users take as long). */
const DUMMY = `scrypt$${COST.N}$${COST.r}$${COST.p}$${Buffer.alloc(SALT_BYTES).toString('base64')}$${Buffer.alloc(KEY_BYTES).toString('base64')}`;

/**
 * true when `password` matches `stored` (constant-time compare). With `stored` null (no such user, or no password)
 * it still derives a key, so the answer takes as long as for a real user, and is false.
 */
export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  const parts = (stored ?? DUMMY).split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt')
    throw new FedloraError('FILE_CORRUPT', 'a stored password hash is not scrypt$N$r$p$salt$key');
  const [N, r, p] = parts.slice(1, 4).map(Number);
  const expected = Buffer.from(parts[5], 'base64');
  const key = await derive(password.slice(0, PASSWORD_MAX), Buffer.from(parts[4], 'base64'), { N, r, p });
  return stored !== null && key.length === expected.length && timingSafeEqual(key, expected);
}

/** A new API token for `username`: `fedlora_<username>.<32 random bytes, base64url>`, shown once. */
export function newUserToken(username: string): string {
  return `fedlora_${username}.${randomBytes(32).toString('base64url')}`;
}

/** What is stored of an API token: its SHA-256, hex. */
export function hashUserToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
