// When rounds start on their own (continual re-training, issue 20): on a timer — "every 6h" or a cron expression,
// parsed by croner, a maintained cron library, rather than a grammar of our own — and when enough sites report
// enough examples they have not trained on (the data trigger). Every round records why it started (RoundTrigger).
// The federation (federation.ts triggerRound) decides whether a triggered round may run now: never over a running
// round, never while paused.

import { Cron } from 'croner';
import { FedloraError, describeError } from '@fedlora/shared/errors.ts';
import type { Logger } from '../log';
import type { AvailableSite, Clock } from './types';

/** why a round started: an admin's POST /api/federation/start, the run started with the process, the schedule, or the data trigger */
export const ROUND_TRIGGERS = ['manual', 'startup', 'schedule', 'data'] as const;
export type RoundTriggerKind = (typeof ROUND_TRIGGERS)[number];

export interface RoundTrigger {
  kind: RoundTriggerKind;
  /** the schedule's text, or which sites held how many new examples */
  detail?: string;
}

export interface Schedule {
  /** as the operator wrote it */
  text: string;
  kind: 'interval' | 'cron';
  /** epoch ms of the first run after `after` (null: the expression never fires again) */
  next(after: number): number | null;
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const UNIT_NAMES: Record<string, string> = {
  s: 's', sec: 's', secs: 's', second: 's', seconds: 's',
  m: 'm', min: 'm', mins: 'm', minute: 'm', minutes: 'm',
  h: 'h', hr: 'h', hrs: 'h', hour: 'h', hours: 'h',
  d: 'd', day: 'd', days: 'd',
};
const INTERVAL = /^every\s+(\d+)\s*([a-z]+)$/i;
/** the longest interval: setTimeout's limit is 2^31 − 1 ms, and a year is beyond any retraining plan */
const MAX_INTERVAL_MS = 366 * UNIT_MS.d;

/**
 * "every N s|m|h|d" (also sec, min, hour, day and their plurals) or a cron expression of 5 fields (minute hour
 * day-of-month month day-of-week) or 6 (seconds first), evaluated in the coordinator's time zone. CONFIG_INVALID
 * naming the problem otherwise.
 */
export function parseSchedule(text: string): Schedule {
  const t = text.trim();
  const m = INTERVAL.exec(t);
  if (m) {
    const unit = UNIT_NAMES[m[2].toLowerCase()];
    if (!unit) throw new FedloraError('CONFIG_INVALID', `schedule "${text}": unknown unit "${m[2]}" (use s, m, h or d)`);
    const ms = Number(m[1]) * UNIT_MS[unit];
    if (!(ms >= 1000 && ms <= MAX_INTERVAL_MS))
      throw new FedloraError('CONFIG_INVALID', `schedule "${text}": the interval must be between 1 s and 366 days`);
    return { text: t, kind: 'interval', next: (after) => after + ms };
  }
  if (/^every\b/i.test(t))
    throw new FedloraError('CONFIG_INVALID', `schedule "${text}": write "every N" and a unit, e.g. "every 6h" or "every 30 min"`);
  let cron: Cron;
  try {
    cron = new Cron(t, { paused: true });
  } catch (err) {
    throw new FedloraError(
      'CONFIG_INVALID',
      `schedule "${text}" is neither "every N<s|m|h|d>" nor a cron expression: ${describeError(err)}`,
      { cause: err },
    );
  }
  return { text: t, kind: 'cron', next: (after) => cron.nextRun(new Date(after))?.getTime() ?? null };
}

/** "when K sites have >= M new examples" */
export interface RetrainRule {
  minSites: number;
  minNew: number;
}

/** the ready sites that report at least rule.minNew examples they have not trained on */
export function sitesWithNewData(rule: RetrainRule, sites: readonly AvailableSite[]): AvailableSite[] {
  return sites.filter((s) => (s.newExamples ?? 0) >= rule.minNew);
}

/** The data trigger's verdict: the trigger when at least rule.minSites sites have enough new data, else null. */
export function dataTrigger(rule: RetrainRule | null, sites: readonly AvailableSite[]): RoundTrigger | null {
  if (!rule) return null;
  const ready = sitesWithNewData(rule, sites);
  if (ready.length < rule.minSites) return null;
  return {
    kind: 'data',
    detail: `${ready.length} site(s) with >= ${rule.minNew} new examples (needed ${rule.minSites})`,
  };
}

/**
 * Runs `fire` at each time of a schedule, on the injected clock. One timer at a time; set() replaces the schedule
 * (a settings change) and stop() ends it. A tick that comes late (a suspended machine) fires once, not once per
 * missed time.
 */
export class RoundScheduler {
  private schedule: Schedule | null = null;
  private nextAt: number | null = null;
  private abort: AbortController | null = null;

  constructor(
    private readonly o: { clock: Clock; log: Logger; fire: (trigger: RoundTrigger) => void },
  ) {}

  /** epoch ms of the next scheduled round, or null */
  get next(): number | null {
    return this.nextAt;
  }

  get text(): string | null {
    return this.schedule?.text ?? null;
  }

  set(schedule: Schedule | null): void {
    this.stop();
    this.schedule = schedule;
    if (!schedule) return;
    const abort = new AbortController();
    this.abort = abort;
    void this.run(schedule, abort.signal);
  }

  stop(): void {
    this.abort?.abort(new FedloraError('INTERNAL', 'schedule replaced'));
    this.abort = null;
    this.nextAt = null;
  }

  private async run(schedule: Schedule, signal: AbortSignal): Promise<void> {
    const { clock, log } = this.o;
    let from = clock.now();
    for (;;) {
      const at = schedule.next(from);
      if (at === null) {
        log('schedule.done', { schedule: schedule.text });
        this.nextAt = null;
        return;
      }
      this.nextAt = at;
      log('schedule.next', { schedule: schedule.text, at: new Date(at).toISOString() });
      try {
        await clock.sleep(Math.max(0, at - clock.now()), signal);
      } catch {
        return; // replaced or stopped
      }
      if (signal.aborted) return;
      try {
        this.o.fire({ kind: 'schedule', detail: schedule.text });
      } catch (err) {
        log('schedule.fire.failed', { error: describeError(err) });
      }
      from = Math.max(at, clock.now());
    }
  }
}
