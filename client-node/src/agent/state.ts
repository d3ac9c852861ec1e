// The site's local state directory: its secret keys (keys.json, mode 600, never printed) and its enrollment
// (site.json: coordinator URL, site id, data file and columns). Writes are atomic (temp file + rename).

import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { parseSiteKeys, serializeSiteKeys, type SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { IdSchema } from '@fedlora/shared/protocol/schemas.ts';
import { parseFingerprint } from '@fedlora/shared/crypto/coordinator-trust.ts';

/** Default state directory, relative to the working directory (the compose file mounts a volume there). */
export const DEFAULT_STATE_DIR = '.fedlora/site';
export const KEYS_FILE = 'keys.json';
export const SITE_FILE = 'site.json';

export interface SiteConfig {
  v: 1;
  /** http(s) URL of the coordinator */
  coordinator: string;
  siteId: string;
  /** absolute path of the site's labelled data (CSV/TSV/JSONL) */
  data: string;
  textColumn?: string;
  labelColumn?: string;
  enrolledAt: string;
  /**
   * the fingerprint of the coordinator's signing key, pinned from the join token (crypto/coordinator-trust.ts): the
   * site talks only to a coordinator that proves this key. Absent in a site.json from before pinning: `run` then
   * refuses until `join` records it.
   */
  coordinatorFingerprint?: string;
  /** absolute path of a private CA's PEM certificate for an https:// coordinator (join --ca) */
  caFile?: string;
  /** the coordinator's project the site enrolled into, as its join token named it (absent: the default project) */
  project?: string;
}

const SITE_KEYS = ['v', 'coordinator', 'siteId', 'data', 'textColumn', 'labelColumn', 'enrolledAt', 'coordinatorFingerprint', 'caFile', 'project'];

/** The problems of a site.json value (empty = valid); the file is ours, but may have been hand-edited. */
function siteConfigProblems(x: unknown): string[] {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return ['expected an object'];
  const o = x as Record<string, unknown>;
  const p: string[] = [];
  if (o.v !== 1) p.push('v: must be 1');
  if (typeof o.coordinator !== 'string' || !/^https?:\/\/\S+$/.test(o.coordinator)) p.push('coordinator: must be an http(s) URL');
  if (!IdSchema.safeParse(o.siteId).success) p.push('siteId: must be a site id');
  if (typeof o.data !== 'string' || !o.data) p.push('data: must be a path');
  for (const k of ['textColumn', 'labelColumn', 'caFile'] as const)
    if (o[k] !== undefined && typeof o[k] !== 'string') p.push(`${k}: must be a string`);
  if (typeof o.enrolledAt !== 'string') p.push('enrolledAt: must be a date string');
  if (o.project !== undefined && (typeof o.project !== 'string' || !/^[a-z][a-z0-9-]{0,31}$/.test(o.project)))
    p.push('project: must be a project id');
  if (o.coordinatorFingerprint !== undefined) {
    try {
      if (typeof o.coordinatorFingerprint !== 'string') throw new Error();
      parseFingerprint(o.coordinatorFingerprint);
    } catch {
      p.push('coordinatorFingerprint: must be a coordinator fingerprint');
    }
  }
  for (const k of Object.keys(o)) if (!SITE_KEYS.includes(k)) p.push(`${k}: unknown field`);
  return p;
}

/** Writes `text` to `path` atomically with the given mode: a crash never leaves a half-written key file. */
function writeAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode); // the umask may have removed bits from `mode`; never added, but be explicit
  renameSync(tmp, path);
}

export function ensureStateDir(dir: string): string {
  const abs = resolve(dir);
  mkdirSync(abs, { recursive: true, mode: 0o700 });
  return abs;
}

export function hasKeys(dir: string): boolean {
  return existsSync(join(dir, KEYS_FILE));
}

export function saveKeys(dir: string, keys: SiteKeys): void {
  writeAtomic(join(ensureStateDir(dir), KEYS_FILE), JSON.stringify(serializeSiteKeys(keys)) + '\n', 0o600);
}

/**
 * Loads the site's keys. Like ssh with a private key, a key file that other users can read is refused
 * (the secret keys are the site's identity); the error says how to fix it.
 */
export function loadKeys(dir: string): SiteKeys {
  const path = join(dir, KEYS_FILE);
  if (!existsSync(path))
    throw new FedloraError('FILE_NOT_FOUND', `no site keys in ${dir}: run "fedlora-site join" first`);
  const mode = statSync(path).mode & 0o777;
  if (process.platform !== 'win32' && (mode & 0o077) !== 0)
    throw new FedloraError(
      'CONFIG_INVALID',
      `${path} is readable by other users (mode ${mode.toString(8)}); run: chmod 600 ${path}`,
    );
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FedloraError('FILE_CORRUPT', `${path} is not valid JSON`, { cause: err });
  }
  return parseSiteKeys(json);
}

export function saveSiteConfig(dir: string, cfg: SiteConfig): void {
  const problems = siteConfigProblems(cfg);
  if (problems.length) throw new FedloraError('CONFIG_INVALID', `site config: ${problems.join('; ')}`);
  writeAtomic(join(ensureStateDir(dir), SITE_FILE), JSON.stringify(cfg, null, 2) + '\n', 0o600);
}

export function loadSiteConfig(dir: string): SiteConfig {
  const path = join(dir, SITE_FILE);
  if (!existsSync(path))
    throw new FedloraError('FILE_NOT_FOUND', `${dir} holds no enrolled site: run "fedlora-site join" first`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FedloraError('FILE_CORRUPT', `${path} is not valid JSON`, { cause: err });
  }
  const problems = siteConfigProblems(json);
  if (problems.length) throw new FedloraError('FILE_CORRUPT', `${path}: ${problems.join('; ')}`);
  return json as SiteConfig;
}

/**
 * The coordinator fingerprint this site pinned at join. A site.json from before pinning has none: the site then talks
 * to no coordinator until the fingerprint is recorded (CONFIG_INVALID, saying how), rather than trusting whoever answers.
 */
export function pinnedFingerprint(cfg: SiteConfig, dir: string): string {
  if (!cfg.coordinatorFingerprint)
    throw new FedloraError(
      'CONFIG_INVALID',
      `${join(dir, SITE_FILE)} pins no coordinator fingerprint (enrolled before sites pinned the coordinator's key): ` +
        'run "fedlora-site join --coordinator-fingerprint FP" with the fingerprint the coordinator prints at start ' +
        '(or --token with a new join token, which carries it)',
    );
  return cfg.coordinatorFingerprint;
}

export function tryLoadSiteConfig(dir: string): SiteConfig | null {
  return existsSync(join(dir, SITE_FILE)) ? loadSiteConfig(dir) : null;
}
