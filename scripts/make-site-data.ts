// Writes the non-IID site data files of the docker-compose federation: the embedded SpamAssassin corpus's training
// part (MD5 0-7) split over N sites by per-class Dirichlet proportions (label skew, Hsu et al. 2019), one CSV per
// site (text,label). The held-out part is never written: the coordinator evaluates on it.
// Usage: npx tsx scripts/make-site-data.ts [--out deploy/sites] [--sites 3] [--alpha 1] [--seed 42] [--limit N]

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadSpamAssassin } from '@fedlora/shared/data/spam-assassin.ts';
import { countByLabel, labelIds, subsetDataset } from '@fedlora/shared/data/dataset.ts';
import { dirichletPartition, stratifiedSubset } from '@fedlora/shared/data/split.ts';

/** RFC 4180 field: always quoted, inner quotes doubled (emails hold commas, quotes and newlines). */
function csvField(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

export function siteName(i: number): string {
  return `site-${String.fromCharCode(97 + i)}`; // site-a, site-b, … as in docker-compose.yml
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: 'deploy/sites' },
      sites: { type: 'string', default: '3' },
      alpha: { type: 'string', default: '1' },
      seed: { type: 'string', default: '42' },
      limit: { type: 'string' },
    },
  });
  const sites = Number(values.sites);
  const alpha = Number(values.alpha);
  const seed = Number(values.seed);
  if (!Number.isInteger(sites) || sites < 1 || sites > 26) throw new Error(`--sites must be 1..26, got ${values.sites}`);
  let train = await loadSpamAssassin('train');
  if (values.limit) train = subsetDataset(train, stratifiedSubset(labelIds(train), Number(values.limit), seed), train.name);
  const parts = dirichletPartition(labelIds(train), sites, alpha, seed, { minPerSite: 20 });
  const out = resolve(values.out as string);
  mkdirSync(out, { recursive: true });
  parts.forEach((idx, i) => {
    const ds = subsetDataset(train, idx, siteName(i));
    const rows = ds.examples.map((e) => `${csvField(e.text)},${csvField(e.label)}`);
    const path = join(out, `${siteName(i)}.csv`);
    writeFileSync(path, `text,label\n${rows.join('\n')}\n`);
    const counts = Object.entries(countByLabel(ds)).map(([l, n]) => `${l} ${n}`).join(', ');
    console.log(`${path}: ${ds.examples.length} examples (${counts})`);
  });
}

await main();
