// Brute-force limits on POST /api/login, per client address: a rate limit on attempts (express-rate-limit) and a
// lockout after consecutive wrong tokens. Both answer 429 RATE_LIMITED with Retry-After. They guard only the
// console's login: Bearer requests check the token on every call and are not slowed, so scripts keep working while
// an address is locked out. The address is the TCP peer's (no `trust proxy`): behind a reverse proxy every console
// login shares the proxy's address, and so shares its limits.

import type { NextFunction, Request, Response } from 'express';
import { ipKeyGenerator, rateLimit } from 'express-rate-limit';
import { FedloraError } from '@fedlora/shared/errors.ts';
import type { Logger } from '../log';

export interface LoginLimits {
  /** login attempts (right or wrong) one client address may make per window */
  attemptsPerWindow: number;
  windowMs: number;
  /** consecutive wrong tokens from one address that lock it out */
  maxFailures: number;
  /** how long a locked-out address is refused, even with the right token */
  lockoutMs: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = {
  attemptsPerWindow: 10,
  windowMs: 60_000,
  maxFailures: 10,
  lockoutMs: 15 * 60_000,
};

/** Bounds memory when many addresses fail (an IPv6 attacker has plenty); the least recently failed go first. */
const MAX_TRACKED_ADDRESSES = 10_000;

/** Consecutive login failures per client address, and the lockouts they trigger. */
export class LoginLockout {
  /** address → failures in a row, and when its lockout ends (0: not locked); Map order = least recently failed first */
  private readonly byAddress = new Map<string, { failures: number; lockedUntil: number }>();

  constructor(
    private readonly limits: Pick<LoginLimits, 'maxFailures' | 'lockoutMs'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds until `address` may try again; 0 when it is not locked out. */
  retryAfterMs(address: string): number {
    const entry = this.byAddress.get(address);
    if (!entry || entry.lockedUntil === 0) return 0;
    const left = entry.lockedUntil - this.now();
    if (left > 0) return left;
    // the lockout is over: the address starts again with a clean count
    this.byAddress.delete(address);
    return 0;
  }

  /** Records a wrong token; returns true when this failure locked the address out. */
  failed(address: string): boolean {
    const entry = this.byAddress.get(address) ?? { failures: 0, lockedUntil: 0 };
    this.byAddress.delete(address);
    entry.failures++;
    const locked = entry.failures >= this.limits.maxFailures;
    if (locked) entry.lockedUntil = this.now() + this.limits.lockoutMs;
    this.byAddress.set(address, entry);
    while (this.byAddress.size > MAX_TRACKED_ADDRESSES)
      this.byAddress.delete(this.byAddress.keys().next().value as string);
    return locked;
  }

  /** The right token: the address's failures no longer count. */
  succeeded(address: string): void {
    this.byAddress.delete(address);
  }
}

/** The key both limits count under: the peer address, IPv6 by its /56 (one subscriber's whole allocation). */
export function loginAddress(req: Request): string {
  return ipKeyGenerator(req.ip ?? req.socket.remoteAddress ?? 'unknown', 56);
}

const retryAfterSeconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

/** express-rate-limit on login attempts; over the limit it answers through the API's error handler (429). */
export function loginRateLimit(limits: Pick<LoginLimits, 'attemptsPerWindow' | 'windowMs'>, log: Logger) {
  return rateLimit({
    windowMs: limits.windowMs,
    limit: limits.attemptsPerWindow,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    keyGenerator: loginAddress,
    // the key is deliberately the TCP peer (see the top of this file), so its warnings about an X-Forwarded-For
    // header without `trust proxy` describe a choice, not a mistake
    validate: { xForwardedForHeader: false, forwardedHeader: false },
    logger: {
      error: (err, message) => log('login.rate_limit_error', { reason: message ?? String(err) }),
      warn: (err, message) => log('login.rate_limit_warning', { reason: message ?? String(err) }),
    },
    handler: (req: Request, _res: Response, next: NextFunction) => {
      log('admin.login_rate_limited', { address: loginAddress(req) });
      next(
        new FedloraError(
          'RATE_LIMITED',
          `too many login attempts from this address: at most ${limits.attemptsPerWindow} per ` +
            `${retryAfterSeconds(limits.windowMs)} s; try again after the Retry-After seconds`,
        ),
      );
    },
  });
}

/** Refuses a locked-out address before its token is even looked at (429, Retry-After). */
export function loginLockoutCheck(lockout: LoginLockout) {
  return (req: Request, res: Response, next: NextFunction) => {
    const ms = lockout.retryAfterMs(loginAddress(req));
    if (ms === 0) return next();
    res.set('Retry-After', String(retryAfterSeconds(ms)));
    next(
      new FedloraError(
        'RATE_LIMITED',
        `login is locked for this address after repeated wrong tokens; try again in ${retryAfterSeconds(ms)} s`,
      ),
    );
  };
}
