// Socket sites with fake trainers, for the fuzz, soak and load runs of issue 18: real socket.io connections that
// enroll through the admin API, prove their Ed25519 identity, declare themselves ready, accept every configure and
// answer round:train with a fixed delta (no model, no tfjs), sealed and signed like a real site's upload.

import { io as connect, type Socket } from 'socket.io-client';
import { makeUpload } from '@fedlora/coordinator/testing';
import { generateSiteKeys, publicIdentity, type SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { signChallenge } from '@fedlora/shared/crypto/envelope.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { FedloraError, type FedloraErrorCode } from '@fedlora/shared/errors.ts';
import { sendWithBusyRetry } from '@fedlora/shared/round/busy-retry.ts';
import { adminApi } from './admin-client';

export type Ack = { ok: boolean; code?: string; message?: string; data?: Record<string, unknown> };
export interface SiteIdentity {
  siteId: string;
  keys: SiteKeys;
}
/** what round:configure carries that an upload needs */
export interface RoundKey {
  roundId: string;
  round: number;
  coordinatorBoxPublicKey: Uint8Array;
}

export const ask = (s: Socket, event: string, payload: unknown, ms = 10_000) =>
  s.timeout(ms).emitWithAck(event, payload) as Promise<Ack>;

/** A socket.io connection to the coordinator's site namespace; rejects if it cannot connect. */
export function openSocket(url: string, transport: 'websocket' | 'polling' = 'websocket'): Promise<Socket> {
  const s = connect(url, { transports: [transport], reconnection: false, forceNew: true });
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve(s));
    s.once('connect_error', (err) => {
      s.close();
      reject(err);
    });
  });
}

/**
 * Enrolls `names` through the admin API and one anonymous socket (site:enroll binds nothing to the connection).
 * `keys` shares one identity among many sites where key generation would dominate a load run.
 */
export async function enrollSites(url: string, names: string[], keys?: SiteKeys, concurrency = 16): Promise<SiteIdentity[]> {
  const api = adminApi(url);
  // the coordinator closes a connection that has not authenticated within its deadline (30 s by default), so a long
  // enrollment reopens it
  let s = openSocket(url);
  const socket = async () => {
    const current = s;
    const open = await current;
    if (open.connected) return open;
    // one reopen for all the workers that found it closed: each opening its own left the others' connections
    // unauthenticated until the coordinator's deadline, holding its per-address cap (load run, 5,000 sites)
    if (s === current) {
      open.close();
      s = openSocket(url);
    }
    return s;
  };
  const out: SiteIdentity[] = new Array(names.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < names.length; i = next++) {
      const r = await api.json<{ siteId: string; joinToken: string }>('/api/sites', {
        method: 'POST',
        body: JSON.stringify({ name: names[i] }),
      });
      const k = keys ?? generateSiteKeys();
      const req = { token: r.joinToken, siteId: r.siteId, ...publicIdentity(k) };
      // a request lost to that close is sent again on the new connection (the token was not used)
      const a = await ask(await socket(), 'site:enroll', req, 60_000).catch(async () => ask(await socket(), 'site:enroll', req, 60_000));
      // TOKEN_USED after a resend: the first one arrived, with these keys
      if (!a.ok && a.code !== 'TOKEN_USED') throw new Error(`site:enroll ${names[i]}: ${a.code} ${a.message}`);
      out[i] = { siteId: r.siteId, keys: k };
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    (await s).close();
  }
  return out;
}

/** Proves `site`'s identity on `s` (auth:challenge, then auth:prove). */
export async function authenticate(s: Socket, site: SiteIdentity, ms = 10_000): Promise<void> {
  const ch = await ask(s, 'auth:challenge', { siteId: site.siteId }, ms);
  if (!ch.ok) throw new Error(`auth:challenge ${site.siteId}: ${ch.code}`);
  const d = ch.data as { challenge: ArrayBuffer; coordinatorId: string };
  const signature = signChallenge(
    new Uint8Array(d.challenge),
    { siteId: site.siteId, coordinatorId: d.coordinatorId },
    site.keys.signing.secretKey,
  );
  const p = await ask(s, 'auth:prove', { siteId: site.siteId, signature }, ms);
  if (!p.ok) throw new Error(`auth:prove ${site.siteId}: ${p.code}`);
}

