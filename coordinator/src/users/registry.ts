// Console users in the coordinator's data dir: users.json, rewritten atomically on each change (storage.ts: temp
// file, fsync, rename). Users are a handful and change rarely, so a snapshot is enough (no journal as for sites).
// Changes run one at a time, each on the records left by the one before.

import { FedloraError } from '@fedlora/shared/errors.ts';
import { readJson, writeJson, type Storage } from '../storage';
import { publicUser, ROLES, type PublicUser, type UserChange, type UserRecord, type UserStore } from './types';

const FILE = 'users.json';

export class UserRegistry implements UserStore {
  private users = new Map<string, UserRecord>();
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly storage: Storage) {}

  static async open(storage: Storage): Promise<UserRegistry> {
    const r = new UserRegistry(storage);
    const f = await readJson<{ v: 1; users: UserRecord[] }>(storage, FILE);
    if (f) {
      if (f.v !== 1 || !Array.isArray(f.users))
        throw new FedloraError('FILE_CORRUPT', `${storage.where}: ${FILE} has an unknown layout`);
      for (const u of f.users) {
        if (typeof u?.username !== 'string' || !(ROLES as readonly string[]).includes(u.role))
          throw new FedloraError('FILE_CORRUPT', `${storage.where}: ${FILE} holds a user without a name or a known role`);
        r.users.set(u.username, u);
      }
    }
    return r;
  }

  /** Applies `change` to a copy of the users, writes the copy, and only then makes it the current one. */
  private mutate<T>(change: (users: Map<string, UserRecord>) => T): Promise<T> {
    const run = this.queue.then(async () => {
      const next = new Map(this.users);
      const out = change(next);
      await writeJson(this.storage, FILE, { v: 1, users: [...next.values()] });
      this.users = next;
      return out;
    });
    this.queue = run.catch(() => {});
    return run;
  }

  list(): PublicUser[] {
    return [...this.users.values()].map(publicUser);
  }

  get(username: string): UserRecord | undefined {
    const u = this.users.get(username);
    return u && { ...u };
  }

  byTokenHash(tokenHash: string): UserRecord | undefined {
    for (const u of this.users.values()) if (u.tokenHash === tokenHash) return { ...u };
    return undefined;
  }

  create(rec: UserRecord): Promise<PublicUser> {
    return this.mutate((users) => {
      if (users.has(rec.username)) throw new FedloraError('CONFLICT', `a user named ${rec.username} exists`);
      users.set(rec.username, { ...rec });
      return publicUser(rec);
    });
  }

  update(username: string, change: UserChange): Promise<PublicUser> {
    return this.mutate((users) => {
      const u = users.get(username);
      if (!u) throw new FedloraError('NOT_FOUND', `no user ${username}`);
      const next = { ...u, ...change, updatedAt: new Date().toISOString() };
      users.set(username, next);
      return publicUser(next);
    });
  }
}
