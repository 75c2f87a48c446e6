import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import {
  bboxContains,
  debounce,
  inGeometry,
  needsResubscribe,
  viewBBox,
  type BBox,
} from '../src/geo';

describe('point in zone', () => {
  const square = (x0: number, x1: number): number[][] => [
    [x0, 0],
    [x1, 0],
    [x1, 1],
    [x0, 1],
    [x0, 0],
  ];
  it('places points in polygons, holes excluded, and a shared edge on one side only', () => {
    const withHole = { type: 'Polygon' as const, coordinates: [square(0, 4), square(1, 2)] };
    expect(inGeometry(0.5, 0.5, withHole)).toBe(true);
    expect(inGeometry(1.5, 0.5, withHole)).toBe(false);
    expect(inGeometry(5, 0.5, withHole)).toBe(false);
    const west = { type: 'Polygon' as const, coordinates: [square(0, 1)] };
    const east = { type: 'MultiPolygon' as const, coordinates: [[square(1, 2)], [square(5, 6)]] };
    expect(inGeometry(5.5, 0.5, east)).toBe(true);
    for (const y of [0.25, 0.5, 0.75]) expect(inGeometry(1, y, west) !== inGeometry(1, y, east)).toBe(true);
  });
});

describe('view bbox', () => {
  it('is [west, south, east, north], rounded outwards', () => {
    expect(viewBBox(4.8123456, 45.7123456, 4.8654321, 45.7765432)).toEqual([4.81234, 45.71234, 4.86544, 45.77655]);
  });

  it('pads by a share of the view on each side', () => {
    const b = viewBBox(4.8, 45.7, 4.9, 45.8, 0.5);
    expect(b[0]).toBeCloseTo(4.75, 4);
    expect(b[1]).toBeCloseTo(45.65, 4);
    expect(b[2]).toBeCloseTo(4.95, 4);
    expect(b[3]).toBeCloseTo(45.85, 4);
  });

  it('is clamped to the world, and never west > east', () => {
    expect(viewBBox(-200, -100, 200, 100)).toEqual([-180, -90, 180, 90]);
    expect(viewBBox(-170, 10, 170, 20, 0.5)).toEqual([-180, 5, 180, 25]);
    const wrapped = viewBBox(179, 0, 181, 1);
    expect(wrapped[0]).toBeLessThanOrEqual(wrapped[2]);
  });
});

describe('resubscribe decision', () => {
  const subscribed: BBox = [4.7, 45.6, 5.0, 45.9];
  it('subscribes when nothing is', () => {
    expect(needsResubscribe(null, [4.8, 45.7, 4.9, 45.8])).toBe(true);
  });
  it('keeps the subscription for a small pan inside the padded box', () => {
    expect(needsResubscribe(subscribed, [4.75, 45.65, 4.95, 45.85])).toBe(false);
  });
  it('re-subscribes when the view leaves the box', () => {
    expect(needsResubscribe(subscribed, [4.9, 45.7, 5.1, 45.8])).toBe(true);
  });
  it('re-subscribes when zoomed far inside it', () => {
    expect(needsResubscribe(subscribed, [4.84, 45.74, 4.86, 45.76])).toBe(true);
  });
  it('box helpers', () => {
    expect(bboxContains(subscribed, [4.8, 45.7, 4.9, 45.8])).toBe(true);
    expect(bboxContains(subscribed, [4.8, 45.7, 5.1, 45.8])).toBe(false);
  });
});

describe('debounce', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('calls once with the last arguments after the quiet period', () => {
    const fn = vi.fn();
    const d = debounce(fn, 300);
    d(1);
    vi.advanceTimersByTime(200);
    d(2);
    vi.advanceTimersByTime(200);
    d(3);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(299);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(fn).toHaveBeenCalledWith(3);
  });

  it('flushes and cancels', () => {
    const fn = vi.fn();
    const d = debounce(fn, 300);
    d('a');
    d.flush();
    expect(fn).toHaveBeenCalledWith('a');
    d('b');
    d.cancel();
    vi.advanceTimersByTime(1000);
    expect(fn).toHaveBeenCalledTimes(1);
    d.flush(); // nothing pending
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('a pan-and-zoom burst gives one subscription', () => {
    const subscribe = vi.fn();
    let current: BBox | null = null;
    const onMove = debounce((view: BBox) => {
      if (needsResubscribe(current, view)) {
        current = viewBBox(view[0], view[1], view[2], view[3], 0.25);
        subscribe(current);
      }
    }, 400);
    for (let i = 0; i < 20; i += 1) onMove([4.8 + i * 0.01, 45.7, 4.9 + i * 0.01, 45.8]);
    vi.advanceTimersByTime(400);
    expect(subscribe).toHaveBeenCalledTimes(1);
    onMove([4.99, 45.7, 5.09, 45.8]); // small pan, still inside the padded box
    vi.advanceTimersByTime(400);
    expect(subscribe).toHaveBeenCalledTimes(1);
  });
});
