import { describe, expect, it } from 'vitest';

import { bucketSpec, BUCKETS, capPoints, chartValue, emptySeries, trimBefore, upsertPoint } from '../src/series';

describe('chart series', () => {
  it('appends live points, replaces revised buckets, inserts late ones in order', () => {
    const s = emptySeries();
    upsertPoint(s, 60, 1, 0, 2);
    upsertPoint(s, 180, 3);
    upsertPoint(s, 120, 2); // late
    upsertPoint(s, 180, 30, 20, 40); // revised
    expect(s.xs).toEqual([60, 120, 180]);
    expect(s.ys).toEqual([1, 2, 30]);
    expect(s.mins).toEqual([0, null, 20]);
    expect(s.maxs).toEqual([2, null, 40]);
  });

  it('slides and caps the window', () => {
    const s = emptySeries();
    for (let t = 0; t < 10; t += 1) upsertPoint(s, t, t);
    expect(trimBefore(s, 4)).toBe(4);
    expect(s.xs).toEqual([4, 5, 6, 7, 8, 9]);
    expect(trimBefore(s, 0)).toBe(0);
    capPoints(s, 2);
    expect(s.xs).toEqual([8, 9]);
    expect(s.ys).toEqual([8, 9]);
  });

  it('charts numbers and booleans, not text', () => {
    expect(chartValue(2.5)).toBe(2.5);
    expect(chartValue(true)).toBe(1);
    expect(chartValue(false)).toBe(0);
    expect(chartValue('x')).toBeNull();
    expect(chartValue(Number.NaN)).toBeNull();
  });

  it('offers raw to 1 d, with live updates up to 1 h', () => {
    expect(BUCKETS.map((b) => b.id)).toEqual(['raw', '1m', '5m', '15m', '1h', '1d']);
    expect(bucketSpec('1d').live).toBeNull();
    expect(bucketSpec('5m').live).toBe('5m');
    expect(bucketSpec('nonsense').id).toBe('raw');
    for (const b of BUCKETS) if (b.widthS) expect(b.rangeS / b.widthS).toBeLessThanOrEqual(10_080);
  });
});
