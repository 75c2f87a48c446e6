// Sensor (`#/sensor/{id}?bucket=1m`): one chart per metric (uPlot) with the history of the
// chosen resolution, then live values appended: raw readings, or closed buckets of the same
// width (the live protocol offers up to 1 h; 1 d is history only).

import type uPlot from 'uplot';

import { errorMessage } from '../api';
import type { Page } from '../context';
import { h, mount, setText } from '../dom';
import { formatDateTime, formatNumber, formatUnit, formatValue } from '../format';
import { getLang, t, type Lang } from '../i18n';
import {
  BUCKETS,
  bucketSpec,
  capPoints,
  chartValue,
  emptySeries,
  trimBefore,
  upsertPoint,
  type BucketChoice,
  type BucketSpec,
  type Series,
} from '../series';
import { parseMillis, toIso } from '../time';
import type { BucketsResponse, ReadingsPage, Sensor, SubscriptionMessage, Value } from '../types';
import { errorBox, loadingBox, setStale, staleMarker } from '../ui';
import { isStale } from '../values';

const MAX_RAW_PAGES = 5;
const RAW_PAGE = 10_000;
const MAX_POINTS = 60_000;

interface MetricView {
  metric: string;
  unit: string;
  series: Series;
  card: HTMLElement;
  host: HTMLElement;
  latest: HTMLElement;
  latestTime: number;
  latestValue: Value | null;
  marker: HTMLElement;
  summary: HTMLElement;
  plot: uPlot | null;
}

function bucketFromHash(): BucketChoice {
  const hash = location.hash;
  const q = hash.indexOf('?');
  if (q < 0) return 'raw';
  const params = new URLSearchParams(hash.slice(q + 1));
  return bucketSpec(params.get('bucket')).id;
}

