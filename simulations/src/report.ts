// The run folder: metrics.json (everything measured), accuracy.svg/.png (held-out accuracy vs round, every arm)
// and summary.md (a Markdown table with the command that produced it).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { accuracySvg, svgToPng, type Series } from './plot';
import type { SimResult } from './simulate';
import type { SimOptions } from './options';

export function defaultRunDir(o: SimOptions, now = new Date()): string {
  const stamp = now.toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  const ds = o.dataset.replace(/^.*[\\/]/, '').replace(/[^A-Za-z0-9_.-]/g, '_');
  return resolve(fileURLToPath(new URL('../../runs/', import.meta.url)), `${stamp}-${ds}`);
}

/** A fraction as a percentage with one decimal; '–' when absent. */
export const pct = (x: number | undefined | null) => (x === undefined || x === null || !Number.isFinite(x) ? '–' : (100 * x).toFixed(1));

export function summaryMarkdown(res: SimResult, command: string): string {
  const o = res.options;
  const split = o.quantitySkew !== null ? `quantity skew ${o.quantitySkew}` : o.alpha === null ? 'IID' : `Dirichlet α=${o.alpha}`;
  const lines = [
    `# Simulation: ${res.data.name}, ${o.sites} sites, ${split}`,
    '',
    `Command: \`${command}\``,
    '',
    `Model ${res.model} on ${res.backend}; ${res.data.train} training examples over ${o.sites} sites ` +
      `(${o.sitesPerRound} sampled per round), ${res.data.heldout} held-out, ${res.data.labels} labels; ${o.rounds} rounds ` +
      `of ${o.localEpochs} local epoch(s) capped at ${o.maxSteps} steps of ${o.batchSize}, lr ${o.learningRate}, ` +
      `max length ${o.maxLength}, LoRA r ${o.lora.r} / alpha ${o.lora.alpha} on ${o.lora.targetModules.join(', ')}, ` +
      `${o.encoding} uploads, seed ${o.seed}. Wall time ${res.seconds.total.toFixed(0)} s.`,
    '',
    ...(res.attack
      ? [
          `Attack: ${res.attack.kind} by ${res.attack.sites.length} of ${o.sites} sites (${res.attack.sites.join(', ')}), ` +
            'in every arm.',
          '',
        ]
      : []),
    ...privacyLines(res),
    '| arm | held-out accuracy | macro-F1 | best round acc. | update bytes/site/round | s/round |',
    '|---|---|---|---|---|---|',
  ];
  for (const a of Object.values(res.arms)) {
    const bytes = a.rounds.reduce((s, r) => s + r.updateBytes, 0) / Math.max(1, a.rounds.length);
    const secs = a.rounds.reduce((s, r) => s + r.seconds, 0) / Math.max(1, a.rounds.length);
    lines.push(`| ${a.strategy} | ${pct(a.accuracy)} | ${pct(a.macroF1)} | ${pct(Math.max(...a.curve))} | ${Math.round(bytes)} | ${secs.toFixed(1)} |`);
  }
  if (res.centralized)
    lines.push(`| centralized (same samples seen) | ${pct(res.centralized.accuracy)} | ${pct(res.centralized.macroF1)} | ${pct(Math.max(...res.centralized.curve))} | – | – |`);
  if (res.localOnly) {
    const l = res.localOnly;
    const which = l.sampled ? `a seeded sample of ${l.sites.length} of ${o.sites} sites` : `all ${l.sites.length} sites`;
    lines.push(`| local-only mean (${which}) | ${pct(l.mean)} | – | – | – | – |`);
    lines.push(`| local-only worst site | ${pct(l.worst)} | – | – | – | – |`);
  }
  lines.push('', 'Accuracy in %. Plot: accuracy.png (accuracy.svg); all numbers: metrics.json.', '');
  const warnings = res.warnings ?? [];
  if (warnings.length) lines.push('Warnings (bookkeeping checks; the results above are as measured):', '', ...warnings.map((w) => `- ${w}`), '');
  return lines.join('\n');
}

/** What secure aggregation and DP did in each arm: aborted rounds, mean survivors, and the privacy spent. */
function privacyLines(res: SimResult): string[] {
  const o = res.options;
  const lines: string[] = [];
  const sa = o.secureAggregation;
  if (sa) {
    lines.push(
      `Secure aggregation (SecAgg+): drop rate ${sa.dropRate} per stage, degree ${sa.degree ?? 'default'}, ` +
        `clip ${o.dp ? `S = ${o.dp.clipNorm}` : (sa.clip ?? 'AdamW ceiling')}.`,
    );
    for (const a of Object.values(res.arms)) {
      const aborted = a.rounds.filter((r) => r.aborted).length;
      const survivors = a.rounds.reduce((s, r) => s + (r.survivors ?? 0), 0) / Math.max(1, a.rounds.length);
      const secs = a.rounds.reduce((s, r) => s + (r.secaggSeconds ?? 0), 0) / Math.max(1, a.rounds.length);
      const norm = a.rounds.reduce((s, r) => s + (r.medianDeltaNorm ?? 0), 0) / Math.max(1, a.rounds.length);
      lines.push(
        `- ${a.strategy}: ${aborted} of ${a.rounds.length} rounds aborted, ${survivors.toFixed(1)} survivors per round, ` +
          `protocol ${secs.toFixed(2)} s/round, median delta norm ${norm.toFixed(3)}`,
      );
    }
    lines.push('');
  }
  for (const a of Object.values(res.arms))
    if (a.privacy) {
      const p = a.privacy;
      lines.push(
        `DP (${a.strategy}): ε = ${p.epsilon.toFixed(3)} at δ = ${p.delta} after ${p.rounds} charged rounds, z = ${p.noiseMultiplier.toFixed(4)}, ` +
          `q = ${p.sampleRate}, S = ${p.clipNorm}${p.targetEpsilon === null ? '' : ` (target ε ${p.targetEpsilon})`}.`,
      );
    }
  if (Object.values(res.arms).some((a) => a.privacy)) lines.push('');
  return lines;
}

export function writeRun(res: SimResult, runDir: string, command: string): void {
  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(runDir, 'metrics.json'), JSON.stringify({ command, ...res }, null, 2) + '\n');
  const series: Series[] = Object.values(res.arms).map((a) => ({ name: a.strategy, values: a.curve }));
  if (res.centralized) series.push({ name: 'centralized', values: res.centralized.curve });
  if (res.localOnly) {
    const n = res.options.rounds;
    series.push({ name: 'local-only mean', values: new Array(n).fill(res.localOnly.mean), dashed: true });
    series.push({ name: 'local-only worst', values: new Array(n).fill(res.localOnly.worst), dashed: true });
  }
  const o = res.options;
  const split = o.quantitySkew !== null ? `qskew ${o.quantitySkew}` : o.alpha === null ? 'IID' : `alpha ${o.alpha}`;
  const svg = accuracySvg(`${res.data.name}: ${o.sites} sites, ${split}`, series, o.rounds);
  writeFileSync(join(runDir, 'accuracy.svg'), svg);
  writeFileSync(join(runDir, 'accuracy.png'), svgToPng(svg));
  writeFileSync(join(runDir, 'summary.md'), summaryMarkdown(res, command));
}
