// The round loop: runs rounds one after another (start/pause), each as the explicit stage sequence of stages.ts,
// until a stop rule holds; keeps version 0 (the initial adapter) and the strategy's state in the AdapterStore so a
// restart continues. The loop only sequences stages; what sites send (uploads, failure reports, disconnects) goes
// to the running round's inbox (inbox.ts). (Over 400 lines: start/pause/close, settings changes that rebuild the
// strategy, promote and the round loop share the federation's state: its phase, strategy, settings, running round.)

import { FedloraError, describeError } from '@fedlora/shared/errors.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { randomBytes } from 'node:crypto';
import { ROUND_STAGES, SECURE_ROUND_STAGES, type RoundStage } from '@fedlora/shared/protocol/messages.ts';
import type { ClientRequest } from '@fedlora/shared/protocol/events.ts';
import type { Strategy } from '@fedlora/shared/aggregation/strategy.ts';
import type { StrategyName } from '@fedlora/shared/aggregation/index.ts';
import { DpMeanAggregator, withDpClipNorm } from '@fedlora/shared/privacy/dp-fedavg.ts';
import { withFields, type Logger } from '../log';
import type { AdapterStore, PromotionDecision, RoundPrivacy, RoundRecord, TaskKind, VersionRecord } from '../registry/types';
import {
  applySettingsPatch,
  expandStrategyShorthand,
  parseSettingsPatch,
  sampleSize,
  stopRuleHolding,
  stopRule,
  strategyFromSettings,
  withStrategyDefaults,
  type RoundSettings,
  type StopRules,
} from './settings';
import {
  newRoundPlan,
  publish,
  raceTimer,
  roundRecord,
  STAGES,
  type RoundEnv,
  type RunningRound,
  type StageEnd,
} from './stages';
import { InboxRouter } from './inbox';
import { bestVersion, metricValue } from './promotion';
import { Pulse } from './pulse';
import { systemClock, type Clock, type Evaluator, type RoundTransport } from './types';
import type { UploadRequest } from './upload';
import { deltaNormBound, NormHistory, optimizerNormCeiling } from './update-bounds';
import { expectedSampleRate, PrivacyBudget, type DpRoundPlan, type PrivacyReport } from './privacy-budget';
import { SecureRound } from './secure-round';
import { dataTrigger, parseSchedule, RoundScheduler, type RoundTrigger } from './schedule';

export type FederationState = 'idle' | 'running' | 'pausing' | 'paused' | 'finished' | 'closed';

export type FederationEvent =
  | { type: 'state'; state: FederationState; reason?: string }
  | { type: 'round:stage'; round: number; roundId: string; stage: RoundStage }
  | { type: 'upload'; round: number; siteId: string; accepted: boolean; code?: string }
  | { type: 'round:end'; record: RoundRecord }
  | { type: 'version:new'; version: VersionRecord }
  /** an admin or early stopping decided about an existing version (approve, reject, promote, restore): its new record */
  | { type: 'version:decided'; version: VersionRecord }
  /** a scheduled or data-triggered round could not start now (a round runs, paused, leader elsewhere…) */
  | { type: 'round:skipped'; trigger: RoundTrigger; reason: string };

export interface FederationDeps {
  strategy: Strategy;
  /**
   * builds a strategy by name from the settings when PUT /api/settings switches it or changes its options (default:
   * strategyFromSettings, the registered strategy with settings.strategyOptions[name] and minResults = minSites)
   */
  strategyFactory?: (name: StrategyName, settings: RoundSettings) => Strategy;
  transport: RoundTransport;
  evaluator: Evaluator;
  store: AdapterStore;
  /** the adapter state of version 0 (seeded fresh LoRA + head) */
  initialState: () => NamedTensors | Promise<NamedTensors>;
  /** what the federation trains, recorded on every version (default classification; issue 24) */
  task?: TaskKind;
  settings: RoundSettings;
  stop: StopRules;
  log: Logger;
  clock?: Clock;
  rng?: () => number;
  /**
   * pause after a round that made no version, doubled for each such round in a row up to maxRetryDelayMs, so that
   * rounds nobody can join (sites gone, or all still busy after a coordinator restart) do not spin (default 2 s)
   */
  retryDelayMs?: number;
  /** the longest pause between rounds that make no version (default 60 s) */
  maxRetryDelayMs?: number;
  onEvent?: (e: FederationEvent) => void;
  /** false while another process leads the federation (cluster/leader-lease.ts): this one must not run rounds */
  isLeader?: () => boolean;
  /** called after each stage that lets the round go on (crash tests hold here: fault-hold.ts) */
  afterStage?: (stage: RoundStage, round: number) => Promise<void>;
}

