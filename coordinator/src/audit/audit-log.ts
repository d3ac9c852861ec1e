// The append-only audit log (issue 21): the AuditStore interface the admin API sees, and its embedded store, audit.jsonl
// in the data dir (postgres/stores.ts keeps it in a table). One JSON line per entry, appended and fsynced before the
// action's answer goes out (Storage.append). Appends that arrive while one is being written are group-committed, as
// the site journal does (sites/registry.ts): chained in arrival order and written in one append, and each caller's
// promise settles when the bytes holding its entry are durable. A write that fails chains nothing: the next group
// first cuts the file back to its last durable byte, so a partial line never sits inside the chain.

import { FedloraError } from '@fedlora/shared/errors.ts';
import type { Storage } from '../storage';
import { chainEntry, parseAuditLines, type AuditEntry, type AuditInput } from './chain';

export interface AuditPage {
  /** entries in the log */
  total: number;
  /** newest first */
  entries: AuditEntry[];
}

export interface AuditStore {
  /** chains and stores one entry; resolves once it is durable */
  append(input: AuditInput): Promise<AuditEntry>;
  /** up to `limit` entries with seq < `before` (default: the newest), newest first */
  page(o: { before?: number; limit: number }): Promise<AuditPage>;
  /** every entry in stored order (export and verification) */
  all(): Promise<AuditEntry[]>;
}

export const AUDIT_FILE = 'audit.jsonl';

interface Pending {
  input: AuditInput;
  resolve: (e: AuditEntry) => void;
  reject: (err: unknown) => void;
}

export class FileAuditLog implements AuditStore {
  private head: { seq: number; hash: string } | null = null;
  /** bytes of the file that hold whole, durable lines */
  private durableBytes = 0;
  private suspect = false;
  private pending: Pending[] = [];
  private writing: Promise<void> | null = null;

  private constructor(
    private readonly storage: Storage,
    private readonly now: () => Date,
  ) {}

  /** Opens the log; a torn last line (a crash mid-append, never acknowledged) is cut off before the next append. */
  static async open(storage: Storage, now: () => Date = () => new Date()): Promise<FileAuditLog> {
    const log = new FileAuditLog(storage, now);
    const bytes = await storage.read(AUDIT_FILE);
    if (bytes) {
      const text = new TextDecoder().decode(bytes);
      const { entries, torn } = parseAuditLines(text);
      const last = entries.at(-1);
      if (last && (typeof last.seq !== 'number' || typeof last.hash !== 'string'))
        // the chain continues from the last entry; without one it cannot, and `audit verify` says where it broke
        throw new FedloraError('FILE_CORRUPT', `${storage.where}: the last line of ${AUDIT_FILE} is not an audit entry (fedlora-coordinator audit verify names the first bad one)`);
      log.head = last ? { seq: last.seq, hash: last.hash } : null;
      log.durableBytes = new TextEncoder().encode(text.slice(0, text.lastIndexOf('\n') + 1)).length;
      log.suspect = torn;
    }
    return log;
  }

  append(input: AuditInput): Promise<AuditEntry> {
    return new Promise((resolve, reject) => {
      this.pending.push({ input, resolve, reject });
      if (!this.writing) this.writing = Promise.resolve().then(() => this.flush());
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const group = this.pending;
      this.pending = [];
      let head = this.head;
      const entries = group.map((p) => (head = chainEntry(p.input, head, this.now())));
      const text = entries.map((e) => JSON.stringify(e) + '\n').join('');
      try {
        if (this.suspect) {
          const bytes = (await this.storage.read(AUDIT_FILE)) ?? new Uint8Array(0);
          await this.storage.write(AUDIT_FILE, bytes.slice(0, this.durableBytes));
          this.suspect = false;
        }
        await this.storage.append(AUDIT_FILE, text);
      } catch (err) {
        this.suspect = true;
        for (const p of group) p.reject(err);
        continue;
      }
      this.head = head;
      this.durableBytes += new TextEncoder().encode(text).length;
      group.forEach((p, i) => p.resolve(entries[i]));
    }
    this.writing = null;
  }

  async all(): Promise<AuditEntry[]> {
    const bytes = await this.storage.read(AUDIT_FILE);
    if (!bytes) return [];
    return parseAuditLines(new TextDecoder().decode(bytes.slice(0, this.durableBytes))).entries;
  }

  async page(o: { before?: number; limit: number }): Promise<AuditPage> {
    const all = await this.all();
    const end = o.before === undefined ? all.length : Math.max(0, Math.min(all.length, o.before - 1));
    return { total: all.length, entries: all.slice(Math.max(0, end - o.limit), end).reverse() };
  }
}
