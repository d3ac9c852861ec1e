// Writes the non-IID site data files of the docker-compose federation: the embedded SpamAssassin corpus's training
// part (MD5 0-7) split over N sites by per-class Dirichlet proportions (label skew, Hsu et al. 2019), one CSV per
// site (text,label). The held-out part is never written: the coordinator evaluates on it.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitWithUsageError, parseCommandLineOrExit } from '@fedlora/shared/node/command-line.ts';
import { FedloraError, isFedloraError } from '@fedlora/shared/errors.ts';
import { loadSpamAssassin } from '@fedlora/shared/node/data/spam-assassin.ts';
import { countByLabel, labelIds, subsetDataset } from '@fedlora/shared/data/dataset.ts';
import { dirichletPartition, stratifiedSubset } from '@fedlora/shared/data/split.ts';

/** RFC 4180 field: always quoted, inner quotes doubled (emails hold commas, quotes and newlines). */
function csvField(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

export function siteName(i: number): string {
  return `site-${String.fromCharCode(97 + i)}`; // site-a, site-b, … as in docker-compose.yml
}

export interface SiteFilesOptions {
  out: string;
  sites: number;
  alpha: number;
  seed: number;
  /** stratified subset of the training part first (small demos and tests) */
  limit?: number;
  log?: (line: string) => void;
}

/** Writes one CSV per site; returns their paths in site order. */
export async function writeSiteFiles(o: SiteFilesOptions): Promise<string[]> {
  if (!Number.isInteger(o.sites) || o.sites < 1 || o.sites > 26) throw new FedloraError('CONFIG_INVALID', `--sites must be 1..26, got ${o.sites}`);
  let train = await loadSpamAssassin('train');
  if (o.limit) train = subsetDataset(train, stratifiedSubset(labelIds(train), o.limit, o.seed), train.name);
  const parts = dirichletPartition(labelIds(train), o.sites, o.alpha, o.seed, { minPerSite: Math.min(20, Math.floor(train.examples.length / o.sites / 2)) });
  const out = resolve(o.out);
  mkdirSync(out, { recursive: true });
  return parts.map((idx, i) => {
    const ds = subsetDataset(train, idx, siteName(i));
    const rows = ds.examples.map((e) => `${csvField(e.text)},${csvField(e.label)}`);
    const path = join(out, `${siteName(i)}.csv`);
    writeFileSync(path, `text,label\n${rows.join('\n')}\n`);
    const counts = Object.entries(countByLabel(ds)).map(([l, n]) => `${l} ${n}`).join(', ');
    (o.log ?? console.log)(`${path}: ${ds.examples.length} examples (${counts})`);
    return path;
  });
}

const HELP = `npx tsx scripts/make-site-data.ts [options]
  Splits the embedded SpamAssassin training part over N sites by per-class Dirichlet proportions (label skew) and
  writes one CSV per site (text,label): the site data of docker-compose.yml.
  --out DIR (deploy/sites)   --sites N (3, at most 26)   --alpha X (1; smaller = more skewed)   --seed N (42)
  --limit N                  a stratified subset of N training messages first (small demos and tests)`;

async function main(): Promise<void> {
  const { values } = parseCommandLineOrExit('make-site-data', HELP, process.argv.slice(2), {
    out: { type: 'string', default: 'deploy/sites' },
    sites: { type: 'string', default: '3' },
    alpha: { type: 'string', default: '1' },
    seed: { type: 'string', default: '42' },
    limit: { type: 'string' },
  });
  try {
    await writeSiteFiles({
      out: values.out as string,
      sites: Number(values.sites),
      alpha: Number(values.alpha),
      seed: Number(values.seed),
      limit: values.limit ? Number(values.limit) : undefined,
    });
  } catch (err) {
    if (isFedloraError(err, 'CONFIG_INVALID')) exitWithUsageError('make-site-data', err, HELP);
    throw err;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