export class Federation {
  private st: FederationState = 'idle';
  private active: RunningRound | null = null;
  /** the edge's way into the running round */
  private readonly inboxes: InboxRouter;
  private readonly availability = new Pulse();
  private readonly normHistory = new NormHistory();
  /** client-level DP: the accountant of the rounds so far (rebuilt from the round history by init) */
  private readonly privacy = new PrivacyBudget();
  /** why DP or secure aggregation cannot run with the current strategy (it does not average), until the settings change */
  private privacyRefusal: string | null = null;
  /** PUT /settings changes, one at a time: each is validated and kept against the settings the previous one left */
  private settingsQueue: Promise<unknown> = Promise.resolve();
  /** binds secure-aggregation keys and masks to this coordinator process (with the round id and attempt) */
  private readonly runId = `run-${randomBytes(6).toString('hex')}`;
  private readonly abort = new AbortController();
  private loopDone: Promise<void> = Promise.resolve();
  private finishedReason: string | null = null;
  /** the store's index as of the federation's last write (it is the only writer), for status() and the stop rules */
  private view: { versions: VersionRecord[]; currentId: string | null; lastRound: number } = {
    versions: [],
    currentId: null,
    lastRound: 0,
  };
  readonly clock: Clock;
  settings: RoundSettings;
  stop: StopRules;
  /** why the rounds of the current run started (recorded with each round and version) */
  private trigger: RoundTrigger = { kind: 'manual' };
  /** a scheduled or data-triggered run: one round, then the federation goes back to the state it was in */
  private oneOff: { before: FederationState } | null = null;
  /** the timer schedule (settings.schedule), armed by init() */
  private readonly scheduler: RoundScheduler;
  /**
   * the data trigger may fire: cleared when a data-triggered round starts, set again by the next change of the
   * sites' counts, so that a round that could not train (too few sites took part) is not started over and over
   */
  private dataArmed = true;

  constructor(private readonly d: FederationDeps) {
    this.clock = d.clock ?? systemClock;
    // a strategy registered after the settings were made gets its defaults
    this.settings = withStrategyDefaults(d.settings);
    this.stop = d.stop;
    this.inboxes = new InboxRouter(d.log, (e) => this.emit({ type: 'upload', ...e }));
    this.scheduler = new RoundScheduler({ clock: this.clock, log: d.log, fire: (t) => this.triggerRound(t) });
    d.transport.onAvailabilityChange(() => {
      this.availability.fire();
      this.dataArmed = true;
      this.checkDataTrigger();
    });
  }

  /** Creates and evaluates version 0 on a fresh store; restores the strategy state of the current version; arms the schedule. */
  async init(): Promise<void> {
    // the console's changes survive a restart: they apply over the command line's settings, before rounds start
    await this.restoreSettings();
    await this.initRegistry();
    this.armSchedule();
  }

  private armSchedule(): void {
    const text = this.settings.schedule;
    if (text === this.scheduler.text && (text === null || this.scheduler.next !== null)) return;
    this.scheduler.set(text === null ? null : parseSchedule(text));
  }

  private async initRegistry(): Promise<void> {
    const { store, log } = this.d;
    const current = await store.currentId();
    if (current === null) {
      const state = await this.d.initialState();
      // as in a round's evaluate stage, a failed evaluation still versions the adapter, without metrics: with only
      // federated evaluation no site is connected yet at the start
      const metrics = await this.d.evaluator.evaluate(state).catch((err: unknown) => {
        log('evaluate.failed', { round: 0, error: describeError(err) });
        return null;
      });
      const v = await store.addVersion(
        {
          parent: null,
          round: 0,
          strategy: this.d.strategy.name,
          sites: 0,
          examples: 0,
          metrics,
          trainMetrics: {},
          uploadedBytes: 0,
          ...(this.d.task === 'mlm' ? { task: 'mlm' as const } : {}),
        },
        state,
        null,
      );
      await store.decide(v.id, { action: 'promote', actor: 'system', reason: 'version 0: the initial adapter', at: new Date(this.clock.now()).toISOString() });
      await this.refreshView();
      log('version.new', {
        id: v.id,
        round: 0,
        accuracy: metrics?.accuracy,
        macroF1: metrics?.macroF1,
        loss: metrics?.loss,
      });
      this.emit({ type: 'version:new', version: v });
      this.privacy.restore(await store.rounds());
    } else {
      await this.restoreStrategy(current);
      await this.refreshView();
      this.privacy.restore(await store.rounds());
      log('registry.loaded', {
        versions: this.view.versions.length,
        current: this.view.currentId,
        lastRound: this.view.lastRound,
      });
    }
  }