export function sensorPage(id: string): Page {
  return (root, ctx) => {
    let disposed = false;
    let generation = 0;
    let spec: BucketSpec = bucketSpec(bucketFromHash());
    const views = new Map<string, MetricView>();
    const dirty = new Set<string>();
    let uplotModule: typeof uPlot | null = null;
    let sensor: Sensor | undefined;
    const cleanups: (() => void)[] = [];

    const info = h('dl', { class: 'facts' });
    const select = h(
      'select',
      { id: 'bucket-select', 'data-testid': 'bucket-select' },
      ...BUCKETS.map((b) => h('option', { value: b.id, selected: b.id === spec.id }, t(`bucket.${b.id}`))),
    );
    const rangeText = h('span', { class: 'muted' });
    const status = h('div', { class: 'chart-status', role: 'status' });
    const charts = h('div', {
      class: 'charts',
      'data-testid': 'sensor-chart',
      'data-sensor': id,
      'aria-busy': 'true',
    });

    mount(
      root,
      h('p', null, h('a', { href: '#/', class: 'back-link' }, '← ', t('sensor.back'))),
      h('h1', { class: 'page-title', tabindex: -1 }, t('sensor.title', { id })),
      info,
      h(
        'div',
        { class: 'toolbar' },
        h('label', { for: 'bucket-select' }, t('sensor.resolution')),
        select,
        rangeText,
      ),
      status,
      charts,
    );

    select.addEventListener('change', () => {
      spec = bucketSpec(select.value);
      const base = `#/sensor/${encodeURIComponent(id)}`;
      history.replaceState(null, '', spec.id === 'raw' ? base : `${base}?bucket=${spec.id}`);
      void load();
    });

    const fillInfo = (): void => {
      const lang = getLang();
      const rows: [string, string][] = [];
      if (sensor) {
        rows.push([t('sensor.kind'), sensor.kind]);
        rows.push([t('sensor.zone'), sensor.zone ?? '—']);
        rows.push([t('sensor.unit'), formatUnit(sensor.unit) || '—']);
        rows.push([
          t('sensor.position'),
          sensor.lat !== null && sensor.lon !== null
            ? `${formatNumber(sensor.lat, lang, 5)}, ${formatNumber(sensor.lon, lang, 5)}`
            : '—',
        ]);
      }
      mount(info, ...rows.map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, v))));
    };

    // ---- metric views ----
    const viewFor = (metric: string, unit: string): MetricView => {
      let v = views.get(metric);
      if (v) {
        setUnit(v, unit);
        return v;
      }
      const host = h('div', {
        class: 'chart-host',
        role: 'img',
        'aria-label': t('sensor.chartOf', { metric }),
      });
      const latest = h('span', { class: 'latest-value', 'data-testid': 'latest-value' });
      const marker = staleMarker();
      const summary = h('p', { class: 'muted small chart-summary' });
      const card = h(
        'figure',
        { class: 'chart-card', 'data-metric': metric, 'data-stale': 'true' },
        h(
          'figcaption',
          null,
          h('strong', null, metric),
          ' ',
          h('span', { class: 'muted' }, t('sensor.latest'), ': '),
          latest,
          ' ',
          marker,
        ),
        host,
        summary,
      );
      v = {
        metric,
        unit,
        series: emptySeries(),
        card,
        host,
        latest,
        latestTime: Number.NaN,
        latestValue: null,
        marker,
        summary,
        plot: null,
  };
      views.set(metric, v);
      const sorted = [...views.keys()].sort();
      const next = sorted[sorted.indexOf(metric) + 1];
      charts.insertBefore(card, next ? (views.get(next)?.card ?? null) : null);
      return v;
    };

    const setUnit = (v: MetricView, unit: string): void => {
      if (!unit || unit === v.unit) return;
      v.unit = unit;
      // The axis shows the unit: draw the chart again.
      v.plot?.destroy();
      v.plot = null;
      v.host.replaceChildren();
    };

    const setLatest = (v: MetricView, value: Value, timeMs: number, unit: string): void => {
      setUnit(v, unit);
      if (!Number.isNaN(v.latestTime) && timeMs < v.latestTime) return;
      v.latestTime = timeMs;
      v.latestValue = value;
    };

    const renderView = (v: MetricView): void => {
      const lang = getLang();
      setText(
        v.latest,
        v.latestValue === null
          ? '—'
          : `${formatValue(v.latestValue, v.unit, lang, { yes: t('common.yes'), no: t('common.no') })} (${formatDateTime(v.latestTime, lang)})`,
      );
      setStale(v.card, v.marker, isStale(v.latestTime, ctx.clock.now(), ctx.connected()));
      const ys = v.series.ys.filter((y): y is number => y !== null);
      if (ys.length === 0) {
        setText(v.summary, v.latestValue !== null && typeof v.latestValue === 'string' ? t('sensor.textValues') : t('sensor.noData'));
      } else {
        let min = Infinity;
        let max = -Infinity;
        let sum = 0;
        for (const y of ys) {
          if (y < min) min = y;
          if (y > max) max = y;
          sum += y;
        }
        setText(
          v.summary,
          `${t('sensor.min')} ${formatValue(min, v.unit, lang)} · ${t('sensor.mean')} ${formatValue(sum / ys.length, v.unit, lang)} · ${t('sensor.max')} ${formatValue(max, v.unit, lang)} · n = ${formatNumber(ys.length, lang, 0)}`,
        );
      }
      drawChart(v);
    };

    const drawChart = (v: MetricView): void => {
      const U = uplotModule;
      if (!U) return;
      // The x axis spans the whole window asked for (not just the points there are): empty
      // edges at its start and end, never drawn.
      const xs = v.series.xs;
      const nowS = ctx.clock.now() / 1000;
      const startS = Math.min(nowS - spec.rangeS, xs[0] ?? nowS);
      const endS = Math.max(nowS, xs[xs.length - 1] ?? nowS);
      const edged = <T>(values: T[]): (T | null)[] => [null, ...values, null];
      const data: uPlot.AlignedData =
        spec.widthS > 0
          ? [[startS, ...xs, endS], edged(v.series.ys), edged(v.series.mins), edged(v.series.maxs)]
          : [[startS, ...xs, endS], edged(v.series.ys)];
      if (v.plot) {
        v.plot.setData(data);
        return;
      }
      const width = Math.max(280, v.host.clientWidth || charts.clientWidth || 600);
      const unit = formatUnit(v.unit);
      const valueUnit = v.unit;
      const seriesOpts: uPlot.Series[] = [
        { label: t('sensor.time'), value: (_u, v) => (v === null ? '—' : formatDateTime(v * 1000, getLang())) },
        {
          label: spec.widthS > 0 ? t('sensor.mean') : t('sensor.value'),
          value: (_u, v) => (v === null ? '—' : formatValue(v, valueUnit, getLang())),
          stroke: '#1d4ed8',
          width: 2,
          spanGaps: false,
          points: { show: v.series.xs.length < 200 },
        },
      ];
      const opts: uPlot.Options = {
        width,
        height: 240,
        series: seriesOpts,
        scales: { x: { time: true } },
        axes: [
          {
            stroke: '#374151',
            grid: { stroke: '#e5e7eb' },
            values: (u, splits) => {
              const span = (u.scales['x']?.max ?? 0) - (u.scales['x']?.min ?? 0);
              return splits.map((s) => axisTime(s, span, getLang()));
            },
          },
          {
            stroke: '#374151',
            grid: { stroke: '#e5e7eb' },
            size: 56,
            ...(unit ? { label: unit, labelSize: 18 } : {}),
            values: (_u, splits) => splits.map((s) => formatNumber(s, getLang())),
          },
        ],
        legend: { live: true },
        cursor: { drag: { x: true, y: false } },
      };
      if (spec.widthS > 0) {
        seriesOpts.push(
          {
            label: t('sensor.min'),
            stroke: '#60a5fa',
            width: 1,
            dash: [4, 4],
            value: (_u, v) => (v === null ? '—' : formatValue(v, valueUnit, getLang())),
          },
          {
            label: t('sensor.max'),
            stroke: '#60a5fa',
            width: 1,
            dash: [4, 4],
            value: (_u, v) => (v === null ? '—' : formatValue(v, valueUnit, getLang())),
          },
        );
        opts.bands = [{ series: [3, 2], fill: 'rgba(96, 165, 250, 0.25)' }];
      }
      v.plot = new U(opts, data, v.host);
    };

    const flush = (): void => {
      for (const m of dirty) {
        const v = views.get(m);
        if (v) renderView(v);
      }
      dirty.clear();
    };
    const markDirty = (metric: string): void => {
      dirty.add(metric);
      ctx.frames.schedule('sensor-flush', flush);
    };

    // Resize charts with their container.
    if (typeof ResizeObserver !== 'undefined') {
      const ro = new ResizeObserver(() => {
        ctx.frames.schedule('sensor-resize', () => {
          for (const v of views.values()) {
            if (v.plot) v.plot.setSize({ width: Math.max(280, v.host.clientWidth), height: 240 });
          }
        });
      });
      ro.observe(charts);
      cleanups.push(() => ro.disconnect());
    }

    const staleTimer = window.setInterval(() => {
      for (const v of views.values()) {
        setStale(v.card, v.marker, isStale(v.latestTime, ctx.clock.now(), ctx.connected()));
      }
    }, 5000);
    cleanups.push(() => window.clearInterval(staleTimer));
    cleanups.push(
      ctx.live.onStatus(() => {
        for (const v of views.values()) markDirty(v.metric);
      }),
    );

    // ---- live ----
    const onLive = (gen: number) => (msg: SubscriptionMessage): void => {
      if (gen !== generation) return;
      const windowStart = (ctx.clock.now() - spec.rangeS * 1000) / 1000;
      if (msg.type === 'readings') {
        for (const r of msg.items) {
          if (r.sensor !== id) continue;
          const v = viewFor(r.metric, r.unit);
          const ms = parseMillis(r.time);
          setLatest(v, r.value, ms, r.unit);
          if (spec.widthS === 0) {
            upsertPoint(v.series, ms / 1000, chartValue(r.value));
            trimBefore(v.series, windowStart);
            capPoints(v.series, MAX_POINTS);
          }
          markDirty(r.metric);
        }
      } else if (msg.type === 'buckets' && spec.widthS > 0) {
        for (const b of msg.items) {
          if (b.sensor !== id) continue;
          const v = viewFor(b.metric, b.unit);
          upsertPoint(v.series, parseMillis(b.start) / 1000, b.avg, b.min, b.max);
          trimBefore(v.series, windowStart);
          capPoints(v.series, MAX_POINTS);
          markDirty(b.metric);
        }
      }
    };

    const subscribeLive = (gen: number): void => {
      // Latest raw values (and the raw chart).
      ctx.live.subscribe(
        'sensor',
        { stream: 'readings', filter: { sensors: [id] }, granularity: 'raw', snapshot: true },
        onLive(gen),
      );
      if (spec.widthS > 0 && spec.live && spec.live !== 'raw') {
        ctx.live.subscribe(
          'sensor-buckets',
          { stream: 'readings', filter: { sensors: [id] }, granularity: spec.live, snapshot: true },
          onLive(gen),
        );
      } else {
        ctx.live.unsubscribe('sensor-buckets');
      }
    };
    cleanups.push(() => {
      ctx.live.unsubscribe('sensor');
      ctx.live.unsubscribe('sensor-buckets');
    });

    // ---- history ----
    const load = async (): Promise<void> => {
      const gen = ++generation;
      for (const v of views.values()) v.plot?.destroy();
      views.clear();
      charts.replaceChildren();
      charts.setAttribute('aria-busy', 'true');
      mount(status, loadingBox());
      const lang = getLang();
      rangeText.textContent = t('sensor.range', { range: rangeLabel(spec.rangeS, lang) });
      try {
        const [U, reg] = await Promise.all([
          import('uplot').then(async (m) => {
            await import('uplot/dist/uPlot.min.css');
            return m.default;
          }),
          ctx.registry(),
        ]);
        if (disposed || gen !== generation) return;
        uplotModule = U;
        sensor = reg.sensorById.get(id);
        fillInfo();
        const to = ctx.clock.now();
        const from = to - spec.rangeS * 1000;
        let truncated = false;
        if (spec.widthS === 0) {
          let cursor: string | null = null;
          let pages = 0;
          do {
            const page: ReadingsPage = await ctx.api.get<ReadingsPage>('/api/v1/readings', {
              sensor: id,
              from: toIso(from),
              to: toIso(to),
              limit: RAW_PAGE,
              cursor,
            });
            if (disposed || gen !== generation) return;
            for (const r of page.items) {
              const v = viewFor(r.metric, r.unit);
              const ms = parseMillis(r.time);
              upsertPoint(v.series, ms / 1000, chartValue(r.value));
              setLatest(v, r.value, ms, r.unit);
            }
            cursor = page.next_cursor;
            pages += 1;
          } while (cursor && pages < MAX_RAW_PAGES);
          truncated = cursor !== null;
        } else {
          const resp = await ctx.api.get<BucketsResponse>('/api/v1/readings/buckets', {
            sensor: id,
            bucket: spec.id,
            from: toIso(from),
            to: toIso(to),
          });
          if (disposed || gen !== generation) return;
          for (const b of resp.items) {
            const v = viewFor(b.metric, sensor?.unit ?? '');
            upsertPoint(v.series, parseMillis(b.start) / 1000, b.avg, b.min, b.max);
          }
        }
        const notes: string[] = [];
        if (truncated) notes.push(t('sensor.truncated', { n: formatNumber(RAW_PAGE * MAX_RAW_PAGES, lang, 0) }));
        if (!spec.live) notes.push(t('sensor.noLive'));
        if (!sensor && views.size === 0) notes.push(t('sensor.notFound', { id }));
        else if (views.size === 0) notes.push(t('sensor.noData'));
        mount(status, ...notes.map((n) => h('p', { class: 'muted' }, n)));
        for (const v of views.values()) markDirty(v.metric);
        subscribeLive(gen);
      } catch (e) {
        if (disposed || gen !== generation) return;
        mount(status, errorBox(e, () => void load()));
        console.warn(errorMessage(e));
      } finally {
        if (gen === generation) charts.setAttribute('aria-busy', 'false');
      }
    };
    void load();

    return () => {
      disposed = true;
      generation += 1;
      ctx.frames.cancel('sensor-');
      for (const v of views.values()) v.plot?.destroy();
      for (const c of cleanups.reverse()) c();
    };
  };
}

