// `npx tsx scripts/heap-diff.ts A.heapsnapshot B.heapsnapshot [--top 25]`: what grew between two V8 heap snapshots,
// by constructor (object count and self size), largest growth first. For the soak's open question of issue 18 (the
// heap after GC growing by a few KiB per round): `npm run soak -- --heap-snapshots 50,200` writes the two files.

import { readFileSync } from 'node:fs';
import { parseCommandLineOrExit } from '@fedlora/shared/node/command-line.ts';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** self size and count per "type:name" (objects by constructor; strings, arrays, code, … by their V8 type) */
function tally(path: string): Map<string, { count: number; size: number }> {
  const s = JSON.parse(readFileSync(path, 'utf8')) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((n) => f.indexOf(n));
  const types = s.snapshot.meta.node_types[0];
  const out = new Map<string, { count: number; size: number }>();
  for (let i = 0; i < s.nodes.length; i += f.length) {
    const type = types[s.nodes[i + iType]];
    const key = type === 'object' || type === 'closure' ? `${type}:${s.strings[s.nodes[i + iName]]}` : type;
    const e = out.get(key) ?? { count: 0, size: 0 };
    e.count++;
    e.size += s.nodes[i + iSize];
    out.set(key, e);
  }
  return out;
}

const { values: o, positionals } = parseCommandLineOrExit('heap-diff', 'npx tsx scripts/heap-diff.ts A.heapsnapshot B.heapsnapshot [--top 25]', process.argv.slice(2), {
  top: { type: 'string', default: '25' },
}, { positionals: true });
if (positionals.length !== 2) {
  console.error('heap-diff: give two snapshot files');
  process.exit(2);
}
const [a, b] = positionals.map(tally);
const rows = [...new Set([...a.keys(), ...b.keys()])].map((k) => {
  const x = a.get(k) ?? { count: 0, size: 0 };
  const y = b.get(k) ?? { count: 0, size: 0 };
  return { k, dCount: y.count - x.count, dSize: y.size - x.size, size: y.size };
});
rows.sort((p, q) => q.dSize - p.dSize);
const total = rows.reduce((t, r) => t + r.dSize, 0);
console.log(`self size grew by ${(total / 1024).toFixed(1)} KiB in all`);
console.log('| what | objects added | self size added, KiB | self size now, KiB |\n|---|---|---|---|');
for (const r of rows.slice(0, Number(o.top))) console.log(`| ${r.k} | ${r.dCount} | ${(r.dSize / 1024).toFixed(1)} | ${(r.size / 1024).toFixed(1)} |`);
