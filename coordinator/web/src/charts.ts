// The console's plots (chart.js, registered piecewise so the bundle carries only line and bar charts):
// held-out accuracy and macro-F1 per version, training loss per round, uploaded bytes per round, and the versions
// over wall-clock time with the data volume each trained on (continual re-training). Each canvas also
// carries its current series in `data-series` (JSON), so tests and scripts can read what is drawn without pixels.

import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartConfiguration,
} from 'chart.js';
import type { RoundRecord, VersionRecord } from './api';

Chart.register(
  LineController,
  LineElement,
  PointElement,
  BarController,
  BarElement,
  CategoryScale,
  LinearScale,
  Legend,
  Tooltip,
);

type Series = { labels: string[]; datasets: { label: string; data: (number | null)[] }[] };

const COLORS = ['#2563eb', '#db2777', '#059669'];

function make(canvas: HTMLCanvasElement, type: 'line' | 'bar', yTitle: string, yMax?: number): Chart {
  const config: ChartConfiguration = {
    type,
    data: { labels: [], datasets: [] },
    options: {
      // no animation: a point appears in the frame its event arrives in (and screenshots are stable)
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        y: { beginAtZero: true, max: yMax, title: { display: true, text: yTitle } },
      },
      plugins: { legend: { position: 'bottom' } },
    },
  };
  return new Chart(canvas, config);
}

function show(chart: Chart, s: Series, type: 'line' | 'bar'): void {
  chart.data.labels = s.labels;
  chart.data.datasets = s.datasets.map((d, i) => ({
    ...d,
    borderColor: COLORS[i % COLORS.length],
    backgroundColor: type === 'bar' ? `${COLORS[i % COLORS.length]}99` : COLORS[i % COLORS.length],
    tension: 0.2,
  }));
  chart.update();
  (chart.canvas as HTMLCanvasElement).dataset.series = JSON.stringify(s);
}

/** points on a wall-clock axis: x = epoch ms (a linear scale whose ticks print dates: no date adapter needed) */
type TimeSeries = { datasets: { label: string; data: { x: number; y: number; version: string }[] }[] };

/** Pure: each version since v0 at its creation time, with the examples it trained on and those new to the sites. */
export function volumeSeries(versions: readonly VersionRecord[]): TimeSeries {
  const made = [...versions]
    .filter((v) => v.round > 0)
    .sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt));
  const point = (v: VersionRecord, y: number) => ({ x: Date.parse(v.createdAt), y, version: v.id });
  return {
    datasets: [
      { label: 'examples trained on', data: made.map((v) => point(v, v.examples)) },
      {
        label: 'of those, new to the sites',
        data: made.filter((v) => v.newExamples !== undefined).map((v) => point(v, v.newExamples as number)),
      },
    ],
  };
}

const HOUR_MS = 3_600_000;

/**
 * Pure: the time axis's bounds. Two or more instants: chart.js fits them. A single one, or none, would give a range
 * that chart.js widens to years (2023-2030 around one version, 1970 with none), so the axis spans an hour either side
 * of the point, or of `now`.
 */
export function timeAxisRange(s: TimeSeries, now: number): { min: number | undefined; max: number | undefined } {
  const xs = s.datasets.flatMap((d) => d.data.map((p) => p.x));
  if (xs.length === 0) return { min: now - HOUR_MS, max: now + HOUR_MS };
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo < hi ? { min: undefined, max: undefined } : { min: lo - HOUR_MS, max: hi + HOUR_MS };
}

function makeTimeChart(canvas: HTMLCanvasElement): Chart {
  return new Chart(canvas, {
    type: 'line',
    data: { datasets: [] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        x: {
          type: 'linear',
          title: { display: true, text: 'time (version created)' },
          ticks: { maxTicksLimit: 6, callback: (v) => new Date(Number(v)).toLocaleString() },
        },
        y: { beginAtZero: true, title: { display: true, text: 'examples' } },
      },
      plugins: {
        legend: { position: 'bottom' },
        tooltip: {
          callbacks: {
            title: (items) =>
              items.map((i) => `${(i.raw as { version: string }).version} · ${new Date(i.parsed.x ?? 0).toLocaleString()}`),
          },
        },
      },
    },
  });
}

/** Pure: the series each chart shows, from the version list and the round history. */
export function chartSeries(versions: readonly VersionRecord[], rounds: readonly RoundRecord[]) {
  const evaluated = [...versions].sort((a, b) => a.round - b.round || a.id.localeCompare(b.id));
  const trained = evaluated.filter((v) => v.round > 0 && typeof v.trainMetrics.loss === 'number');
  const history = [...rounds].filter((r) => r.outcome !== 'cancelled').sort((a, b) => a.round - b.round);
  return {
    accuracy: {
      labels: evaluated.map((v) => v.id),
      datasets: [
        { label: 'held-out accuracy', data: evaluated.map((v) => v.metrics?.accuracy ?? null) },
        { label: 'held-out macro-F1', data: evaluated.map((v) => v.metrics?.macroF1 ?? null) },
      ],
    },
    loss: {
      labels: trained.map((v) => `round ${v.round}`),
      datasets: [
        { label: 'training loss (sites, example-weighted)', data: trained.map((v) => v.trainMetrics.loss) },
        // a masked-LM federation (issue 24) is judged by its held-out masked-LM loss: drawn beside the sites' own
        ...(versions.some((v) => v.task === 'mlm')
          ? [{ label: 'held-out masked-LM loss', data: trained.map((v) => v.metrics?.loss ?? null) }]
          : []),
      ],
    },
    bytes: {
      labels: history.map((r) => `round ${r.round}`),
      datasets: [{ label: 'uploaded bytes (accepted, sealed)', data: history.map((r) => r.uploadedBytes) }],
    },
  } satisfies Record<string, Series>;
}

export class Charts {
  private readonly accuracy: Chart;
  private readonly loss: Chart;
  private readonly bytes: Chart;
  private readonly volume: Chart | null;

  constructor(el: { accuracy: HTMLCanvasElement; loss: HTMLCanvasElement; bytes: HTMLCanvasElement; volume?: HTMLCanvasElement }) {
    this.accuracy = make(el.accuracy, 'line', 'held-out score', 1);
    this.loss = make(el.loss, 'line', 'loss');
    this.bytes = make(el.bytes, 'bar', 'bytes');
    this.volume = el.volume ? makeTimeChart(el.volume) : null;
  }

  update(versions: readonly VersionRecord[], rounds: readonly RoundRecord[]): void {
    const s = chartSeries(versions, rounds);
    show(this.accuracy, s.accuracy, 'line');
    show(this.loss, s.loss, 'line');
    show(this.bytes, s.bytes, 'bar');
    if (this.volume) {
      const v = volumeSeries(versions);
      this.volume.data.datasets = v.datasets.map((d, i) => ({
        ...d,
        borderColor: COLORS[i % COLORS.length],
        backgroundColor: COLORS[i % COLORS.length],
      }));
      const x = this.volume.options.scales?.x;
      if (x) Object.assign(x, timeAxisRange(v, Date.now()));
      this.volume.update();
      (this.volume.canvas as HTMLCanvasElement).dataset.series = JSON.stringify(v);
    }
  }
}
