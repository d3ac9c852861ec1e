// The store contract (store-contract.ts) on the embedded file stores (a data dir, as `npm start` uses) and on the
// in-memory test stores. postgres/stores.test.ts runs the same suite on PostgreSQL.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirStorage } from './storage';
import { AdapterRegistry } from './registry/registry';
import { SiteRegistry } from './sites/registry';
import { MemoryAdapterStore, MemorySiteStore, MemoryUserStore } from './memory-stores';
import { UserRegistry } from './users/registry';
import { FileAuditLog } from './audit/audit-log';
import { adapterStoreContract, auditStoreContract, siteStoreContract, userStoreContract } from './store-contract';

function dataDir(): { dir: string; close: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-store-'));
  return { dir, close: async () => rmSync(dir, { recursive: true, force: true }) };
}

adapterStoreContract('file', async () => {
  const { dir, close } = dataDir();
  return { store: await AdapterRegistry.open(new DirStorage(dir)), reopen: () => AdapterRegistry.open(new DirStorage(dir)), close };
});

siteStoreContract('file', async () => {
  const { dir, close } = dataDir();
  return { store: await SiteRegistry.open(new DirStorage(dir)), reopen: () => SiteRegistry.open(new DirStorage(dir)), close };
});

// nothing to reopen: the memory stores live as long as the object
adapterStoreContract('memory', async () => {
  const store = new MemoryAdapterStore();
  return { store, reopen: async () => store };
});

siteStoreContract('memory', async () => {
  const store = new MemorySiteStore();
  return { store, reopen: async () => store };
});

userStoreContract('file', async () => {
  const { dir, close } = dataDir();
  return { store: await UserRegistry.open(new DirStorage(dir)), reopen: () => UserRegistry.open(new DirStorage(dir)), close };
});

userStoreContract('memory', async () => {
  const store = new MemoryUserStore();
  return { store, reopen: async () => store };
});

auditStoreContract('file', async () => {
  const { dir, close } = dataDir();
  return { store: await FileAuditLog.open(new DirStorage(dir)), reopen: () => FileAuditLog.open(new DirStorage(dir)), close };
});