/** "6 h", "24 h", "3 d" / "3 j": the history a resolution shows. */
export function rangeLabel(seconds: number, lang: Lang): string {
  const hours = seconds / 3600;
  if (hours <= 48) return `${formatNumber(hours, lang, 0)}\u00a0h`;
  return `${formatNumber(hours / 24, lang, 0)}\u00a0${lang === 'fr' ? 'j' : 'd'}`;
}

const axisFormats = new Map<string, Intl.DateTimeFormat>();
/** A time-axis tick (Unix seconds) in 24-hour local time; dates when the view spans days. */
export function axisTime(seconds: number, spanSeconds: number, lang: Lang): string {
  const style = spanSeconds > 3 * 86_400 ? 'date' : spanSeconds > 86_400 ? 'datetime' : spanSeconds > 600 ? 'hm' : 'hms';
  const key = `${lang}/${style}`;
  let f = axisFormats.get(key);
  if (!f) {
    const locale = lang === 'fr' ? 'fr-FR' : 'en-GB';
    const opts: Intl.DateTimeFormatOptions =
      style === 'date'
        ? { day: '2-digit', month: '2-digit' }
        : style === 'datetime'
          ? { day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }
          : style === 'hm'
            ? { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }
            : { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' };
    f = new Intl.DateTimeFormat(locale, opts);
    axisFormats.set(key, f);
  }
  return f.format(new Date(seconds * 1000));
}
