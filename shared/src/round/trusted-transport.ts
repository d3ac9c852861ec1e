// Round messages only from the pinned coordinator: a RoundTransport whose signed events (every coordinator → site
// round message and version:published; protocol/signed-messages.ts) reach the round handler only once the
// coordinator's signature on them verifies. A message that fails is never handled: one with an ack is answered with
// the error (UNTRUSTED_COORDINATOR), so the site neither accepts the round, nor trains, nor hands out a SecAgg share,
// and the site is told why through `refused`; one without (round:closed, version:published) is dropped.

import { ackError } from '../protocol/events';
import { isSignedServerEvent, verifyServerMessage, type SignedServerEvent } from '../protocol/signed-messages';
import type { CoordinatorTrust } from '../crypto/coordinator-trust';
import type { RoundListeners, RoundTransport } from './round-handler';

export function trustedTransport(
  transport: RoundTransport,
  trust: CoordinatorTrust,
  refused: (event: SignedServerEvent, error: unknown) => void,
): RoundTransport {
  return {
    on(event, listener) {
      if (!isSignedServerEvent(event)) return transport.on(event, listener);
      const checked = (raw: unknown, ack?: (reply: unknown) => void) => {
        try {
          verifyServerMessage(trust, event, raw);
        } catch (err) {
          refused(event, err);
          ack?.(ackError(err));
          return;
        }
        (listener as (raw: unknown, ack?: (reply: unknown) => void) => void)(raw, ack);
      };
      transport.on(event, checked as unknown as RoundListeners[typeof event]);
    },
    request: (event, payload) => transport.request(event, payload),
    get connected() {
      return transport.connected;
    },
  };
}