  private async refreshView(): Promise<void> {
    const { store } = this.d;
    this.view = {
      versions: await store.list(),
      currentId: await store.currentId(),
      lastRound: await store.lastRound(),
    };
  }

  private async restoreStrategy(versionId: string): Promise<void> {
    const state = await this.d.store.loadStrategyState(versionId);
    if (state && state.strategy !== this.d.strategy.name) {
      this.d.log('strategy.state.ignored', {
        version: versionId,
        savedBy: state.strategy,
        strategy: this.d.strategy.name,
      });
      this.d.strategy.setState(null);
      return;
    }
    if (state || this.d.strategy.getState() !== null) this.d.strategy.setState(state);
  }

  get state(): FederationState {
    return this.st;
  }

  private setState(s: FederationState, reason?: string): void {
    this.st = s;
    this.d.log('federation.state', { state: s, reason });
    this.emit({ type: 'state', state: s, reason });
  }

  private emit(e: FederationEvent): void {
    try {
      this.d.onEvent?.(e);
    } catch (err) {
      this.d.log('event.listener.failed', { error: describeError(err) });
    }
  }

  /**
   * Starts (or resumes) running rounds; a no-op while running. Throws CONFIG_INVALID if a stop rule already holds.
   * `trigger`: why (an admin through the API, or the run the coordinator starts with), recorded with each round.
   */
  start(trigger: RoundTrigger = { kind: 'manual' }): void {
    if (this.st === 'closed') throw new FedloraError('INTERNAL', 'the coordinator is closing');
    this.requireLeader();
    if (this.st === 'running') {
      // a scheduled or data-triggered round is under way: the run goes on after it, as asked
      if (this.oneOff) {
        this.oneOff = null;
        this.trigger = trigger;
      }
      return;
    }
    if (this.st === 'pausing') return this.setState('running');
    const why = this.stopReason();
    if (why)
      throw new FedloraError(
        'CONFIG_INVALID',
        `a stop rule already holds (${why}); change the settings first`,
      );
    this.trigger = trigger;
    this.oneOff = null;
    this.setState('running');
    this.loopDone = this.loop();
  }

  /**
   * A round the schedule or the data trigger asks for: it runs once, whatever the stop rules say (they end a run of
   * rounds, not continual re-training), then the federation is back in the state it was in. It never overlaps a
   * running round and never runs while paused: then it is skipped, logged and reported ('round:skipped').
   * Returns whether it started.
   */
  triggerRound(trigger: RoundTrigger): boolean {
    const skip = (reason: string) => {
      this.d.log('round.skipped', { trigger: trigger.kind, detail: trigger.detail, reason });
      this.emit({ type: 'round:skipped', trigger, reason });
      return false;
    };
    if (this.st === 'closed') return false;
    if (this.d.isLeader?.() === false) return skip('another coordinator process leads this federation');
    if (this.st === 'running' || this.st === 'pausing') return skip('a round is running');
    if (this.st === 'paused') return skip('the federation is paused');
    this.oneOff = { before: this.st };
    this.trigger = trigger;
    this.d.log('round.triggered', { trigger: trigger.kind, detail: trigger.detail });
    this.setState('running', `${trigger.kind} round`);
    this.loopDone = this.loop();
    return true;
  }

  /** The data trigger's check: a round when enough sites have enough new examples and none runs (settings.retrainMin*). */
  private checkDataTrigger(): void {
    const { retrainMinSites: minSites, retrainMinNew: minNew } = this.settings;
    if (minSites === null || minNew === null || !this.dataArmed) return;
    // while rounds run the check waits: the loop looks again once they are over
    if (this.st !== 'idle' && this.st !== 'finished') return;
    const t = dataTrigger({ minSites, minNew }, this.d.transport.available());
    if (!t) return;
    this.dataArmed = false;
    this.triggerRound(t);
  }