export interface FakeSiteOptions {
  numExamples?: number;
  transport?: 'websocket' | 'polling';
  /** the delta this site uploads in a round (default: none; the site answers round:fail instead) */
  delta?: (cfg: RoundKey) => NamedTensors;
  /** awaited between round:train's ack and the upload */
  beforeUpload?: (cfg: RoundKey) => Promise<void>;
  /** called with each upload request before it is sent (the fuzz replays them) */
  onUpload?: (req: unknown) => void;
  ackTimeoutMs?: number;
  /** called on each round:configure (the load run times the last one) */
  onConfigure?: (site: FakeSocketSite) => void;
}

/** An authenticated, ready site whose trainer is a fixed delta. */
export class FakeSocketSite {
  configures = 0;
  uploads: Ack[] = [];
  private cfg: RoundKey | null = null;

  private constructor(
    readonly identity: SiteIdentity,
    readonly socket: Socket,
    private readonly opts: FakeSiteOptions,
  ) {}

  static async connect(url: string, identity: SiteIdentity, opts: FakeSiteOptions = {}): Promise<FakeSocketSite> {
    const s = await openSocket(url, opts.transport);
    const site = new FakeSocketSite(identity, s, opts);
    try {
      await authenticate(s, identity, opts.ackTimeoutMs);
      site.listen();
      const r = await ask(s, 'site:ready', { numExamples: opts.numExamples ?? 10, encodings: ['fp32'], backend: 'cpu' }, opts.ackTimeoutMs);
      if (!r.ok) throw new Error(`site:ready ${identity.siteId}: ${r.code}`);
    } catch (err) {
      s.close();
      throw err;
    }
    return site;
  }

  private listen(): void {
    const s = this.socket;
    s.on('round:configure', (m: { roundId: string; round: number; coordinatorBoxPublicKey: ArrayBuffer }, ack: (a: unknown) => void) => {
      this.configures++;
      this.opts.onConfigure?.(this);
      this.cfg = { roundId: m.roundId, round: m.round, coordinatorBoxPublicKey: new Uint8Array(m.coordinatorBoxPublicKey) };
      ack({ ok: true, data: { accepted: true } });
    });
    s.on('round:train', (_m: unknown, ack: (a: unknown) => void) => {
      ack({ ok: true, data: { started: true } });
      const cfg = this.cfg;
      if (!cfg) return;
      void (async () => {
        await this.opts.beforeUpload?.(cfg);
        if (!s.connected) return;
        if (!this.opts.delta) {
          await ask(s, 'round:fail', { roundId: cfg.roundId, code: 'DATA_INVALID', message: 'fake site: no trainer' }).catch(() => {});
          return;
        }
        const req = makeUpload(this.identity.keys, this.identity.siteId, cfg, this.opts.delta(cfg), {
          numExamples: this.opts.numExamples ?? 10,
        });
        this.opts.onUpload?.(req);
        // a BUSY answer is sent again with backoff, as the agent's round handler does (shared/src/round/busy-retry.ts)
        const send = async () => {
          const a = await ask(s, 'update:upload', req);
          if (!a.ok) throw new FedloraError((a.code ?? 'INTERNAL') as FedloraErrorCode, a.message ?? '');
          return a;
        };
        this.uploads.push(
          await sendWithBusyRetry(send, { stillWanted: () => s.connected }).then(
            (r) => r.reply ?? { ok: true },
            (err: unknown) => ({ ok: false, code: err instanceof FedloraError ? err.code : String(err) }),
          ),
        );
      })();
    });
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  close(): void {
    this.socket.close();
  }
}
