import { describe, expect, it } from 'vitest';

import { isStale, LatestValues, STALE_AFTER_MS, tileKey, ZoneTiles } from '../src/values';
import type { LiveReading } from '../src/types';

const r = (sensor: string, value: LiveReading['value'], time: string, metric = 'air.pm25'): LiveReading => ({
  sensor,
  metric,
  unit: 'ug/m3',
  time,
  value,
});

describe('stale detection', () => {
  const now = Date.parse('2026-12-04T10:10:00Z');
  it('is fresh within two minutes while connected', () => {
    expect(isStale(now - 1000, now, true)).toBe(false);
    expect(isStale(now - STALE_AFTER_MS, now, true)).toBe(false);
    expect(isStale(now - STALE_AFTER_MS - 1, now, true)).toBe(true);
  });
  it('is stale when the socket is down, whatever the age', () => {
    expect(isStale(now, now, false)).toBe(true);
  });
  it('is stale without a value or a time', () => {
    expect(isStale(undefined, now, true)).toBe(true);
    expect(isStale(null, now, true)).toBe(true);
    expect(isStale(Number.NaN, now, true)).toBe(true);
  });
  it('takes another threshold', () => {
    expect(isStale(now - 30_000, now, true, 10_000)).toBe(true);
  });
});

describe('latest values', () => {
  it('keeps the newest per series and ignores older copies', () => {
    const l = new LatestValues();
    expect(l.update(r('s1', 10, '2026-12-04T10:00:02.000000Z'))).toBe(true);
    expect(l.update(r('s1', 5, '2026-12-04T10:00:01.000000Z'))).toBe(false);
    expect(l.get('s1', 'air.pm25')?.value).toBe(10);
    expect(l.update(r('s1', 1, 'garbage'))).toBe(false);
    l.update(r('s1', 40, '2026-12-04T10:00:03.000000Z', 'noise.laeq'));
    expect([...l.of('s1').keys()].sort()).toEqual(['air.pm25', 'noise.laeq']);
    expect(l.newest('s1')).toBe(Date.parse('2026-12-04T10:00:03Z'));
    expect(l.newest('nobody')).toBeUndefined();
  });
});

describe('zone tiles', () => {
  const zones: Record<string, string> = { a: 'z1', b: 'z1', c: 'z2' };
  const tiles = (): ZoneTiles => new ZoneTiles((s) => zones[s]);

  it('means the latest value of each sensor of the zone, incrementally', () => {
    const t = tiles();
    t.update(r('a', 10, '2026-12-04T10:00:00Z'));
    t.update(r('b', 20, '2026-12-04T10:00:01Z'));
    const key = tileKey('z1', 'air.pm25');
    expect(t.tile(key)?.mean).toBe(15);
    expect(t.tile(key)?.count).toBe(2);
    // a's new value replaces its old one: (30 + 20) / 2.
    expect(t.update(r('a', 30, '2026-12-04T10:00:02Z'))).toBe(key);
    expect(t.tile(key)?.mean).toBe(25);
    expect(t.tile(key)?.newestMs).toBe(Date.parse('2026-12-04T10:00:02Z'));
    // An older copy changes nothing.
    expect(t.update(r('a', 1000, '2026-12-04T09:00:00Z'))).toBeNull();
    expect(t.tile(key)?.mean).toBe(25);
  });

  it('keeps zones and metrics apart and ignores unzoned sensors and text', () => {
    const t = tiles();
    t.update(r('a', 10, '2026-12-04T10:00:00Z'));
    t.update(r('c', 50, '2026-12-04T10:00:00Z'));
    t.update(r('a', 60, '2026-12-04T10:00:00Z', 'noise.laeq'));
    expect(t.update(r('nowhere', 1, '2026-12-04T10:00:00Z'))).toBeNull();
    expect(t.update(r('a', 'ok', '2026-12-04T10:00:05Z'))).toBeNull();
    expect(t.all().map((x) => [x.zone, x.metric, x.mean])).toEqual([
      ['z1', 'air.pm25', 10],
      ['z1', 'noise.laeq', 60],
      ['z2', 'air.pm25', 50],
    ]);
  });

  it('counts booleans (occupied places)', () => {
    const t = tiles();
    t.update(r('a', true, '2026-12-04T10:00:00Z', 'parking.occupied'));
    t.update(r('b', false, '2026-12-04T10:00:00Z', 'parking.occupied'));
    const key = tileKey('z1', 'parking.occupied');
    expect(t.tile(key)).toMatchObject({ boolean: true, trueCount: 1, count: 2, mean: 0.5 });
    t.update(r('b', true, '2026-12-04T10:00:01Z', 'parking.occupied'));
    expect(t.tile(key)).toMatchObject({ trueCount: 2, mean: 1 });
    t.update(r('a', false, '2026-12-04T10:00:02Z', 'parking.occupied'));
    expect(t.tile(key)).toMatchObject({ trueCount: 1, mean: 0.5 });
  });

  it('stays exact over many updates', () => {
    const t = tiles();
    let expectedA = 0;
    let expectedB = 0;
    for (let i = 0; i < 10_000; i += 1) {
      const time = new Date(Date.parse('2026-12-04T10:00:00Z') + i * 1000).toISOString();
      const v = Math.sin(i) * 100;
      if (i % 2) {
        expectedA = v;
        t.update(r('a', v, time));
      } else {
        expectedB = v;
        t.update(r('b', v, time));
      }
    }
    expect(t.tile(tileKey('z1', 'air.pm25'))?.mean).toBeCloseTo((expectedA + expectedB) / 2, 9);
  });
});
