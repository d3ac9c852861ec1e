// The adapter registry on a Storage (a data dir, or memory in tests): every version's native bytes
// (encodeAdapter) under versions/<id>.adapter, FedAdam-style strategy state beside it, and one index.json.
// Content files are written before the index, each atomically, so a crash leaves at worst an orphan file.

import { FedloraError } from '@fedlora/shared/errors.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import type { StrategyState } from '@fedlora/shared/aggregation/strategy.ts';
import { decodeAdapter, encodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { sha256Hex } from '@fedlora/shared/crypto/hash.ts';
import { decodeStrategyState, encodeStrategyState } from './strategy-state';
import { readJson, writeJson, type Storage } from '../storage';
import {
  applyDecision,
  versionRecord,
  type AdapterStore,
  type NewVersion,
  type PromotionDecision,
  type RoundRecord,
  type SettingsChange,
  type VersionRecord,
} from './types';

interface IndexFile {
  v: 1;
  currentId: string | null;
  versions: VersionRecord[];
  rounds: RoundRecord[];
  /** absent in an index from before run-time settings were kept */
  settingsChanges?: SettingsChange[];
}

const INDEX = 'index.json';
const adapterFile = (id: string) => `versions/${id}.adapter`;
const strategyFile = (id: string) => `versions/${id}.strategy.safetensors`;

export class AdapterRegistry implements AdapterStore {
  private index: IndexFile = { v: 1, currentId: null, versions: [], rounds: [] };
  /** writes are serialized so two index updates never interleave */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly storage: Storage) {}

  /** Opens (or starts) the registry stored in `storage`. */
  static async open(storage: Storage): Promise<AdapterRegistry> {
    const r = new AdapterRegistry(storage);
    const idx = await readJson<IndexFile>(storage, INDEX);
    if (idx) {
      if (idx.v !== 1 || !Array.isArray(idx.versions) || !Array.isArray(idx.rounds) || !(idx.settingsChanges === undefined || Array.isArray(idx.settingsChanges)))
        throw new FedloraError('FILE_CORRUPT', `${storage.where}: ${INDEX} has an unknown layout`);
      if (idx.currentId !== null && !idx.versions.some((v) => v.id === idx.currentId))
        throw new FedloraError(
          'FILE_CORRUPT',
          `${storage.where}: current version ${idx.currentId} is not in the index`,
        );
      r.index = idx;
    }
    return r;
  }

  list(): VersionRecord[] {
    return this.index.versions.map((v) => ({ ...v }));
  }

  get(id: string): VersionRecord | undefined {
    const v = this.index.versions.find((x) => x.id === id);
    return v ? { ...v } : undefined;
  }

  currentId(): string | null {
    return this.index.currentId;
  }

  lastRound(): number {
    return Math.max(0, ...this.index.versions.map((v) => v.round), ...this.index.rounds.map((r) => r.round));
  }

  private require(id: string): VersionRecord {
    const v = this.index.versions.find((x) => x.id === id);
    if (!v) throw new FedloraError('NOT_FOUND', `no version ${id}`);
    return v;
  }

  async loadNative(id: string): Promise<Uint8Array> {
    const v = this.require(id);
    const bytes = await this.storage.read(adapterFile(id));
    if (!bytes)
      throw new FedloraError('FILE_NOT_FOUND', `${this.storage.where}: ${adapterFile(id)} is missing`);
    if ((await sha256Hex(bytes)) !== v.sha256)
      throw new FedloraError(
        'FILE_CORRUPT',
        `${this.storage.where}: ${adapterFile(id)} does not match its recorded sha256`,
      );
    return bytes;
  }

  async loadState(id: string): Promise<NamedTensors> {
    return decodeAdapter(await this.loadNative(id)).adapter;
  }

  async loadStrategyState(id: string): Promise<StrategyState | null> {
    this.require(id);
    const bytes = await this.storage.read(strategyFile(id));
    return bytes ? decodeStrategyState(bytes, strategyFile(id)) : null;
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }

  addVersion(
    v: NewVersion,
    state: NamedTensors,
    strategyState: StrategyState | null,
    o: { candidate?: boolean } = {},
  ): Promise<VersionRecord> {
    return this.serialized(async () => {
      const id = `v${this.index.versions.length}`;
      const native = encodeAdapter({ versionId: id, round: v.round, adapter: state });
      const strategyBytes = encodeStrategyState(strategyState);
      if (strategyBytes) await this.storage.write(strategyFile(id), strategyBytes);
      await this.storage.write(adapterFile(id), native);
      const record = await versionRecord(v, id, native, o);
      const next: IndexFile = {
        ...this.index,
        currentId: o.candidate ? this.index.currentId : id,
        versions: [...this.index.versions, record],
      };
      await writeJson(this.storage, INDEX, next);
      this.index = next;
      return { ...record };
    });
  }

  promote(id: string, decision?: PromotionDecision): Promise<VersionRecord> {
    return this.serialized(async () => {
      const v = this.require(id);
      const record = decision ? applyDecision(v, { ...decision, action: 'promote' }, this.index.currentId).record : { ...v, status: 'promoted' as const };
      return this.write(record, true);
    });
  }

  decide(id: string, decision: PromotionDecision): Promise<VersionRecord> {
    return this.serialized(async () => {
      const { record, current } = applyDecision(this.require(id), decision, this.index.currentId);
      return this.write(record, current);
    });
  }

  /** replaces a version's record (and makes it current): index.json written first, then the in-memory index */
  private async write(record: VersionRecord, current: boolean): Promise<VersionRecord> {
    const next: IndexFile = {
      ...this.index,
      currentId: current ? record.id : this.index.currentId,
      versions: this.index.versions.map((x) => (x.id === record.id ? record : x)),
    };
    await writeJson(this.storage, INDEX, next);
    this.index = next;
    return { ...record };
  }

  rounds(): RoundRecord[] {
    return this.index.rounds.map((r) => ({ ...r }));
  }

  addRound(r: RoundRecord): Promise<void> {
    return this.serialized(async () => {
      const next: IndexFile = { ...this.index, rounds: [...this.index.rounds, r] };
      await writeJson(this.storage, INDEX, next);
      this.index = next;
    });
  }

  settingsChanges(): SettingsChange[] {
    return structuredClone(this.index.settingsChanges ?? []);
  }

  addSettingsChange(c: SettingsChange): Promise<void> {
    return this.serialized(async () => {
      const next: IndexFile = { ...this.index, settingsChanges: [...(this.index.settingsChanges ?? []), structuredClone(c)] };
      await writeJson(this.storage, INDEX, next);
      this.index = next;
    });
  }
}
