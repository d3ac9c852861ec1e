// The browser site's persistent state in IndexedDB (not localStorage: keys and model bytes are binary and
// localStorage is readable by any script as plain strings): the site identity (Ed25519 + X25519 keys and the
// site id the coordinator assigned) and the base-model file cache, whose bytes are hash-checked again on load.

import { FedloraError } from '@fedlora/shared/errors.ts';
import type { SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { verifyFileBytes, type ManifestFile } from '@fedlora/shared/connection/model-download.ts';

const DB_NAME = 'fedlora-site';
const DB_VERSION = 1;
const IDENTITY = 'identity';
const MODEL = 'model-files';

export interface StoredIdentity {
  /** the coordinator origin these keys are enrolled with */
  coordinator: string;
  /** null until enrollment succeeded */
  siteId: string | null;
  keys: SiteKeys;
  /** the coordinator signing-key fingerprint pinned from the join token (absent: enrolled before pinning) */
  coordinatorFingerprint?: string;
}

function promisify<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export class SiteStore {
  private constructor(private readonly db: IDBDatabase) {}

  static async open(name = DB_NAME): Promise<SiteStore> {
    const req = indexedDB.open(name, DB_VERSION);
    req.onupgradeneeded = () => {
      req.result.createObjectStore(IDENTITY);
      req.result.createObjectStore(MODEL);
    };
    try {
      return new SiteStore(await promisify(req));
    } catch (err) {
      throw new FedloraError('BACKEND_UNAVAILABLE', 'IndexedDB is unavailable in this tab (private mode?)', { cause: err });
    }
  }

  private async get<T>(store: string, key: string): Promise<T | undefined> {
    return (await promisify(this.db.transaction(store).objectStore(store).get(key))) as T | undefined;
  }

  private async put(store: string, key: string, value: unknown): Promise<void> {
    const tx = this.db.transaction(store, 'readwrite');
    tx.objectStore(store).put(value, key);
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }

  /** Identity for a coordinator origin (keys are per federation, like a Node state dir). */
  identity(coordinator: string): Promise<StoredIdentity | undefined> {
    return this.get<StoredIdentity>(IDENTITY, coordinator);
  }

  saveIdentity(id: StoredIdentity): Promise<void> {
    return this.put(IDENTITY, id.coordinator, id);
  }

  /** A cached model file, or null when absent or when its bytes no longer match the manifest (re-downloaded then). */
  async modelFile(f: ManifestFile): Promise<Uint8Array | null> {
    const bytes = await this.get<Uint8Array>(MODEL, f.sha256);
    if (!bytes) return null;
    try {
      await verifyFileBytes(f, bytes);
      return bytes;
    } catch {
      return null;
    }
  }

  saveModelFile(f: ManifestFile, bytes: Uint8Array): Promise<void> {
    // keyed by content hash: two federations with the same base model share one copy
    return this.put(MODEL, f.sha256, bytes);
  }

  close(): void {
    this.db.close();
  }
}
