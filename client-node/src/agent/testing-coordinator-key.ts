// For tests with an in-test coordinator: a coordinator signing key that answers 'coordinator:hello' and signs the
// manifest, round messages and adapter versions as the real one does (coordinator/src/coordinator-key.ts), so that
// the agent's pinned-trust checks run in those tests too.

import nacl from 'tweetnacl';
import { coordinatorFingerprint, signCoordinatorMessage, signHello } from '@fedlora/shared/crypto/coordinator-trust.ts';
import { parseClientRequest } from '@fedlora/shared/protocol/events.ts';
import { signServerMessage, type SignedServerEvent, type SignFn } from '@fedlora/shared/protocol/signed-messages.ts';

export async function testCoordinatorKey(coordinatorId: string) {
  const k = nacl.sign.keyPair();
  const sign: SignFn = (context, body) => signCoordinatorMessage(context, body, k.secretKey);
  return {
    fingerprint: await coordinatorFingerprint(k.publicKey),
    sign,
    /** the reply to 'coordinator:hello' */
    hello(raw: unknown) {
      const r = parseClientRequest('coordinator:hello', raw);
      return { coordinatorId, signingPublicKey: k.publicKey, signature: signHello(r.nonce, coordinatorId, k.secretKey) };
    },
    signed: <T extends object>(event: SignedServerEvent, msg: T): T => signServerMessage(event, msg, sign),
    versionSignature: (versionId: string, adapterSha256: string) => sign('adapter:version', { versionId, adapterSha256 }),
  };
}
