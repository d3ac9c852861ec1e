// Which project (issue 21) a site belongs to, as both ends name it: the default project's id, and the project a
// socket.io namespace serves ('/' the default, '/projects/<id>' another; join-token.ts projectNamespace maps back).
// Its own module because the join token (protocol/join-token.ts) and the coordinator's signatures
// (crypto/coordinator-trust.ts) both need it, and the token already depends on the signatures.

/** the project a token without '@project', and the namespace '/', belong to */
export const DEFAULT_PROJECT_ID = 'default';

/** The project whose sites talk on namespace `nsp` (socket.io-client's Socket.nsp); the default for '/' or none. */
export function projectOfNamespace(nsp: string | undefined): string {
  const m = /^\/projects\/([a-z][a-z0-9-]{0,31})$/.exec(nsp ?? '/');
  return m ? m[1] : DEFAULT_PROJECT_ID;
}
