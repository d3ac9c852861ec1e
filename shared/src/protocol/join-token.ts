// The join token a coordinator admin hands to a site: the one-time enrollment secret the coordinator keeps the hash of,
// then '~' and the coordinator's signing-key fingerprint without dashes (crypto/coordinator-trust.ts), e.g.
// "hospital-a.Xk3…Q~k7qm2xd4…". The site pins the fingerprint and sends only the secret part in 'site:enroll'.
// '~' appears neither in a site id nor in base64url, so a token from before pinning (no '~') is told apart; the site
// refuses it unless the fingerprint is given separately (fedlora-site join --coordinator-fingerprint).

import { FedloraError } from '../errors';
import { compactFingerprint, parseFingerprint } from '../crypto/coordinator-trust';

const SEPARATOR = '~';

export interface JoinToken {
  /** the one-time secret, as 'site:enroll' sends it */
  secret: string;
  /** grouped fingerprint of the coordinator's signing key; null for a token from before pinning */
  fingerprint: string | null;
}

/** The join token for `secret` pinned to the coordinator with `fingerprint`. */
export function pinnedJoinToken(secret: string, fingerprint: string): string {
  return `${secret}${SEPARATOR}${compactFingerprint(fingerprint)}`;
}

/** Splits a join token as pasted by a person (surrounding spaces are dropped); CONFIG_INVALID for a bad fingerprint. */
export function parseJoinToken(text: string): JoinToken {
  const t = text.trim();
  const at = t.lastIndexOf(SEPARATOR);
  if (at < 0) return { secret: t, fingerprint: null };
  const secret = t.slice(0, at);
  if (!secret) throw new FedloraError('CONFIG_INVALID', 'the join token has no secret before its coordinator fingerprint');
  return { secret, fingerprint: parseFingerprint(t.slice(at + 1), "the join token's coordinator fingerprint") };
}
