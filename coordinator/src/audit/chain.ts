// The audit trail's entries and their hash chain (issue 21): each entry records who did what, to what, with what
// outcome, and carries the hash of the entry before it, so that altering, removing or reordering an entry breaks the
// chain at that entry. hash = SHA-256 (hex) of the entry without `hash`, as canonical JSON: keys sorted, no spaces,
// JSON.stringify's strings and numbers, which is RFC 8785 (JCS) for entries of strings and integers; an auditor can
// recompute it with any JCS implementation. The first entry's prevHash is 64 zeros.

import { createHash } from 'node:crypto';
import type { Role } from '../users/types';

export const GENESIS_HASH = '0'.repeat(64);
/** the project of an entry that names none: the coordinator's default project, and coordinator-wide actions */
export const DEFAULT_PROJECT = 'default';

/** What an action records; the log adds seq, time, project and the chain. Never a secret: ids, names and codes. */
export interface AuditInput {
  /** a username, "bootstrap-token", or "anonymous" for a refused login */
  actor: string;
  /** the actor's role when it acted; "none" before a login succeeded */
  role: Role | 'none';
  /** e.g. login, site.create, site.revoke, settings.change, federation.start, version.approve, user.create */
  action: string;
  /** what it acted on: a site id, version id, username, "federation", "settings" */
  target: string;
  /** "ok", "forbidden" (the role may not), or the error code that refused it (UNAUTHORIZED, CONFLICT, …) */
  outcome: string;
  /** optional context that is not a secret: a decision's reason, the settings' changed fields */
  detail?: string;
  /** the project acted on (default DEFAULT_PROJECT) */
  project?: string;
}

export interface AuditEntry extends AuditInput {
  /** 1, 2, 3, … with no gap */
  seq: number;
  /** ISO 8601 */
  time: string;
  project: string;
  prevHash: string;
  hash: string;
}

/** RFC 8785 canonical JSON of a flat or nested object of strings, numbers, booleans and null. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/** The hash an entry must carry: over every field but `hash` itself (prevHash included). */
export function entryHash(e: Omit<AuditEntry, 'hash'> & { hash?: string }): string {
  const { hash: _hash, ...rest } = e;
  return createHash('sha256').update(canonicalJson(rest), 'utf8').digest('hex');
}

/** The next entry of a chain whose last entry is `prev` (null: the first). */
export function chainEntry(input: AuditInput, prev: { seq: number; hash: string } | null, time: Date, project = DEFAULT_PROJECT): AuditEntry {
  const body: Omit<AuditEntry, 'hash'> = {
    seq: (prev?.seq ?? 0) + 1,
    time: time.toISOString(),
    project: input.project ?? project,
    actor: input.actor,
    role: input.role,
    action: input.action,
    target: input.target,
    outcome: input.outcome,
    ...(input.detail !== undefined ? { detail: input.detail } : {}),
    prevHash: prev?.hash ?? GENESIS_HASH,
  };
  return { ...body, hash: entryHash(body) };
}

export type ChainCheck =
  | { ok: true; entries: number; headHash: string }
  /** seq: the first position (1-based, as seq counts) where the chain does not hold */
  | { ok: false; entries: number; seq: number; reason: string };

/**
 * Checks a whole log, in the order it is stored: seq must count 1, 2, 3, …, each prevHash must be the hash of the
 * entry before, and each hash must match the entry. The first entry that fails is named: an edited entry fails its
 * own hash, a removed one leaves a gap in seq, two swapped ones break seq at the first of them. Removing entries from
 * the end leaves a valid shorter chain: compare `entries` and `headHash` with a copy kept elsewhere (docs/SECURITY.md).
 */
export function verifyAuditChain(entries: readonly AuditEntry[]): ChainCheck {
  let prevHash = GENESIS_HASH;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const seq = i + 1;
    const bad = (reason: string): ChainCheck => ({ ok: false, entries: entries.length, seq, reason: `entry ${seq}: ${reason}` });
    if (typeof e !== 'object' || e === null) return bad('is not an object');
    if (e.seq !== seq)
      return bad(`has seq ${String(e.seq)} where ${seq} belongs: an entry was removed, inserted or moved`);
    if (e.prevHash !== prevHash) return bad('its prevHash is not the hash of the entry before: an entry before it was changed, removed or moved');
    if (e.hash !== entryHash(e)) return bad('its hash does not match its fields: the entry was altered');
    prevHash = e.hash;
  }
  return { ok: true, entries: entries.length, headHash: prevHash };
}

/** Entries of an audit JSONL file; a line that is not JSON is kept as null so that verifyAuditChain names its seq. */
export function parseAuditLines(text: string): { entries: AuditEntry[]; torn: boolean } {
  const lines = text.split('\n');
  const last = lines.pop() as string;
  const entries = lines.map((line) => {
    try {
      return JSON.parse(line) as AuditEntry;
    } catch {
      return null as unknown as AuditEntry;
    }
  });
  return { entries, torn: last.length > 0 };
}