  /** the schedule and the data trigger, for status() and the console */
  retraining() {
    const { retrainMinSites: minSites, retrainMinNew: minNew } = this.settings;
    return {
      schedule: this.settings.schedule,
      nextScheduledAt: this.scheduler.next === null ? null : new Date(this.scheduler.next).toISOString(),
      dataTrigger: minSites !== null && minNew !== null ? { minSites, minNew } : null,
      sitesWithNewData:
        minNew === null ? null : this.d.transport.available().filter((x) => (x.newExamples ?? 0) >= minNew).length,
    };
  }

  /** In a cluster only the leader's federation acts: a follower's would change nothing the rounds see. */
  private requireLeader(): void {
    if (this.d.isLeader?.() === false)
      throw new FedloraError('BUSY', 'another coordinator process leads this federation: start, pause, settings and promote go to the leader');
  }

  /** No new round starts; a round still sampling is cancelled, one already under way finishes. */
  pause(): void {
    this.requireLeader();
    if (this.st !== 'running') return;
    this.setState(this.active && this.active.stage !== 'sample' ? 'pausing' : 'paused');
    this.availability.fire();
  }

  async close(): Promise<void> {
    this.st = 'closed';
    this.scheduler.stop();
    this.abort.abort(new FedloraError('INTERNAL', 'coordinator closing'));
    await this.loopDone.catch(() => {});
  }

  /** resolves when the loop stops (pause, stop rule, close) */
  whenStopped(): Promise<void> {
    return this.loopDone;
  }

  status() {
    const a = this.active;
    return {
      state: this.st,
      finishedReason: this.finishedReason,
      strategy: this.d.strategy.name,
      currentVersionId: this.view.currentId,
      lastRound: this.view.lastRound,
      round: a
        ? {
            round: a.plan.round,
            roundId: a.plan.roundId,
            stage: a.stage,
            sampled: a.inbox.sampled.size,
            delivered: a.inbox.delivered.size,
            deadline: a.deadline,
          }
        : null,
      sitesAvailable: this.d.transport.available().length,
      trigger: this.st === 'running' || this.st === 'pausing' ? this.trigger : null,
      retraining: this.retraining(),
    };
  }

  /**
   * PUT /settings: the patch is validated, kept in the registry (a restart, or a cluster's next leader, applies it
   * again: init), and only then applied. A bad patch changes nothing and is not kept; a failed write changes nothing
   * either. Changes are applied one at a time, in the order they came.
   */
  updateSettings(patch: unknown): Promise<{ settings: RoundSettings; stop: StopRules }> {
    this.requireLeader();
    const run = this.settingsQueue.then(async () => {
      const plan = this.planSettings(patch);
      await this.d.store.addSettingsChange({ at: new Date(this.clock.now()).toISOString(), patch: patch as Record<string, unknown> });
      // nothing else changes settings meanwhile (the queue), so the plan still holds
      const { next, fields } = this.applySettings(plan);
      this.d.log('settings.updated', { fields });
      return next;
    });
    this.settingsQueue = run.catch(() => {});
    return run;
  }

  /** The settings `patch` leads to, and the strategy it needs: validation only (throws CONFIG_INVALID / BAD_MESSAGE). */
  private planSettings(patch: unknown) {
    const p = parseSettingsPatch(expandStrategyShorthand(patch, this.d.strategy.name));
    const next = applySettingsPatch({ settings: this.settings, stop: this.stop }, p);
    const name = p.strategy ?? this.d.strategy.name;
    const switching = name !== this.d.strategy.name;
    // the strategy holds its options (FedProx sends its own mu): a change of them rebuilds it for the next round
    const optionsChanged =
      JSON.stringify(next.settings.strategyOptions[name]) !==
      JSON.stringify(this.settings.strategyOptions[name]);
    const strategy = switching || optionsChanged ? (this.d.strategyFactory ?? strategyFromSettings)(name, next.settings) : null;
    return { p, next, name, switching, strategy };
  }

