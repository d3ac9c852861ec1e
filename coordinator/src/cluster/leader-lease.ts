// Exactly one coordinator process runs rounds: the one holding a session-level Postgres advisory lock. The lock lives
// on one dedicated connection, so when the leader dies (even kill -9) Postgres drops the connection and the lock with
// it, and a follower polling every `pollMs` takes over within that time. A leader that loses its connection has lost
// the lease: it must stop running rounds at once (the coordinator exits and is restarted by its supervisor), and the
// unique round index of the version table refuses anything a stale leader might still try to publish.

import type { Pool, PoolClient } from 'pg';
import { describeError } from '@fedlora/shared/errors.ts';
import type { Logger } from '../log';

/** the advisory lock key of "leader of this federation" (one federation per database) */
const LEADER_LOCK = 0x66_6c_6c_64; // 'flld'

export interface LeaderLeaseOptions {
  /** how often a follower tries to take the lease and the leader checks it still holds it */
  pollMs: number;
  log: Logger;
  nodeId: string;
  onGain: () => void | Promise<void>;
  onLoss: (why: string) => void;
}

export class LeaderLease {
  private client: PoolClient | null = null;
  private leader = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly pool: Pool,
    private readonly o: LeaderLeaseOptions,
  ) {}

  get isLeader(): boolean {
    return this.leader;
  }

  start(): void {
    void this.tick();
  }

  private schedule(): void {
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.o.pollMs);
  }

  private async tick(): Promise<void> {
    try {
      if (!this.client) {
        this.client = await this.pool.connect();
        // a broken lease connection is noticed by the next query; the error event must not crash the process
        this.client.on('error', () => {});
      }
      if (this.leader) {
        await this.client.query('SELECT 1');
      } else {
        const r = await this.client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [LEADER_LOCK]);
        if (r.rows[0].ok) {
          this.leader = true;
          this.o.log('cluster.leader', { node: this.o.nodeId });
          await this.o.onGain();
        }
      }
    } catch (err) {
      const why = describeError(err);
      this.client?.release(true);
      this.client = null;
      if (this.leader) {
        this.leader = false;
        this.o.log('cluster.lease_lost', { node: this.o.nodeId, error: why });
        this.o.onLoss(why);
      } else this.o.log('cluster.lease_unavailable', { node: this.o.nodeId, error: why });
    }
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const c = this.client;
    this.client = null;
    if (!c) return;
    if (this.leader) await c.query('SELECT pg_advisory_unlock($1)', [LEADER_LOCK]).catch(() => {});
    this.leader = false;
    c.release();
  }
}
