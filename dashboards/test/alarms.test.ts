import { describe, expect, it } from 'vitest';

import { subjectText } from '../src/alarmFeed';
import {
  activeAlarms,
  alarmSensorKey,
  describeChange,
  mergeAlarm,
  mergeAlarms,
  pruneCleared,
  reconcileActive,
  worse,
  worstSeverityBySensor,
  worstSeverityByZone,
  zoneStyle,
  ZONE_STYLES,
} from '../src/alarms';
import { setLang } from '../src/i18n';
import { pooledKey } from '../src/pooled';
import { parseMicros } from '../src/time';
import type { Alarm } from '../src/types';

function alarm(partial: Partial<Alarm> & { id: number }): Alarm {
  return {
    tenant: 'demo',
    rule: 'pm25-high',
    rule_name: 'PM2.5 high',
    severity: 'warning',
    subject: { kind: 'series', sensor: 's1', metric: 'air.pm25' },
    zone: null,
    state: 'open',
    message: 'air.pm25 = 63.2 ug/m3 > 50',
    value: 63.2,
    opened_at: '2026-12-04T10:00:00.000000Z',
    last_at: '2026-12-04T10:00:00.000000Z',
    occurrences: 1,
    acknowledged: null,
    cleared: null,
    updated_at: '2026-12-04T10:00:00.000000Z',
    ...partial,
  };
}

describe('merge by id', () => {
  it('keeps the copy with the newest updated_at, whatever the arrival order', () => {
    const open = alarm({ id: 7, updated_at: '2026-12-04T10:00:00.000001Z' });
    const acked = alarm({ id: 7, state: 'acknowledged', updated_at: '2026-12-04T10:00:00.000002Z' });
    const m1 = new Map<number, Alarm>();
    expect(mergeAlarm(m1, open)).toBe(true);
    expect(mergeAlarm(m1, acked)).toBe(true);
    expect(m1.get(7)?.state).toBe('acknowledged');

    const m2 = new Map<number, Alarm>();
    expect(mergeAlarm(m2, acked)).toBe(true);
    expect(mergeAlarm(m2, open)).toBe(false); // older: a late REST copy must not undo it
    expect(m2.get(7)?.state).toBe('acknowledged');
  });

  it('an equal updated_at keeps the held copy', () => {
    const m = new Map<number, Alarm>();
    mergeAlarm(m, alarm({ id: 1, message: 'first' }));
    expect(mergeAlarm(m, alarm({ id: 1, message: 'second' }))).toBe(false);
    expect(m.get(1)?.message).toBe('first');
  });

  it('compares microseconds, and offsets, not strings', () => {
    const m = new Map<number, Alarm>();
    mergeAlarm(m, alarm({ id: 2, updated_at: '2026-12-04T11:00:00.000000+01:00', message: 'a' }));
    // 10:00:00.000001Z is one microsecond after 11:00:00+01:00.
    expect(mergeAlarm(m, alarm({ id: 2, updated_at: '2026-12-04T10:00:00.000001Z', message: 'b' }))).toBe(true);
    expect(m.get(2)?.message).toBe('b');
  });

  it('mergeAlarms reports the ids that changed', () => {
    const m = new Map<number, Alarm>();
    mergeAlarm(m, alarm({ id: 1, updated_at: '2026-12-04T10:00:05.000000Z' }));
    const changed = mergeAlarms(m, [
      alarm({ id: 1, updated_at: '2026-12-04T10:00:01.000000Z' }),
      alarm({ id: 2 }),
    ]);
    expect(changed).toEqual([2]);
  });

  it('a cleared copy removes the alarm from the active list and is not resurrected', () => {
    const m = new Map<number, Alarm>();
    mergeAlarm(m, alarm({ id: 3, state: 'cleared', updated_at: '2026-12-04T10:05:00.000000Z' }));
    mergeAlarm(m, alarm({ id: 3, state: 'open', updated_at: '2026-12-04T10:01:00.000000Z' }));
    expect(activeAlarms(m.values())).toHaveLength(0);
  });
});

describe('active alarms', () => {
  it('are the open and acknowledged ones, newest first', () => {
    const list = activeAlarms([
      alarm({ id: 1, opened_at: '2026-12-04T09:00:00.000000Z' }),
      alarm({ id: 2, opened_at: '2026-12-04T11:00:00.000000Z', state: 'acknowledged' }),
      alarm({ id: 3, opened_at: '2026-12-04T12:00:00.000000Z', state: 'cleared' }),
      alarm({ id: 4, opened_at: '2026-12-04T10:00:00.000000Z' }),
      alarm({ id: 5, opened_at: '2026-12-04T10:00:00.000000Z' }),
    ]);
    expect(list.map((a) => a.id)).toEqual([2, 5, 4, 1]);
  });

  it('reconcile drops active alarms missing from a complete listing, unless newer', () => {
    const m = new Map<number, Alarm>();
    mergeAlarm(m, alarm({ id: 1, updated_at: '2026-12-04T10:00:00.000000Z' }));
    mergeAlarm(m, alarm({ id: 2, updated_at: '2026-12-04T10:00:00.000000Z' }));
    mergeAlarm(m, alarm({ id: 3, updated_at: '2026-12-04T10:10:00.000000Z' })); // arrived live after
    mergeAlarm(m, alarm({ id: 4, state: 'cleared' }));
    const fetchStart = parseMicros('2026-12-04T10:05:00.000000Z');
    const dropped = reconcileActive(m, [alarm({ id: 2 })], fetchStart);
    expect(dropped).toEqual([1]);
    expect([...m.keys()].sort()).toEqual([2, 3, 4]);
  });
});

