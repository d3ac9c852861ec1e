// Reconnection delays: capped exponential backoff with jitter, so that sites that lost the coordinator at the
// same moment do not all come back at the same moment ("Exponential Backoff And Jitter", AWS Architecture Blog 2015).
// Shared by the Node agent and the browser site.

export interface BackoffOptions {
  /** delay before the first retry, ms */
  baseMs: number;
  /** no delay exceeds this, ms */
  maxMs: number;
  /** growth per attempt */
  factor: number;
  /** fraction of the delay that is random: 0 = none, 0.5 = uniform in [0.5·d, d] */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 };

/** Delay before retry number `attempt` (0-based); `random` returns values in [0, 1). */
export function backoffDelay(attempt: number, o: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  // the cap is applied before the power overflows to Infinity for long outages
  const exp = Math.min(o.maxMs, o.baseMs * Math.pow(o.factor, Math.min(attempt, 64)));
  return Math.round(exp * (1 - o.jitter + o.jitter * random()));
}

/** Stateful helper for a reconnect loop: next() gives the next delay, reset() after a successful session. */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly o: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    return backoffDelay(this.attempt++, this.o, this.random);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
