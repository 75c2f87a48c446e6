// Live values, pure: the latest value per series, the tiles (one per zone and metric, the mean
// of the latest values of the zone's sensors, kept incrementally), and staleness.

import { parseMillis } from './time';
import type { LiveReading, Value } from './types';

/** Values older than this (or any value while the socket is down) are shown as stale. */
export const STALE_AFTER_MS = 120_000;

/**
 * Whether a value measured at `timeMs` is stale at `nowMs`: no value, an unknown time, the live
 * connection down, or older than `maxAgeMs`.
 */
export function isStale(
  timeMs: number | null | undefined,
  nowMs: number,
  connected: boolean,
  maxAgeMs = STALE_AFTER_MS,
): boolean {
  if (!connected) return true;
  if (timeMs === null || timeMs === undefined || !Number.isFinite(timeMs)) return true;
  return nowMs - timeMs > maxAgeMs;
}

export interface LatestValue {
  value: Value;
  unit: string;
  timeMs: number;
}

/** The latest value of each (sensor, metric) seen live. */
export class LatestValues {
  private readonly bySensor = new Map<string, Map<string, LatestValue>>();

  /** Keeps the reading if it is not older than the value held; returns whether it did. */
  update(r: LiveReading): boolean {
    const timeMs = parseMillis(r.time);
    if (Number.isNaN(timeMs)) return false;
    let metrics = this.bySensor.get(r.sensor);
    if (!metrics) {
      metrics = new Map();
      this.bySensor.set(r.sensor, metrics);
    }
    const held = metrics.get(r.metric);
    if (held && held.timeMs > timeMs) return false;
    metrics.set(r.metric, { value: r.value, unit: r.unit, timeMs });
    return true;
  }

  get(sensor: string, metric: string): LatestValue | undefined {
    return this.bySensor.get(sensor)?.get(metric);
  }

  /** The sensor's metrics and latest values, by metric name. */
  of(sensor: string): ReadonlyMap<string, LatestValue> {
    return this.bySensor.get(sensor) ?? new Map();
  }

  /** When the sensor last sent anything (ms; undefined: never seen). */
  newest(sensor: string): number | undefined {
    let t: number | undefined;
    for (const v of this.of(sensor).values()) if (t === undefined || v.timeMs > t) t = v.timeMs;
    return t;
  }
}

/** One live tile: a zone's metric summarised over its sensors' latest values. */
export interface Tile {
  zone: string;
  metric: string;
  unit: string;
  /** Mean of the numeric latest values; booleans count as 1 (true) and 0 (false). */
  mean: number | null;
  /** Sensors contributing. */
  count: number;
  /** How many of the boolean values are true (boolean metrics). */
  trueCount: number;
  /** Whether the metric's values are booleans. */
  boolean: boolean;
  /** Newest measurement time among the contributing values. */
  newestMs: number;
}

interface TileState {
  zone: string;
  metric: string;
  unit: string;
  sum: number;
  trueCount: number;
  boolean: boolean;
  values: Map<string, { v: number; timeMs: number }>;
  newestMs: number;
}

export const tileKey = (zone: string, metric: string): string => `${zone}\u0000${metric}`;

/**
 * Tiles per zone and metric, updated in O(1) per reading: the sum of the latest values of each
 * sensor is kept, so the mean needs no pass over the zone.
 */
export class ZoneTiles {
  private readonly tilesByKey = new Map<string, TileState>();

  constructor(private readonly sensorZone: (sensor: string) => string | null | undefined) {}

  /** Applies a reading; returns the key of the tile it changed, or null. */
  update(r: LiveReading): string | null {
    const zone = this.sensorZone(r.sensor);
    if (!zone) return null;
    let v: number;
    let isBool = false;
    if (typeof r.value === 'number') {
      if (!Number.isFinite(r.value)) return null;
      v = r.value;
    } else if (typeof r.value === 'boolean') {
      v = r.value ? 1 : 0;
      isBool = true;
    } else {
      return null;
    }
    const timeMs = parseMillis(r.time);
    if (Number.isNaN(timeMs)) return null;
    const key = tileKey(zone, r.metric);
    let t = this.tilesByKey.get(key);
    if (!t) {
      t = {
        zone,
        metric: r.metric,
        unit: r.unit,
        sum: 0,
        trueCount: 0,
        boolean: isBool,
        values: new Map(),
        newestMs: 0,
      };
      this.tilesByKey.set(key, t);
    }
    const held = t.values.get(r.sensor);
    if (held) {
      if (held.timeMs > timeMs) return null;
      t.sum -= held.v;
      if (t.boolean && held.v === 1) t.trueCount -= 1;
    }
    t.values.set(r.sensor, { v, timeMs });
    t.sum += v;
    if (isBool && v === 1) t.trueCount += 1;
    t.boolean = isBool;
    t.unit = r.unit;
    if (timeMs > t.newestMs) t.newestMs = timeMs;
    return key;
  }

  tile(key: string): Tile | undefined {
    const t = this.tilesByKey.get(key);
    return t ? toTile(t) : undefined;
  }

  /** Every tile, by zone then metric. */
  all(): Tile[] {
    return [...this.tilesByKey.values()]
      .sort((a, b) => (a.zone === b.zone ? cmp(a.metric, b.metric) : cmp(a.zone, b.zone)))
      .map(toTile);
  }

  keys(): string[] {
    return [...this.tilesByKey.keys()];
  }
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function toTile(t: TileState): Tile {
  const count = t.values.size;
  return {
    zone: t.zone,
    metric: t.metric,
    unit: t.unit,
    mean: count > 0 ? t.sum / count : null,
    count,
    trueCount: t.trueCount,
    boolean: t.boolean,
    newestMs: t.newestMs,
  };
}
