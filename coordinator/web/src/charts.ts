// The console's plots (chart.js, registered piecewise so the bundle carries only line and bar charts):
// held-out accuracy and macro-F1 per version, training loss per round, uploaded bytes per round. Each canvas also
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

  constructor(el: { accuracy: HTMLCanvasElement; loss: HTMLCanvasElement; bytes: HTMLCanvasElement }) {
    this.accuracy = make(el.accuracy, 'line', 'held-out score', 1);
    this.loss = make(el.loss, 'line', 'loss');
    this.bytes = make(el.bytes, 'bar', 'bytes');
  }

  update(versions: readonly VersionRecord[], rounds: readonly RoundRecord[]): void {
    const s = chartSeries(versions, rounds);
    show(this.accuracy, s.accuracy, 'line');
    show(this.loss, s.loss, 'line');
    show(this.bytes, s.bytes, 'bar');
  }
}
