// A round request (an upload) that the coordinator answers BUSY is sent again, with backoff, while the round is
// still open. BUSY means "not now, shortly": the coordinator is holding its limit of large parted uploads, or, in a
// cluster, the process holding this site's socket could not reach the leader in time (coordinator/src/cluster). An
// update trained for minutes must not be dropped for that. A resend after BUSY that is refused as REPLAY proves an
// earlier attempt arrived (the coordinator saw its nonce or the site's delivery) and counts as delivered.

import { isFedloraError } from '../errors';

export interface BusyRetryOptions {
  /** attempts in all, the first included (default 5) */
  attempts?: number;
  /** the delay before the first resend, doubled each time and jittered ×0.5–1.5 (default 500 ms) */
  baseDelayMs?: number;
  /** false once the round is closed, the connection lost or the site leaving: stop resending */
  stillWanted: () => boolean;
  /** told before each resend */
  onRetry?: (attempt: number, error: unknown) => void;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export type BusyRetryOutcome<T> = { reply: T; confirmedByReplay: false } | { reply: null; confirmedByReplay: true };

export async function sendWithBusyRetry<T>(send: () => Promise<T>, o: BusyRetryOptions): Promise<BusyRetryOutcome<T>> {
  const attempts = o.attempts ?? 5;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = o.random ?? Math.random;
  let sawBusy = false;
  for (let attempt = 1; ; attempt++) {
    try {
      return { reply: await send(), confirmedByReplay: false };
    } catch (err) {
      if (sawBusy && isFedloraError(err) && err.code === 'REPLAY') return { reply: null, confirmedByReplay: true };
      if (!(isFedloraError(err) && err.code === 'BUSY') || attempt >= attempts || !o.stillWanted()) throw err;
      sawBusy = true;
      o.onRetry?.(attempt, err);
      await sleep((o.baseDelayMs ?? 500) * 2 ** (attempt - 1) * (0.5 + random()));
      if (!o.stillWanted()) throw err;
    }
  }
}