  /** Applies a validated patch (planSettings); `fields` names what it changed. */
  private applySettings(plan: ReturnType<Federation['planSettings']>): { next: { settings: RoundSettings; stop: StopRules }; fields: string } {
    const { p, next, name, switching, strategy } = plan;
    const trainingChanged = (['learningRate', 'maxSteps', 'localEpochs'] as const).some(
      (k) => next.settings[k] !== this.settings[k],
    );
    // built only after the whole patch validated, so a bad patch changes nothing
    if (strategy) {
      // a new strategy starts without server state (the next round trains from the current version as usual); the
      // same strategy with new options keeps its moments or velocity
      if (!switching) strategy.setState(this.d.strategy.getState());
      this.d.strategy = strategy;
      this.d.log(switching ? 'strategy.changed' : 'strategy.options', {
        strategy: name,
        options: JSON.stringify(next.settings.strategyOptions[name]),
      });
    }
    // honest update norms scale with the learning rate and the steps: the adaptive bound starts again from the ceiling
    if (trainingChanged) this.normHistory.clear();
    this.settings = next.settings;
    this.privacyRefusal = null;
    this.stop = next.stop;
    if (p.schedule !== undefined) this.armSchedule();
    if (p.retrainMinSites !== undefined || p.retrainMinNew !== undefined) this.checkDataTrigger();
    return { next, fields: Object.keys(p).join(',') };
  }

  /**
   * The settings changes made at run time, applied again in order over the command line's (init). One that no longer
   * validates (a flag's range changed in a new release) is skipped and logged, not fatal: the federation starts with
   * the others.
   */
  private async restoreSettings(): Promise<void> {
    const changes = await this.d.store.settingsChanges();
    if (changes.length === 0) return;
    const fields = new Set<string>();
    for (const c of changes) {
      try {
        for (const f of this.applySettings(this.planSettings(c.patch)).fields.split(',')) if (f) fields.add(f);
      } catch (err) {
        this.d.log('settings.restore_skipped', { at: c.at, fields: Object.keys(c.patch).join(','), error: describeError(err) });
      }
    }
    this.d.log('settings.restored', { changes: changes.length, fields: [...fields].sort().join(',') });
  }

  /**
   * Makes `id` current (promote or roll back), whatever its status, and records who did it; the strategy state saved
   * with it comes back too. Sites are told (version:published), as for an approval, so what each site shows as the
   * global version is the one the next round trains from.
   */
  async promote(id: string, by: { actor: string; reason?: string } = { actor: 'admin' }): Promise<VersionRecord> {
    this.requireLeader();
    const v = await this.d.store.promote(id, await this.adminDecision('promote', by.actor, by.reason ?? 'explicit promote'));
    await this.restoreStrategy(id);
    await this.refreshView();
    publish(this.d, v);
    this.d.log('version.promoted', { id, actor: by.actor });
    this.emit({ type: 'version:decided', version: v });
    return v;
  }

  /** An admin approves candidate `id` (manual policy, or one a policy kept): it becomes current, and sites are told. */
  async approve(id: string, actor: string, reason: string): Promise<VersionRecord> {
    this.requireLeader();
    const v = await this.d.store.decide(id, await this.adminDecision('approve', actor, reason));
    await this.restoreStrategy(id);
    await this.refreshView();
    publish(this.d, v);
    this.d.log('version.approved', { id, actor });
    this.emit({ type: 'version:decided', version: v });
    return v;
  }

  /** An admin rejects candidate `id`: it stays in the registry, marked rejected; only an explicit promote uses it. */
  async reject(id: string, actor: string, reason: string): Promise<VersionRecord> {
    this.requireLeader();
    const v = await this.d.store.decide(id, await this.adminDecision('reject', actor, reason));
    await this.refreshView();
    this.d.log('version.rejected', { id, actor });
    this.emit({ type: 'version:decided', version: v });
    return v;
  }

  /** A decision by `actor`, with the metric the policy compares for the version and the current one. */
  private async adminDecision(action: PromotionDecision['action'], actor: string, reason: string): Promise<PromotionDecision> {
    return { action, actor, reason, ...(await this.comparison()), at: new Date(this.clock.now()).toISOString() };
  }

  private async comparison(): Promise<Pick<PromotionDecision, 'policy' | 'metric' | 'currentId' | 'currentValue'>> {
    const metric = this.settings.promotionMetric;
    const currentId = await this.d.store.currentId();
    const current = currentId ? await this.d.store.get(currentId) : undefined;
    return { policy: this.settings.promotion, metric, currentId, currentValue: metricValue(current?.metrics, metric) };
  }

