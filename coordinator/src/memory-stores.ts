// In-memory AdapterStore and SiteStore that answer every call after a turn of the event loop, as a database store
// would: for tests that the coordinator depends on the store interfaces only (exported by testing.ts). Nothing is
// persisted; each store holds plain records and copies them in and out.

import { createHash } from 'node:crypto';
import { FedloraError } from '@fedlora/shared/errors.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { parsePublicIdentity } from '@fedlora/shared/crypto/keys.ts';
import type { StrategyState } from '@fedlora/shared/aggregation/strategy.ts';
import { decodeAdapter, encodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { applyDecision, type AdapterStore, type NewVersion, type PromotionDecision, type RoundRecord, type SettingsChange, type VersionRecord } from './registry/types';
import { hashToken as hashTokenBytes, newSiteRecord, siteExists } from './sites/registry';
import type { PublicSiteRecord, SiteRecord, SiteStore } from './sites/types';
import { publicUser, type PublicUser, type UserChange, type UserRecord, type UserStore } from './users/types';

/** one turn of the event loop: other sockets and timers run in between, as they would during a query */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class MemoryAdapterStore implements AdapterStore {
  private versions: VersionRecord[] = [];
  private current: string | null = null;
  private readonly roundRecords: RoundRecord[] = [];
  private readonly changes: SettingsChange[] = [];
  private readonly natives = new Map<string, Uint8Array>();
  private readonly strategyStates = new Map<string, StrategyState>();
  /** how many calls reached the store, so that a test can tell it was used */
  calls = 0;

  private async answer<T>(fn: () => T): Promise<T> {
    this.calls++;
    await turn();
    return fn();
  }

  private require(id: string): VersionRecord {
    const v = this.versions.find((x) => x.id === id);
    if (!v) throw new FedloraError('NOT_FOUND', `no version ${id}`);
    return v;
  }

  list(): Promise<VersionRecord[]> {
    return this.answer(() => this.versions.map((v) => ({ ...v })));
  }

  get(id: string): Promise<VersionRecord | undefined> {
    return this.answer(() => {
      const v = this.versions.find((x) => x.id === id);
      return v ? { ...v } : undefined;
    });
  }

  currentId(): Promise<string | null> {
    return this.answer(() => this.current);
  }

  lastRound(): Promise<number> {
    return this.answer(() =>
      Math.max(0, ...this.versions.map((v) => v.round), ...this.roundRecords.map((r) => r.round)),
    );
  }

  loadNative(id: string): Promise<Uint8Array> {
    return this.answer(() => this.natives.get(this.require(id).id) as Uint8Array);
  }

  async loadState(id: string): Promise<NamedTensors> {
    return decodeAdapter(await this.loadNative(id)).adapter;
  }

  loadStrategyState(id: string): Promise<StrategyState | null> {
    return this.answer(() => this.strategyStates.get(this.require(id).id) ?? null);
  }

  addVersion(
    v: NewVersion,
    state: NamedTensors,
    strategyState: StrategyState | null,
    o: { candidate?: boolean } = {},
  ): Promise<VersionRecord> {
    return this.answer(() => {
      const id = `v${this.versions.length}`;
      const native = encodeAdapter({ versionId: id, round: v.round, adapter: state });
      const sha256 = createHash('sha256').update(native).digest('hex');
      const record: VersionRecord = {
        ...v,
        id,
        createdAt: new Date().toISOString(),
        sha256,
        bytes: native.byteLength,
        status: o.candidate ? 'candidate' : 'promoted',
        decisions: [],
      };
      this.versions = [...this.versions, record];
      this.natives.set(id, native);
      if (strategyState) this.strategyStates.set(id, strategyState);
      if (!o.candidate) this.current = id;
      return { ...record };
    });
  }

  promote(id: string, decision?: PromotionDecision): Promise<VersionRecord> {
    return this.answer(() => {
      const v = this.require(id);
      const record = decision ? applyDecision(v, { ...decision, action: 'promote' }, this.current).record : { ...v, status: 'promoted' as const };
      return this.replace(record, true);
    });
  }

  decide(id: string, decision: PromotionDecision): Promise<VersionRecord> {
    return this.answer(() => {
      const { record, current } = applyDecision(this.require(id), decision, this.current);
      return this.replace(record, current);
    });
  }

  private replace(record: VersionRecord, current: boolean): VersionRecord {
    this.versions = this.versions.map((x) => (x.id === record.id ? record : x));
    if (current) this.current = record.id;
    return { ...record };
  }

  rounds(): Promise<RoundRecord[]> {
    return this.answer(() => this.roundRecords.map((r) => ({ ...r })));
  }

  addRound(r: RoundRecord): Promise<void> {
    return this.answer(() => {
      this.roundRecords.push({ ...r });
    });
  }

  settingsChanges(): Promise<SettingsChange[]> {
    return this.answer(() => structuredClone(this.changes));
  }

  addSettingsChange(c: SettingsChange): Promise<void> {
    return this.answer(() => {
      this.changes.push(structuredClone(c));
    });
  }
}

const hashToken = (token: string) => hashTokenBytes(token).toString('hex');
const toPublic = ({ tokenHash: _t, ...pub }: SiteRecord): PublicSiteRecord => ({ ...pub });

export class MemorySiteStore implements SiteStore {
  private sites: SiteRecord[] = [];
  calls = 0;

  private async answer<T>(fn: () => T): Promise<T> {
    this.calls++;
    await turn();
    return fn();
  }

  list(): Promise<PublicSiteRecord[]> {
    return this.answer(() => this.sites.map(toPublic));
  }

  get(id: string): Promise<PublicSiteRecord | undefined> {
    return this.answer(() => this.sites.map(toPublic).find((s) => s.id === id));
  }

  activeCount(): Promise<number> {
    return this.answer(() => this.sites.filter((s) => !s.revokedAt).length);
  }

  create(
    name: string,
    token?: string,
  ): Promise<{ site: PublicSiteRecord; joinToken: string; reenrolled: boolean }> {
    return this.answer(() => {
      const made = newSiteRecord(name, token);
      const { joinToken } = made;
      const id = made.rec.id;
      const old = this.sites.find((s) => s.id === id);
      if (old && !old.revokedAt) throw siteExists(id);
      const rec: SiteRecord = { ...made.rec, createdAt: old?.createdAt ?? made.rec.createdAt };
      this.sites = [...this.sites.filter((s) => s.id !== id), rec];
      return { site: toPublic(rec), joinToken, reenrolled: old !== undefined };
    });
  }

  enroll(token: string, keys: { signingPublicKey: string; boxPublicKey: string }): Promise<PublicSiteRecord> {
    return this.answer(() => {
      const site = this.sites.find((s) => s.tokenHash === hashToken(token));
      if (!site || site.revokedAt) throw new FedloraError('UNAUTHORIZED', 'unknown join token');
      if (site.enrolledAt) throw new FedloraError('TOKEN_USED', 'this join token was already used');
      const pub = parsePublicIdentity(keys);
      site.enrolledAt = new Date().toISOString();
      site.signingPublicKey = pub.signingPublicKey;
      site.boxPublicKey = pub.boxPublicKey;
      return toPublic(site);
    });
  }

  revoke(id: string): Promise<PublicSiteRecord> {
    return this.answer(() => {
      const site = this.sites.find((s) => s.id === id);
      if (!site) throw new FedloraError('NOT_FOUND', `no site ${id}`);
      site.revokedAt ??= new Date().toISOString();
      return toPublic(site);
    });
  }

  signingKey(id: string): Promise<Uint8Array | null> {
    return this.answer(() => {
      const s = this.sites.find((x) => x.id === id);
      if (!s || s.revokedAt || !s.signingPublicKey) return null;
      return new Uint8Array(Buffer.from(s.signingPublicKey, 'base64'));
    });
  }
}

export class MemoryUserStore implements UserStore {
  private users: UserRecord[] = [];
  calls = 0;

  private async answer<T>(fn: () => T): Promise<T> {
    this.calls++;
    await turn();
    return fn();
  }

  list(): Promise<PublicUser[]> {
    return this.answer(() => this.users.map(publicUser));
  }

  get(username: string): Promise<UserRecord | undefined> {
    return this.answer(() => {
      const u = this.users.find((x) => x.username === username);
      return u && { ...u };
    });
  }

  byTokenHash(tokenHash: string): Promise<UserRecord | undefined> {
    return this.answer(() => {
      const u = this.users.find((x) => x.tokenHash === tokenHash);
      return u && { ...u };
    });
  }

  create(rec: UserRecord): Promise<PublicUser> {
    return this.answer(() => {
      if (this.users.some((x) => x.username === rec.username))
        throw new FedloraError('CONFLICT', `a user named ${rec.username} exists`);
      this.users = [...this.users, { ...rec }];
      return publicUser(rec);
    });
  }

  update(username: string, change: UserChange): Promise<PublicUser> {
    return this.answer(() => {
      const u = this.users.find((x) => x.username === username);
      if (!u) throw new FedloraError('NOT_FOUND', `no user ${username}`);
      const next = { ...u, ...change, updatedAt: new Date().toISOString() };
      this.users = this.users.map((x) => (x.username === username ? next : x));
      return publicUser(next);
    });
  }
}
