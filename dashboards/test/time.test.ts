import { describe, expect, it } from 'vitest';

import { Clock, compareTimes, parseMicros, parseMillis, toIso } from '../src/time';

describe('RFC 3339 times', () => {
  it('keep microseconds', () => {
    const base = Date.parse('2026-12-04T10:00:00Z') * 1000;
    expect(parseMicros('2026-12-04T10:00:00.000000Z')).toBe(base);
    expect(parseMicros('2026-12-04T10:00:00.000001Z')).toBe(base + 1);
    expect(parseMicros('2026-12-04T10:00:00.5Z')).toBe(base + 500_000);
    expect(parseMicros('2026-12-04T10:00:00.123456789Z')).toBe(base + 123_456);
    expect(parseMicros('2026-12-04T11:00:00+01:00')).toBe(base);
    expect(parseMillis('2026-12-04T10:00:00.999999Z')).toBe(base / 1000 + 999);
  });
  it('refuse what is not RFC 3339', () => {
    expect(parseMicros('yesterday')).toBeNaN();
    expect(parseMicros('2026-12-04')).toBeNaN();
    expect(parseMillis('')).toBeNaN();
  });
  it('compare', () => {
    expect(compareTimes('2026-12-04T10:00:00.000002Z', '2026-12-04T10:00:00.000001Z')).toBeGreaterThan(0);
    expect(compareTimes('bad', '2026-12-04T10:00:00Z')).toBeLessThan(0);
    expect(compareTimes('bad', 'worse')).toBe(0);
  });
  it('toIso gives what the API accepts', () => {
    expect(toIso(Date.parse('2026-12-04T10:00:00Z'))).toBe('2026-12-04T10:00:00.000Z');
  });
});

describe('clock', () => {
  it('corrects the browser clock with the server time of hello', () => {
    let local = Date.parse('2026-12-04T10:00:00Z');
    const clock = new Clock(() => local);
    expect(clock.now()).toBe(local);
    clock.sync('2026-12-04T10:00:30.000000Z');
    expect(clock.offset()).toBe(30_000);
    local += 1000;
    expect(clock.now()).toBe(Date.parse('2026-12-04T10:00:31Z'));
    clock.sync('garbage');
    expect(clock.offset()).toBe(30_000);
  });
});