  /**
   * Early stopping (the patience rule held): the best version by the promotion metric that was ever current becomes
   * current again, and the decision is recorded (actor 'early-stop'). Nothing happens when it is current already.
   */
  private async restoreBest(why: string): Promise<void> {
    const metric = this.settings.promotionMetric;
    const best = bestVersion(await this.d.store.list(), metric);
    const currentId = await this.d.store.currentId();
    if (!best || best.id === currentId) return;
    const d: PromotionDecision = {
      action: 'restore',
      actor: 'early-stop',
      reason: `early stopping (${why}): ${best.id} has the best ${metric}`,
      value: metricValue(best.metrics, metric),
      ...(await this.comparison()),
      at: new Date(this.clock.now()).toISOString(),
    };
    const v = await this.d.store.decide(best.id, d);
    await this.restoreStrategy(best.id);
    await this.refreshView();
    publish(this.d, v);
    this.d.log('version.restored', { id: best.id, previous: currentId ?? undefined, metric, value: d.value ?? undefined });
    this.emit({ type: 'version:decided', version: v });
  }

  /** Why the federation should stop now, or null. */
  stopReason(): string | null {
    return stopRuleHolding(this.stop, this.view.versions);
  }

  /** GET /api/privacy: the DP settings, the ε spent so far and what each DP round spent. */
  privacyReport(): PrivacyReport {
    return this.privacy.report(this.settings);
  }

  /** The next round's DP mechanism (null: DP is off), with q expected from the enrolled sites. */
  private async nextDpPlan(): Promise<{ plan: DpRoundPlan; enrolled: number } | null> {
    if (this.settings.dpClipNorm === null) return null;
    const enrolled = await this.d.transport.enrolledCount();
    const q = expectedSampleRate((available) => sampleSize(this.settings, available), enrolled);
    const plan = this.privacy.plan(this.settings, this.stop, q);
    return plan && { plan, enrolled };
  }

  /** Why the next round must not run under the privacy budget, or null. */
  private async privacyStopReason(): Promise<string | null> {
    if (this.privacyRefusal) return this.privacyRefusal;
    try {
      return this.privacy.stopReason(this.settings, (await this.nextDpPlan())?.plan ?? null);
    } catch (err) {
      // e.g. no noise multiplier reaches the target: running without the budget is never the answer
      return `privacy budget: ${describeError(err)}`;
    }
  }

  private async loop(): Promise<void> {
    let roundsWithoutVersion = 0;
    while (this.st === 'running') {
      if (this.oneOff) {
        await this.oneRound(this.oneOff);
        if (this.oneOff || this.st !== 'running') return;
        continue; // start() during the round: a run of rounds goes on from here
      }
      const why = this.stopReason() ?? (await this.privacyStopReason());
      if (why) {
        if (stopRule(this.stop, this.view.versions)?.rule === 'patience')
          await this.restoreBest(why).catch((err: unknown) => this.d.log('version.restore.failed', { error: describeError(err) }));
        this.finishedReason = why;
        this.setState('finished', why);
        return;
      }
      let record: RoundRecord | null = null;
      try {
        record = await this.runRound();
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.d.log('round.error', { error: describeError(err) });
      }
      if ((this.st as FederationState) === 'pausing') this.setState('paused');
      if (record?.outcome === 'aggregated') roundsWithoutVersion = 0;
      else if (this.st === 'running') await this.backOff(++roundsWithoutVersion);
    }
  }

  /** A scheduled or data-triggered round: the privacy budget still holds it back; no retry when it makes no version. */
  private async oneRound(oneOff: { before: FederationState }): Promise<void> {
    const why = await this.privacyStopReason();
    if (why) this.d.log('round.skipped', { trigger: this.trigger.kind, reason: why });
    else
      try {
        await this.runRound();
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.d.log('round.error', { error: describeError(err) });
      }
    if ((this.st as FederationState) === 'pausing') this.setState('paused');
    if (this.oneOff !== oneOff) return; // start() turned it into a run of rounds
    this.oneOff = null;
    if (this.st === 'running') {
      this.setState(oneOff.before === 'finished' ? 'finished' : 'idle', `${this.trigger.kind} round done`);
      // counts that changed while the round ran (data that arrived meanwhile) may call for the next one
      queueMicrotask(() => this.checkDataTrigger());
    }
  }

