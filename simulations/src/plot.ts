// Line plot of held-out accuracy vs round, written as plain SVG here (no plotting library needed for lines, ticks
// and a legend) and rasterized to PNG with @resvg/resvg-js: a Rust renderer shipped as a prebuilt binary in the npm
// package, so it works headless with no canvas, Cairo or browser.

import { Resvg } from '@resvg/resvg-js';

export interface Series {
  name: string;
  /** y value per x = 1..n; a constant series (a baseline without a curve) is drawn dashed */
  values: number[];
  dashed?: boolean;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#7f7f7f'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function accuracySvg(title: string, series: Series[], rounds: number): string {
  const W = 720;
  const H = 440;
  const m = { l: 60, r: 170, t: 40, b: 50 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  let lo = Math.max(0, Math.floor((Math.min(...all, 1) - 0.02) * 10) / 10);
  const hi = Math.min(1, Math.ceil((Math.max(...all, 0) + 0.02) * 10) / 10);
  if (hi - lo < 0.1) lo = Math.max(0, hi - 0.1);
  const x = (r: number) => m.l + (rounds <= 1 ? pw / 2 : ((r - 1) / (rounds - 1)) * pw);
  const y = (v: number) => m.t + (1 - (v - lo) / (hi - lo)) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l + pw / 2}" y="22" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  const yStep = hi - lo > 0.5 ? 0.1 : 0.05;
  for (let v = lo; v <= hi + 1e-9; v += yStep) {
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.l - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(2)}</text>`);
  }
  const xStep = Math.max(1, Math.ceil(rounds / 10));
  for (let r = 1; r <= rounds; r += xStep)
    out.push(`<text x="${x(r)}" y="${m.t + ph + 18}" text-anchor="middle">${r}</text>`);
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 12}" text-anchor="middle">round</text>`);
  out.push(`<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">held-out accuracy</text>`);
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    const pts = s.values.map((v, j) => `${x(j + 1).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
    if (!s.dashed) for (const p of pts.split(' ')) out.push(`<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="2.5" fill="${color}"/>`);
    const ly = m.t + 14 + i * 20;
    out.push(`<line x1="${m.l + pw + 12}" x2="${m.l + pw + 36}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${m.l + pw + 42}" y="${ly}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

export function svgToPng(svg: string): Uint8Array {
  return new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
}
