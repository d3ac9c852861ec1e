// Transport connections that have not authenticated yet (no site proved its key, no admin session): at most
// `maxPerAddress` of them per remote address, and each is closed if it has not authenticated within
// `authDeadlineMs`. Why: before authentication a peer costs the coordinator memory and parsing for nothing; with
// the small frame limit (LIMITS.maxSocketFrameBytes) this bounds what one address can make it hold.
// Behind a reverse proxy every peer has the proxy's address: raise the cap there (docs/SECURITY.md).

import type { IncomingMessage } from 'node:http';

export interface ConnectionGateOptions {
  /** unauthenticated connections at once from one address (default 32) */
  maxPerAddress: number;
  /** ms a connection may stay unauthenticated (default 30 s; sites authenticate in their first second) */
  authDeadlineMs: number;
}

export const DEFAULT_CONNECTION_GATE: ConnectionGateOptions = { maxPerAddress: 32, authDeadlineMs: 30_000 };

/** The part of an engine.io connection the gate uses. */
export interface EngineConnection {
  readonly remoteAddress: string;
  close(): void;
  once(event: 'close', listener: () => void): unknown;
}

export type GateRejection = { address: string; reason: 'too_many_unauthenticated' | 'auth_deadline' };

export class ConnectionGate {
  private readonly pending = new Map<string, Map<EngineConnection, ReturnType<typeof setTimeout>>>();
  readonly opts: ConnectionGateOptions;

  constructor(
    opts: Partial<ConnectionGateOptions> = {},
    private readonly onReject: (r: GateRejection) => void = () => {},
  ) {
    this.opts = { ...DEFAULT_CONNECTION_GATE, ...opts };
  }

  /** engine.io's allowRequest hook: called for each new transport handshake, before anything is parsed. */
  readonly allowRequest = (
    req: IncomingMessage,
    answer: (err: string | null | undefined, success: boolean) => void,
  ): void => {
    const address = req.socket.remoteAddress ?? 'unknown';
    if (this.unauthenticated(address) >= this.opts.maxPerAddress) {
      this.onReject({ address, reason: 'too_many_unauthenticated' });
      answer('too many unauthenticated connections from this address', false);
      return;
    }
    answer(null, true);
  };

  /** A new transport connection: unauthenticated until `authenticated` is called for it. */
  opened(conn: EngineConnection): void {
    const address = conn.remoteAddress ?? 'unknown';
    let byConn = this.pending.get(address);
    if (!byConn) this.pending.set(address, (byConn = new Map()));
    const timer = setTimeout(() => {
      if (!this.forget(conn, address)) return;
      this.onReject({ address, reason: 'auth_deadline' });
      conn.close();
    }, this.opts.authDeadlineMs);
    timer.unref();
    byConn.set(conn, timer);
    conn.once('close', () => this.forget(conn, address));
  }

  /** The connection proved an identity (a site's key, an admin session): no cap and no deadline any more. */
  authenticated(conn: EngineConnection): void {
    this.forget(conn, conn.remoteAddress ?? 'unknown');
  }

  unauthenticated(address: string): number {
    return this.pending.get(address)?.size ?? 0;
  }

  /** Stops every deadline timer (the server is closing). */
  close(): void {
    for (const byConn of this.pending.values()) for (const t of byConn.values()) clearTimeout(t);
    this.pending.clear();
  }

  private forget(conn: EngineConnection, address: string): boolean {
    const byConn = this.pending.get(address);
    const timer = byConn?.get(conn);
    if (!byConn || timer === undefined) return false;
    clearTimeout(timer);
    byConn.delete(conn);
    if (byConn.size === 0) this.pending.delete(address);
    return true;
  }
}