  /**
   * Waits retryDelayMs · 2^(n−1), at most maxRetryDelayMs, after the n-th round in a row that made no version.
   * Pause and close end the wait; sites coming online do not (after a coordinator restart they all reconnect at once).
   */
  private async backOff(n: number): Promise<void> {
    const base = this.d.retryDelayMs ?? 2000;
    const ms = Math.min(this.d.maxRetryDelayMs ?? 60_000, base * 2 ** Math.min(n - 1, 30));
    this.d.log('round.retry', { afterMs: ms, roundsWithoutVersion: n });
    const until = this.clock.now() + ms;
    // at least one wait even for 0 ms, so that back-to-back empty rounds still yield to the event loop
    do {
      await raceTimer(
        { clock: this.clock, signal: this.abort.signal },
        Math.max(0, until - this.clock.now()),
        this.availability.wait(),
        () => undefined,
      ).catch(() => {});
    } while (this.st === 'running' && this.clock.now() < until);
  }

  /** One round through every stage; returns its record (null when it was cancelled while sampling). */
  async runRound(): Promise<RoundRecord | null> {
    const { store, strategy, log } = this.d;
    const baseVersionId = await store.currentId();
    if (!baseVersionId) throw new FedloraError('INTERNAL', 'no current version: init() first');
    const round = (await store.lastRound()) + 1;
    const base = await store.loadState(baseVersionId);
    const baseBytes = await store.loadNative(baseVersionId);
    const s = this.settings;
    const deltaNormCeiling = optimizerNormCeiling(base, s);
    const dp = await this.nextDpPlan();
    const trainingConfig = strategy.configureRound(round, {
      localEpochs: s.localEpochs,
      batchSize: s.batchSize,
      learningRate: s.learningRate,
      // a strategy that wants a proximal term sets its own mu (FedProx)
      proximalMu: 0,
      maxSteps: s.maxSteps,
      clipNorm: s.clipNorm,
      maxLength: s.maxLength,
    });
    // under DP the sites clip to S, and the strategy's aggregator gets the noisy mean of the clipped deltas
    let dpAggregator: DpMeanAggregator | null = null;
    try {
      if (dp)
        dpAggregator = new DpMeanAggregator(strategy.createAggregator(round, base), base, {
          clipNorm: dp.plan.clipNorm,
          noiseMultiplier: dp.plan.noiseMultiplier,
          expectedParticipants: () => r.inbox.sampled.size,
        });
    } catch (err) {
      // a strategy that does not average cannot run under DP: the loop stops rather than retrying it every round
      this.privacyRefusal = `client-level DP: ${describeError(err)}`;
      throw err;
    }
    const aggregator = dpAggregator ?? strategy.createAggregator(round, base);
    if (s.secureAggregation && !aggregator.acceptSum) {
      // median, trimmed mean and Multi-Krum need the individual updates, which secure aggregation hides
      this.privacyRefusal = `secure aggregation: strategy ${strategy.name} needs the individual updates; use an averaging strategy (fedavg, fedprox, fedadam, fedavgm) or turn secure aggregation off`;
      throw new FedloraError('CONFIG_INVALID', this.privacyRefusal);
    }
    const bound = deltaNormBound(s, deltaNormCeiling, this.normHistory.norms());
    const plan = newRoundPlan({
      round,
      startedAt: this.clock.now(),
      baseVersionId,
      baseBytes,
      baseSha256: ((await store.get(baseVersionId)) as VersionRecord).sha256,
      config: dp ? withDpClipNorm(trainingConfig, dp.plan.clipNorm) : trainingConfig,
      trigger: this.trigger,
    });
    const weights = Object.values(base).reduce((n, t) => n + t.data.length, 0);
    const secure = s.secureAggregation
      ? new SecureRound({
          ctx: { runId: this.runId, roundId: plan.roundId, attempt: 0 },
          layout: base,
          // under DP every coordinate of a clipped delta is within S; else within what AdamW moves one weight
          clip: dp ? dp.plan.clipNorm : deltaNormCeiling / Math.sqrt(weights),
          normBound: dp ? dp.plan.clipNorm : bound,
          degree: s.secaggDegree,
          threshold: s.secaggThreshold,
          equalWeights: dp !== null,
        })
      : null;
    const r: RunningRound = {
      plan,
      stage: 'sample',
      secure,
      secureSum: null,
      deadline: 0,
      outcome: null,
      metrics: null,
      version: null,
      inbox: this.inboxes.open({
        round,
        roundId: plan.roundId,
        roundSecretKey: plan.key.secretKey,
        layout: base,
        maxUploadBytes: s.maxUploadBytes,
        deltaNormCeiling,
        deltaNormBound: bound,
        deltaNormPolicy: s.deltaNormPolicy,
        aggregator,
        stage: () => r.stage,
        secure,
      }),
    };
    const env: RoundEnv = {
      ...this.d,
      settings: s,
      clock: this.clock,
      rng: this.d.rng ?? Math.random,
      signal: this.abort.signal,
      keepSampling: () => this.st !== 'paused' && this.st !== 'closed' && this.st !== 'finished',
      availability: this.availability,
      // the stages' own lines (evaluate.failed, secagg.site.failed) name the round they belong to
      log: withFields(this.d.log, { roundId: plan.roundId }),
    };
    this.active = r;
    let end: StageEnd | null = null;
    try {
      for (const stage of secure ? SECURE_ROUND_STAGES : ROUND_STAGES) {
        r.stage = stage;
        log('round.stage', { round, stage, sampled: r.inbox.sampled.size || undefined, roundId: plan.roundId });
        this.emit({ type: 'round:stage', round, roundId: plan.roundId, stage });
        const result = await raceTimer(env, STAGES[stage].timeoutMs(s), STAGES[stage].run(r, env), () => ({
          end: 'kept' as const,
          reason: `stage ${stage} timed out`,
        }));
        if (result !== 'next') {
          end = result;
          break;
        }
        await this.d.afterStage?.(stage, round);
      }
    } catch (err) {
      if (this.abort.signal.aborted) throw err;
      end = { end: 'kept', reason: describeError(err) };
    } finally {
      this.inboxes.close(r.inbox);
      this.active = null;
    }
    if (end?.end === 'cancelled' && r.inbox.sampled.size === 0) {
      log('round.cancelled', { round, reason: end.reason, roundId: plan.roundId });
      return null;
    }
    // a noisy aggregate was computed (even if not versioned after all): the round spent privacy
    const noised = dpAggregator?.report;
    const privacy =
      dp && noised
        ? this.privacy.record(
            round,
            {
              sampleRate: Math.min(1, r.inbox.sampled.size / Math.max(dp.enrolled, 1)),
              noiseMultiplier: dp.plan.noiseMultiplier,
              clipNorm: dp.plan.clipNorm,
              expectedParticipants: noised.expectedParticipants,
              noiseStd: noised.noiseStd,
            },
            s.dpDelta,
          )
        : null;
    return this.finishRound(r, end, privacy);
  }

