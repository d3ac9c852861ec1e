// Per-site activity for the console's Sites table: when the coordinator last heard from a site, how many rounds it
// contributed to (an accepted upload in a round that produced a version), and its last error (a round failure or
// an upload rejection code). Fed by the federation's events and presence changes; kept in site-activity.json so a
// restart does not reset the counts.

import type { FederationEvent } from '../rounds/federation';
import type { SiteStatus } from '../socket/presence';
import { readJson, writeJson, type Storage } from '../storage';
import { describeError } from '@fedlora/shared/errors.ts';
import { silentLogger, type Logger } from '../log';

export interface SiteActivity {
  /** ISO time of the last connection change or upload (null: never seen) */
  lastSeen: string | null;
  roundsContributed: number;
  lastError: { code: string; round: number; at: string } | null;
}

const FILE = 'site-activity.json';
const EMPTY: SiteActivity = { lastSeen: null, roundsContributed: 0, lastError: null };

export class ActivityTracker {
  private bySite = new Map<string, SiteActivity>();
  /** round → sites whose upload was accepted (counted once the round ends with a version) */
  private readonly accepted = new Map<number, Set<string>>();
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly storage: Storage,
    private readonly now: () => Date,
    private readonly log: Logger,
  ) {}

  static async open(storage: Storage, o: { now?: () => Date; log?: Logger } = {}): Promise<ActivityTracker> {
    const t = new ActivityTracker(storage, o.now ?? (() => new Date()), o.log ?? silentLogger);
    const f = await readJson<{ v: 1; sites: Record<string, SiteActivity> }>(storage, FILE);
    // a file of another layout is only a statistic lost, not a reason to refuse to start
    if (f?.v === 1 && f.sites && typeof f.sites === 'object')
      t.bySite = new Map(Object.entries(f.sites).map(([k, v]) => [k, { ...EMPTY, ...v }]));
    return t;
  }

  get(siteId: string): SiteActivity {
    const a = this.bySite.get(siteId);
    return a ? { ...a, lastError: a.lastError && { ...a.lastError } } : { ...EMPTY };
  }

  private touch(siteId: string): SiteActivity {
    let a = this.bySite.get(siteId);
    if (!a) this.bySite.set(siteId, (a = { ...EMPTY }));
    a.lastSeen = this.now().toISOString();
    return a;
  }

  private error(siteId: string, code: string, round: number): void {
    this.touch(siteId).lastError = { code, round, at: this.now().toISOString() };
  }

  onStatus(s: SiteStatus): void {
    this.touch(s.siteId);
    if (!s.online) this.persist();
  }

  onEvent(e: FederationEvent): void {
    if (e.type === 'upload') {
      if (e.accepted) {
        this.touch(e.siteId);
        let set = this.accepted.get(e.round);
        if (!set) this.accepted.set(e.round, (set = new Set()));
        set.add(e.siteId);
      } else this.error(e.siteId, e.code ?? 'INTERNAL', e.round);
    } else if (e.type === 'round:end') {
      const r = e.record;
      if (r.outcome === 'aggregated')
        for (const id of this.accepted.get(r.round) ?? []) {
          const a = this.bySite.get(id);
          if (a) a.roundsContributed += 1;
        }
      this.accepted.delete(r.round);
      // rejections were recorded as they happened; failures (timeouts, disconnects, reported) only arrive here
      for (const f of r.failures) this.error(f.siteId, f.code, r.round);
      this.persist();
    }
  }

  /** a statistic that could not be written is logged, never allowed to break a round */
  private persist(): void {
    this.save().catch((err) => this.log('activity.save_failed', { reason: describeError(err) }));
  }

  /** Writes are chained so that two saves never interleave; a failed write is retried by the next one. */
  save(): Promise<void> {
    const run = () => writeJson(this.storage, FILE, { v: 1, sites: Object.fromEntries(this.bySite) });
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => {});
    return p;
  }
}
