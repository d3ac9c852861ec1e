// The coordinator's Prometheus metrics (prom-client): one Registry per coordinator, fed only from the event paths
// that already exist (the federation's events, the rejection log, presence changes, the bytes the site handlers
// send), so the round loop holds no counters of its own. Names and meanings: docs/OBSERVABILITY.md.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FederationEvent } from './rounds/federation';
import type { SiteStatus } from './socket/presence';
import type { Awaitable } from './registry/types';
import { DEFAULT_PROJECT_ID } from '@fedlora/shared/protocol/join-token.ts';

/** A transfer the metrics count: an accepted upload in, an adapter or base-model file out. */
export type TransferKind = 'upload' | 'adapter' | 'model';
export type Direction = 'in' | 'out';

/** An enrolled site and when it was last heard from (ActivityTracker); null: never seen. */
export interface SiteLastSeen {
  siteId: string;
  lastSeen: string | null;
}

export interface MetricsOptions {
  /** enrolled, not revoked sites: the only label values of the per-site gauge, so its cardinality is bounded */
  enrolledSites: () => Awaitable<SiteLastSeen[]>;
  /** process_* and nodejs_* metrics (RSS, CPU, heap, event loop lag, handles); off in tests that build many */
  processMetrics?: boolean;
  now?: () => number;
}

/** stages last from milliseconds (evaluate on a tiny set) to the collect deadline (300 s by default) */
const STAGE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
const ROUND_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];

/** The `site` label of a site: its id in the default project, '<project>/<id>' in another (issue 21). */
export function metricsSiteLabel(project: string, siteId: string): string {
  return project === DEFAULT_PROJECT_ID ? siteId : `${project}/${siteId}`;
}

export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly now: () => number;
  private readonly rounds: Counter<'outcome'>;
  private readonly roundSeconds: Histogram;
  private readonly stageSeconds: Histogram<'stage'>;
  private readonly bytes: Counter<'direction' | 'kind'>;
  private readonly rejections: Counter<'source' | 'code'>;
  private readonly uploads: Counter<'outcome'>;
  /** connected sites and whether each is ready, from presence changes */
  private readonly connected = new Map<string, boolean>();
  /** per project, the running round's current stage and when it began (closed by the next stage or the round's end) */
  private readonly stages = new Map<string, { roundId: string; stage: string; at: number }>();

  constructor(o: MetricsOptions) {
    this.now = o.now ?? Date.now;
    const registers = [this.registry];
    this.rounds = new Counter({
      name: 'fedlora_rounds_total',
      help: 'Rounds ended, by outcome (aggregated = new version; kept = the old adapter stays; cancelled)',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['aggregated', 'kept', 'cancelled']) this.rounds.inc({ outcome }, 0);
    this.roundSeconds = new Histogram({
      name: 'fedlora_round_duration_seconds',
      help: 'Wall time of a round from sampling to its record',
      buckets: ROUND_BUCKETS,
      registers,
    });
    this.stageSeconds = new Histogram({
      name: 'fedlora_round_stage_duration_seconds',
      help: 'Wall time of each round stage, by stage',
      labelNames: ['stage'],
      buckets: STAGE_BUCKETS,
      registers,
    });
    this.bytes = new Counter({
      name: 'fedlora_transfer_bytes_total',
      help: 'Bytes moved with sites and admins: in = accepted uploads (counted at the round end), out = adapter and base-model downloads',
      labelNames: ['direction', 'kind'],
      registers,
    });
    this.rejections = new Counter({
      name: 'fedlora_rejections_total',
      help: 'Refused requests, by where they were refused and the error code the peer got',
      labelNames: ['source', 'code'],
      registers,
    });
    this.uploads = new Counter({
      name: 'fedlora_uploads_total',
      help: 'Site uploads answered, by outcome (accepted or rejected)',
      labelNames: ['outcome'],
      registers,
    });
    const connected = this.connected;
    new Gauge({
      name: 'fedlora_sites_online',
      help: 'Sites connected and authenticated now',
      registers,
      collect() {
        this.set(connected.size);
      },
    });
    new Gauge({
      name: 'fedlora_sites_ready',
      help: 'Connected sites that said they are ready to train',
      registers,
      collect() {
        let n = 0;
        for (const ready of connected.values()) if (ready) n++;
        this.set(n);
      },
    });
    const now = this.now;
    new Gauge({
      name: 'fedlora_site_last_seen_seconds',
      help: 'Seconds since each enrolled site was last heard from (0 while connected); sites never seen are absent',
      labelNames: ['site'],
      registers,
      // rebuilt from the enrolled list at each scrape, so a revoked site's series goes away
      async collect() {
        this.reset();
        for (const s of await o.enrolledSites()) {
          if (connected.has(s.siteId)) this.set({ site: s.siteId }, 0);
          else if (s.lastSeen) this.set({ site: s.siteId }, Math.max(0, (now() - Date.parse(s.lastSeen)) / 1000));
        }
      },
    });
    if (o.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** The federation's onEvent (app.ts forwards every project's events here; projects' rounds may overlap). */
  onFederationEvent(e: FederationEvent, project: string = DEFAULT_PROJECT_ID): void {
    if (e.type === 'round:stage') {
      this.endStage(project, e.roundId);
      this.stages.set(project, { roundId: e.roundId, stage: e.stage, at: this.now() });
    } else if (e.type === 'round:end') {
      const r = e.record;
      this.endStage(project, r.roundId);
      this.rounds.inc({ outcome: r.outcome });
      this.roundSeconds.observe(r.durationMs / 1000);
      if (r.uploadedBytes > 0) this.bytes.inc({ direction: 'in', kind: 'upload' }, r.uploadedBytes);
    } else if (e.type === 'upload') {
      this.uploads.inc({ outcome: e.accepted ? 'accepted' : 'rejected' });
      if (!e.accepted) this.rejections.inc({ source: 'upload', code: e.code ?? 'INTERNAL' });
    }
  }

  /** The rejection log's hook: every refused request, including those its per-peer budget keeps out of the log. */
  onRejection(event: string, code: string): void {
    this.rejections.inc({ source: event, code });
  }

  /** Presence's status changes, in `project` (site ids repeat across projects: metricsSiteLabel tells them apart). */
  onSiteStatus(s: SiteStatus, project: string = DEFAULT_PROJECT_ID): void {
    const key = metricsSiteLabel(project, s.siteId);
    if (s.online) this.connected.set(key, s.ready);
    else this.connected.delete(key);
  }

  /** Bytes sent to or received from a peer outside the round loop's own accounting. */
  onTransfer(direction: Direction, kind: TransferKind, bytes: number): void {
    if (bytes > 0) this.bytes.inc({ direction, kind }, bytes);
  }

  /** The exposition text and its content type, for the /metrics route. */
  async expose(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /**
   * A stage ends when the next one of the same round starts or the round ends; a stage of another round of the same
   * project is dropped.
   */
  private endStage(project: string, roundId: string): void {
    const s = this.stages.get(project);
    this.stages.delete(project);
    if (s && s.roundId === roundId) this.stageSeconds.observe({ stage: s.stage }, (this.now() - s.at) / 1000);
  }
}