  private async finishRound(r: RunningRound, end: StageEnd | null, privacy: RoundPrivacy | null): Promise<RoundRecord> {
    const record: RoundRecord = {
      ...roundRecord(r, end, this.d.strategy.name, this.clock.now()),
      ...(privacy ? { privacy } : {}),
    };
    const { round, roundId } = r.plan;
    this.normHistory.addRound(r.inbox.acceptedNorms);
    this.d.transport.closed([...r.inbox.sampled], {
      roundId,
      round,
      outcome: record.outcome,
      updates: record.updates,
      failures: record.failures.length,
    });
    await this.d.store.addRound(record);
    await this.refreshView();
    const m = r.version?.metrics;
    this.d.log('round.end', {
      round,
      outcome: record.outcome,
      reason: record.reason,
      updates: record.updates,
      failures: record.failures.length,
      clipped: record.clipped?.length || undefined,
      epsilon: privacy?.epsilon,
      version: record.versionId,
      accuracy: m?.accuracy,
      macroF1: m?.macroF1,
      seconds: record.durationMs / 1000,
      roundId,
    });
    this.emit({ type: 'round:end', record });
    if (r.version) this.emit({ type: 'version:new', version: r.version });
    return record;
  }

  // ---- the edge: what sites send, handed to the running round's inbox (inbox.ts) ----

  /** Validates and aggregates one upload; throws a peer-visible FedloraError on rejection (the round goes on). */
  upload(siteId: string, siteSigningKey: Uint8Array, req: UploadRequest): void {
    this.inboxes.upload(siteId, siteSigningKey, req);
  }

  /** A secure round's masked upload; throws a peer-visible FedloraError on rejection (the round goes on). */
  maskedUpload(siteId: string, req: ClientRequest<'secagg:upload'>): void {
    this.inboxes.maskedUpload(siteId, req);
  }

  /** A site reports it cannot finish the round: it is not waited for. */
  reportFailure(siteId: string, req: ClientRequest<'round:fail'>): void {
    this.inboxes.reportFailure(siteId, req);
  }

  /** A site's connection closed: it leaves the running round (never blocking it) and the available pool. */
  siteLeft(siteId: string): void {
    this.inboxes.siteLeft(siteId);
    this.availability.fire();
  }
}
