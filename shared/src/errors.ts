// The one error type of fedlora: a closed set of codes that callers (and remote peers) can switch on.

export type FedloraErrorCode =
  // configuration and input files
  | 'CONFIG_INVALID'
  | 'FILE_NOT_FOUND'
  | 'FILE_UNREADABLE'
  | 'FILE_CORRUPT'
  | 'DATA_INVALID'
  // model checkpoints and adapters
  | 'MODEL_INVALID'
  | 'MODEL_UNSUPPORTED'
  | 'SHAPE_MISMATCH'
  | 'ADAPTER_INVALID'
  // runtime
  | 'BACKEND_UNAVAILABLE'
  | 'NON_FINITE'
  | 'AGGREGATION_FAILED'
  // a secure-aggregation round attempt cannot finish (too few live neighbours, a refused unmask); the next runs with fresh keys
  | 'ROUND_ABORTED'
  // a peer did not answer a request within its time limit (the coordinator's acks to round:configure/round:train)
  | 'TIMEOUT'
  // protocol and security (what a remote peer may be told)
  | 'BAD_MESSAGE'
  | 'FRAME_TOO_LARGE'
  | 'UNAUTHORIZED'
  | 'UNKNOWN_SITE'
  | 'TOKEN_USED'
  | 'BAD_SIGNATURE'
  | 'DECRYPT_FAILED'
  | 'REPLAY'
  | 'WRONG_ROUND'
  | 'ROUND_CLOSED'
  | 'NOT_SAMPLED'
  | 'DELTA_INVALID'
  | 'HASH_MISMATCH'
  | 'NOT_FOUND'
  // site side: the coordinator is not the one pinned by the join token (fingerprint mismatch), or a message it must
  // sign (manifest, round messages, adapter versions) carries no valid signature of its key (crypto/coordinator-trust.ts)
  | 'UNTRUSTED_COORDINATOR'
  // the coordinator holds as many parted uploads as it allows at once: retry shortly
  | 'BUSY'
  // admin API edge: a cookie-authenticated write from another origin; too many login attempts from one address
  | 'CROSS_ORIGIN'
  | 'RATE_LIMITED'
  // an authenticated admin request that the caller's role may not make (a viewer starting rounds)
  | 'FORBIDDEN'
  // an admin request that the federation's state refuses (start while a stop rule holds)
  | 'CONFLICT'
  | 'INTERNAL'
  // site agent: the coordinator could not be reached (refused, DNS, timeout); retried with backoff by `run`
  | 'UNREACHABLE';

export class FedloraError extends Error {
  readonly code: FedloraErrorCode;

  constructor(code: FedloraErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FedloraError';
    this.code = code;
  }
}

export function isFedloraError(err: unknown, code?: FedloraErrorCode): err is FedloraError {
  return err instanceof FedloraError && (code === undefined || err.code === code);
}

/** A message safe to print for any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof FedloraError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
