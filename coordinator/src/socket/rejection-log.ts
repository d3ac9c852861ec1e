// Rejected requests are logged per peer address with a budget: the first `perWindow` rejections of a window are one
// line each, the rest are counted and reported as one 'request.rejected.suppressed' line per peer when the window
// ends. Why: one unauthenticated peer once wrote ~1.5 MB/s of rejection lines; an operator still sees who was
// refused, how often and with which codes, without the log becoming the attack.

import type { Logger, LogValue } from '../log';

export interface RejectionLogOptions {
  /** lines per peer per window before rejections are only counted (default 20) */
  perWindow: number;
  /** window length in ms (default 60 s) */
  windowMs: number;
  /** peers tracked at once; the least recently seen is reported and forgotten first (default 10,000) */
  maxPeers: number;
}

export const DEFAULT_REJECTION_LOG: RejectionLogOptions = { perWindow: 20, windowMs: 60_000, maxPeers: 10_000 };

interface PeerWindow {
  startedAt: number;
  logged: number;
  suppressed: number;
  codes: Map<string, number>;
}

export class RejectionLog {
  private readonly peers = new Map<string, PeerWindow>();
  private readonly opts: RejectionLogOptions;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly log: Logger,
    opts: Partial<RejectionLogOptions> = {},
    private readonly now: () => number = Date.now,
    /** sees every rejection, logged or only counted (the metrics' rejections by code) */
    private readonly onRecord: (event: string, code: string) => void = () => {},
  ) {
    this.opts = { ...DEFAULT_REJECTION_LOG, ...opts };
  }

  /** Reports ended windows every window length (the timer does not keep the process alive). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), this.opts.windowMs);
    this.timer.unref();
  }

  /** Stops the timer and reports every peer's suppressed count. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const [peer, w] of this.peers) this.report(peer, w);
    this.peers.clear();
  }

  /** One rejected request from `peer` (an address; never a token or key in `fields`). */
  record(event: string, peer: string, fields: Record<string, LogValue> & { code: string }): void {
    this.onRecord(event, fields.code);
    const t = this.now();
    let w = this.peers.get(peer);
    if (w && t - w.startedAt >= this.opts.windowMs) {
      this.report(peer, w);
      w = undefined;
    }
    if (!w) {
      w = { startedAt: t, logged: 0, suppressed: 0, codes: new Map() };
      if (this.peers.size >= this.opts.maxPeers) {
        const [oldest, ow] = this.peers.entries().next().value as [string, PeerWindow];
        this.report(oldest, ow);
        this.peers.delete(oldest);
      }
    }
    // re-inserted so that the map's order is least recently seen first
    this.peers.delete(peer);
    this.peers.set(peer, w);
    if (w.logged < this.opts.perWindow) {
      w.logged++;
      this.log(event, { peer, ...fields });
      return;
    }
    w.suppressed++;
    w.codes.set(fields.code, (w.codes.get(fields.code) ?? 0) + 1);
  }

  /** Reports and forgets the windows that have ended. */
  sweep(): void {
    const t = this.now();
    for (const [peer, w] of this.peers)
      if (t - w.startedAt >= this.opts.windowMs) {
        this.report(peer, w);
        this.peers.delete(peer);
      }
  }

  private report(peer: string, w: PeerWindow): void {
    if (w.suppressed === 0) return;
    this.log('request.rejected.suppressed', {
      peer,
      count: w.suppressed,
      codes: [...w.codes].map(([c, n]) => `${c}:${n}`).join(','),
      seconds: Math.round((this.now() - w.startedAt) / 1000),
    });
  }
}