describe('pruning', () => {
  it('forgets old cleared alarms only', () => {
    const m = new Map<number, Alarm>();
    mergeAlarm(m, alarm({ id: 1, state: 'cleared', updated_at: '2026-12-04T09:00:00.000000Z' }));
    mergeAlarm(m, alarm({ id: 2, state: 'cleared', updated_at: '2026-12-04T10:30:00.000000Z' }));
    mergeAlarm(m, alarm({ id: 3, state: 'open', updated_at: '2026-12-04T09:00:00.000000Z' }));
    expect(pruneCleared(m, parseMicros('2026-12-04T10:00:00Z'))).toBe(1);
    expect([...m.keys()].sort()).toEqual([2, 3]);
  });
});

describe('zone colouring', () => {
  it('takes the worst active severity per zone', () => {
    const worst = worstSeverityByZone([
      alarm({ id: 1, zone: 'presquile', severity: 'warning' }),
      alarm({ id: 2, zone: 'presquile', severity: 'critical' }),
      alarm({ id: 3, zone: 'presquile', severity: 'major', state: 'acknowledged' }),
      alarm({ id: 4, zone: 'confluence', severity: 'info' }),
      alarm({ id: 5, zone: 'confluence', severity: 'critical', state: 'cleared' }),
      alarm({ id: 6, zone: 'part-dieu', severity: 'major', state: 'acknowledged' }),
    ]);
    expect(Object.fromEntries(worst)).toEqual({
      presquile: 'critical',
      confluence: 'info',
      'part-dieu': 'major',
    });
  });

  it('falls back to the zone of the sensor when the alarm has none', () => {
    const zones: Record<string, string> = { s9: 'gerland' };
    const worst = worstSeverityByZone(
      [
        alarm({ id: 1, subject: { kind: 'series', sensor: 's9', metric: 'noise.laeq' }, severity: 'major' }),
        alarm({ id: 2, subject: { kind: 'gateway', gateway: 'gw-1' }, severity: 'critical' }),
      ],
      (s) => zones[s],
    );
    expect(Object.fromEntries(worst)).toEqual({ gerland: 'major' });
  });

  it('maps severities to distinct styles, and no alarm to the calm one', () => {
    expect(zoneStyle(undefined)).toBe(ZONE_STYLES.none);
    const colours = new Set(
      (['info', 'warning', 'major', 'critical'] as const).map((s) => zoneStyle(s).fillColor),
    );
    expect(colours.size).toBe(4);
    expect(zoneStyle('critical').weight).toBeGreaterThan(zoneStyle(undefined).weight);
  });

  it('orders severities', () => {
    expect(worse('info', 'critical')).toBe('critical');
    expect(worse('major', 'warning')).toBe('major');
    expect(worse(undefined, 'info')).toBe('info');
    expect(worse('info', undefined)).toBe('info');
  });

  it('rings sensors with their worst active series alarm', () => {
    const w = worstSeverityBySensor([
      alarm({ id: 1, severity: 'info' }),
      alarm({ id: 2, severity: 'major' }),
      alarm({ id: 3, severity: 'critical', state: 'cleared' }),
    ]);
    expect(w.get('s1')).toBe('major');
  });

  it('rings a pooled sensor by operator and sensor, never an own sensor of the same id', () => {
    const pooled = { kind: 'pooled', operator: 'metro', sensor: 's1', metric: 'no2' } as const;
    expect(alarmSensorKey(pooled)).toBe(pooledKey('metro', 's1'));
    expect(alarmSensorKey({ kind: 'gateway', gateway: 'gw-1' })).toBeUndefined();
    const w = worstSeverityBySensor([
      alarm({ id: 1, severity: 'info' }),
      alarm({ id: 2, severity: 'critical', subject: pooled, zone: 'centre' }),
      alarm({ id: 3, severity: 'major', subject: { ...pooled, operator: 'sytral' } }),
    ]);
    expect(Object.fromEntries(w)).toEqual({ s1: 'info', 'metro/s1': 'critical', 'sytral/s1': 'major' });
  });
});

describe('subject text', () => {
  it('names the operator of a pooled sensor, after its sensor and metric', () => {
    const a = alarm({ id: 1, subject: { kind: 'pooled', operator: 'metro', sensor: 'p_ab12', metric: 'no2' } });
    setLang('en');
    expect(subjectText(a)).toBe('p_ab12 · no2 · pooled · operated by metro');
    expect(subjectText(alarm({ id: 2 }))).toBe('s1 · air.pm25');
    setLang('fr');
    expect(subjectText(a)).toBe('p_ab12 · no2 · mutualisé · opéré par metro');
    setLang('en');
  });
});

describe('describeChange', () => {
  it('names what happened for the ticker', () => {
    const a = alarm({ id: 1 });
    expect(describeChange(undefined, a)).toBe('opened');
    expect(describeChange(a, { ...a, occurrences: 2 })).toBe('repeated');
    expect(describeChange(a, { ...a, state: 'acknowledged' })).toBe('acknowledged');
    expect(describeChange(a, { ...a, state: 'cleared' })).toBe('cleared');
    expect(describeChange(a, { ...a, message: 'x' })).toBe('updated');
  });
});
