// Map geometry, pure: bounding boxes of the view for the live `bbox` filter, the decision to
// re-subscribe after a pan or zoom, whether a point lies in a zone, and a debounce with
// injectable timers.

import type { Geometry, Position } from './types';

/** `[west, south, east, north]` in WGS 84 degrees, as the live filter takes it. */
export type BBox = [number, number, number, number];

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
const round = (v: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};

/**
 * A valid live bbox from raw view bounds: padded by `pad` (a fraction of the width and height
 * on each side, so small pans stay inside it), clamped to the world (the server refuses
 * west > east; a view wider than the world becomes the world), rounded outwards to 1e-5°.
 */
export function viewBBox(
  west: number,
  south: number,
  east: number,
  north: number,
  pad = 0,
): BBox {
  const w = east - west;
  const h = north - south;
  let x0 = west - w * pad;
  let x1 = east + w * pad;
  if (x1 - x0 >= 360) {
    x0 = -180;
    x1 = 180;
  }
  const f = 1e5;
  const out: BBox = [
    clamp(Math.floor(x0 * f) / f, -180, 180),
    clamp(Math.floor((south - h * pad) * f) / f, -90, 90),
    clamp(Math.ceil(x1 * f) / f, -180, 180),
    clamp(Math.ceil((north + h * pad) * f) / f, -90, 90),
  ];
  if (out[0] > out[2]) {
    // The view straddles the antimeridian: no city dashboard does; take the world's width.
    out[0] = -180;
    out[2] = 180;
  }
  return [round(out[0], 5), round(out[1], 5), round(out[2], 5), round(out[3], 5)];
}

export function bboxContains(outer: BBox, inner: BBox): boolean {
  return outer[0] <= inner[0] && outer[1] <= inner[1] && outer[2] >= inner[2] && outer[3] >= inner[3];
}

export function bboxArea(b: BBox): number {
  return Math.max(0, b[2] - b[0]) * Math.max(0, b[3] - b[1]);
}

/**
 * Whether the subscription must change for the view `view`: when nothing is subscribed, when
 * the view leaves the subscribed box, or when it has shrunk to under `minShare` of it (zoomed
 * in: the wide box would send values nobody sees).
 */
export function needsResubscribe(subscribed: BBox | null, view: BBox, minShare = 0.2): boolean {
  if (!subscribed) return true;
  if (!bboxContains(subscribed, view)) return true;
  const area = bboxArea(subscribed);
  return area > 0 && bboxArea(view) / area < minShare;
}

export interface DebounceTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: DebounceTimers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface Debounced<A extends unknown[]> {
  (...args: A): void;
  /** Runs a pending call now. */
  flush(): void;
  /** Drops a pending call. */
  cancel(): void;
}

/** Calls `fn` with the last arguments once `ms` passed without another call. */
export function debounce<A extends unknown[]>(
  fn: (...args: A) => void,
  ms: number,
  timers: DebounceTimers = realTimers,
): Debounced<A> {
  let handle: unknown = null;
  let pending: A | null = null;
  const run = (): void => {
    handle = null;
    const args = pending;
    pending = null;
    if (args) fn(...args);
  };
  const d = ((...args: A) => {
    pending = args;
    if (handle !== null) timers.clearTimeout(handle);
    handle = timers.setTimeout(run, ms);
  }) as Debounced<A>;
  d.flush = () => {
    if (handle !== null) timers.clearTimeout(handle);
    run();
  };
  d.cancel = () => {
    if (handle !== null) timers.clearTimeout(handle);
    handle = null;
    pending = null;
  };
  return d;
}

/** Whether a ray from `[x, y]` towards +x crosses `ring` an odd number of times. */
function crossesOdd(ring: Position[], x: number, y: number): boolean {
  let odd = false;
  for (let i = 1; i < ring.length; i += 1) {
    const [x0, y0] = ring[i - 1] as [number, number];
    const [x1, y1] = ring[i] as [number, number];
    if (y0 > y !== y1 > y && x < x0 + ((y - y0) / (y1 - y0)) * (x1 - x0)) odd = !odd;
  }
  return odd;
}

/**
 * Whether `[lon, lat]` lies in a zone's Polygon or MultiPolygon (holes excluded), by the same
 * half-open rule as the platform's (crates/policy/src/territory.rs): a point on an edge two
 * adjoining zones share is in exactly one of them.
 */
export function inGeometry(lon: number, lat: number, geometry: Geometry): boolean {
  const polygons = geometry.type === 'Polygon' ? [geometry.coordinates] : geometry.coordinates;
  return polygons.some((rings) => rings.filter((ring) => crossesOdd(ring, lon, lat)).length % 2 === 1);
}
