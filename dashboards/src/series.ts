// Chart data, pure: per-metric time series kept sorted by time for uPlot (x in seconds), with
// points appended live, revised buckets replaced, and a sliding window.

import type { Granularity } from './types';

export type BucketChoice = 'raw' | '1m' | '5m' | '15m' | '1h' | '1d';

export interface BucketSpec {
  id: BucketChoice;
  /** History shown, seconds. */
  rangeS: number;
  /** Bucket width, seconds (0: raw). */
  widthS: number;
  /** The live granularity that extends it (null: none offered). */
  live: Granularity | null;
}

export const BUCKETS: readonly BucketSpec[] = [
  { id: 'raw', rangeS: 3600, widthS: 0, live: 'raw' },
  { id: '1m', rangeS: 6 * 3600, widthS: 60, live: '1m' },
  { id: '5m', rangeS: 24 * 3600, widthS: 300, live: '5m' },
  { id: '15m', rangeS: 3 * 86_400, widthS: 900, live: '15m' },
  { id: '1h', rangeS: 14 * 86_400, widthS: 3600, live: '1h' },
  { id: '1d', rangeS: 365 * 86_400, widthS: 86_400, live: null },
];

export function bucketSpec(id: string | null | undefined): BucketSpec {
  return BUCKETS.find((b) => b.id === id) ?? (BUCKETS[0] as BucketSpec);
}

/** One metric's points: x in Unix seconds, y the value (or bucket mean), with min/max bands. */
export interface Series {
  xs: number[];
  ys: (number | null)[];
  mins: (number | null)[];
  maxs: (number | null)[];
}

export function emptySeries(): Series {
  return { xs: [], ys: [], mins: [], maxs: [] };
}

/** Index of the first x ≥ t. */
function lowerBound(xs: readonly number[], t: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((xs[mid] as number) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Puts a point at `t`: appended when newest (the live case, O(1)), replacing the point at the
 * same time (a revised bucket), or inserted in order.
 */
export function upsertPoint(
  s: Series,
  t: number,
  y: number | null,
  min: number | null = null,
  max: number | null = null,
): void {
  const n = s.xs.length;
  if (n === 0 || t > (s.xs[n - 1] as number)) {
    s.xs.push(t);
    s.ys.push(y);
    s.mins.push(min);
    s.maxs.push(max);
    return;
  }
  const i = lowerBound(s.xs, t);
  if (s.xs[i] === t) {
    s.ys[i] = y;
    s.mins[i] = min;
    s.maxs[i] = max;
    return;
  }
  s.xs.splice(i, 0, t);
  s.ys.splice(i, 0, y);
  s.mins.splice(i, 0, min);
  s.maxs.splice(i, 0, max);
}

/** Drops points before `t`; returns how many. */
export function trimBefore(s: Series, t: number): number {
  const i = lowerBound(s.xs, t);
  if (i === 0) return 0;
  s.xs.splice(0, i);
  s.ys.splice(0, i);
  s.mins.splice(0, i);
  s.maxs.splice(0, i);
  return i;
}

/** Keeps at most `max` points (the newest). */
export function capPoints(s: Series, max: number): void {
  const extra = s.xs.length - max;
  if (extra <= 0) return;
  s.xs.splice(0, extra);
  s.ys.splice(0, extra);
  s.mins.splice(0, extra);
  s.maxs.splice(0, extra);
}

/** A reading's value as a chart number: booleans as 0/1, text not charted (null). */
export function chartValue(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return null;
}
