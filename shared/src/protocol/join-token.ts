// The join token a coordinator admin hands to a site: the one-time enrollment secret the coordinator keeps the hash of,
// then '~' and the coordinator's signing-key fingerprint without dashes (crypto/coordinator-trust.ts), e.g.
// "hospital-a.Xk3…Q~k7qm2xd4…". The site pins the fingerprint and sends only the secret part in 'site:enroll'.
// '~' appears neither in a site id nor in base64url, so a token from before pinning (no '~') is told apart; the site
// refuses it unless the fingerprint is given separately (fedlora-site join --coordinator-fingerprint).
// A token of a project other than the coordinator's default one (issue 21) ends in '@' and the project id, e.g.
// "hospital-a.Xk3…Q~k7qm2xd4…@triage": the site then connects to that project's namespace ('/projects/triage').

import { FedloraError } from '../errors';
import { compactFingerprint, parseFingerprint } from '../crypto/coordinator-trust';
import { DEFAULT_PROJECT_ID } from './project-id';

const SEPARATOR = '~';
const PROJECT_SEPARATOR = '@';
/** a project id as the coordinator allows it (coordinator/src/projects/project-id.ts) */
const PROJECT_ID = /^[a-z][a-z0-9-]{0,31}$/;
/** the project a token without '@project' enrolls into */
export { DEFAULT_PROJECT_ID };

export interface JoinToken {
  /** the one-time secret, as 'site:enroll' sends it */
  secret: string;
  /** grouped fingerprint of the coordinator's signing key; null for a token from before pinning */
  fingerprint: string | null;
  /** the project the site enrolls into; null: the coordinator's default project */
  project: string | null;
}

/** The join token for `secret` pinned to the coordinator with `fingerprint`, naming `project` unless it is the default. */
export function pinnedJoinToken(secret: string, fingerprint: string, project: string = DEFAULT_PROJECT_ID): string {
  const tail = project === DEFAULT_PROJECT_ID ? '' : `${PROJECT_SEPARATOR}${project}`;
  return `${secret}${SEPARATOR}${compactFingerprint(fingerprint)}${tail}`;
}

/** The socket.io namespace of a project's sites: '/' for the default project, '/projects/<id>' for the others. */
export function projectNamespace(project: string | null): string {
  return project === null || project === DEFAULT_PROJECT_ID ? '/' : `/projects/${project}`;
}

/** Splits a join token as pasted by a person (surrounding spaces are dropped); CONFIG_INVALID for a bad fingerprint. */
export function parseJoinToken(text: string): JoinToken {
  const t = text.trim();
  const at = t.lastIndexOf(SEPARATOR);
  if (at < 0) return { secret: t, fingerprint: null, project: null };
  const secret = t.slice(0, at);
  if (!secret) throw new FedloraError('CONFIG_INVALID', 'the join token has no secret before its coordinator fingerprint');
  const [fingerprint, project, ...more] = t.slice(at + 1).split(PROJECT_SEPARATOR);
  if (project !== undefined && (more.length > 0 || !PROJECT_ID.test(project)))
    throw new FedloraError('CONFIG_INVALID', "the join token's project (after '@') is not a project id: lowercase letters, digits and -");
  return {
    secret,
    fingerprint: parseFingerprint(fingerprint, "the join token's coordinator fingerprint"),
    project: project === undefined || project === DEFAULT_PROJECT_ID ? null : project,
  };
}
