// A chart of shared aggregate cells (uPlot, loaded on first use like the sensor page's): one
// metric, one line per unit (zone, sensor or pseudonym) of the first published function, over
// the buckets; a suppressed cell is a gap, never a value.

import type uPlot from 'uplot';

import { h } from './dom';
import { formatDateTime, formatNumber } from './format';
import type { AggFunction, SharedCells } from './governanceTypes';
import { getLang, t } from './i18n';
import { axisTime } from './pages/sensor';
import { parseMillis } from './time';

/** Most lines drawn (the table holds every unit). */
export const MAX_LINES = 12;

export interface CellsSeries {
  metric: string;
  fn: AggFunction;
  /** Bucket starts, Unix seconds, ascending. */
  xs: number[];
  units: string[];
  /** One array per unit, aligned on `xs`; null where the cell is suppressed or absent. */
  ys: (number | null)[][];
}

/** The lines of `metric` (default the first one), for the first function published. */
export function cellsSeries(answer: SharedCells, metric?: string): CellsSeries | null {
  const m = metric ?? answer.cells[0]?.metric;
  const fn = (['avg', 'sum', 'max', 'min', 'count'] as const).find((f) => answer.functions.includes(f));
  if (m === undefined || fn === undefined) return null;
  const cells = answer.cells.filter((c) => c.metric === m);
  const xs = [...new Set(cells.map((c) => parseMillis(c.bucket) / 1000))].sort((a, b) => a - b);
  const units = [...new Set(cells.map((c) => c.unit))].sort().slice(0, MAX_LINES);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = units.map(() => xs.map((): number | null => null));
  for (const c of cells) {
    const u = units.indexOf(c.unit);
    const i = index.get(parseMillis(c.bucket) / 1000);
    const v = c.suppressed ? undefined : c.values?.[fn];
    if (u >= 0 && i !== undefined && v !== undefined) (ys[u] as (number | null)[])[i] = v;
  }
  return { metric: m, fn, xs, units, ys };
}

const COLOURS = ['#1d4ed8', '#b91c1c', '#15803d', '#7c3aed', '#c2410c', '#0e7490', '#a16207', '#be185d', '#4b5563', '#065f46', '#9f1239', '#1e3a8a'];

/** A figure that draws itself once uPlot is loaded; nothing when there is nothing to draw. */
export function cellsChart(answer: SharedCells): HTMLElement | null {
  const s = cellsSeries(answer);
  if (!s || s.xs.length < 2) return null;
  const host = h('div', { class: 'chart-host' });
  const figure = h(
    'figure',
    { class: 'chart-card', 'data-testid': 'governed-chart', 'data-metric': s.metric },
    h('figcaption', null, t('gov.chartOf', { metric: s.metric, fn: t(`fn.${s.fn}`) })),
    host,
  );
  void import('uplot')
    .then(async (m) => {
      await import('uplot/dist/uPlot.min.css');
      return m.default;
    })
    .then((U) => {
      const lang = getLang();
      const opts: uPlot.Options = {
        width: Math.max(320, host.clientWidth || 640),
        height: 240,
        series: [
          { label: t('gov.bucket'), value: (_u, v) => (v === null ? '—' : formatDateTime(v * 1000, lang)) },
          ...s.units.map((unit, i) => ({
            label: unit,
            stroke: COLOURS[i % COLOURS.length] ?? '#1d4ed8',
            width: 2,
            spanGaps: false,
            value: (_u: uPlot, v: number | null) => (v === null ? '—' : formatNumber(v, lang, 3)),
          })),
        ],
        scales: { x: { time: true } },
        axes: [
          {
            stroke: '#374151',
            grid: { stroke: '#e5e7eb' },
            values: (u, splits) => {
              const span = (u.scales['x']?.max ?? 0) - (u.scales['x']?.min ?? 0);
              return splits.map((x) => axisTime(x, span, lang));
            },
          },
          { stroke: '#374151', grid: { stroke: '#e5e7eb' }, size: 56, values: (_u, splits) => splits.map((v) => formatNumber(v, lang)) },
        ],
        legend: { live: true },
      };
      new U(opts, [s.xs, ...s.ys], host);
    })
    .catch(() => figure.remove());
  return figure;
}
