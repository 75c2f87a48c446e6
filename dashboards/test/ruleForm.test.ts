import { describe, expect, it } from 'vitest';

import { emptyForm, formToBody, parseNumber, ruleToForm, splitList, summarize, toggledBody } from '../src/ruleForm';
import type { AlarmRule, RuleCondition } from '../src/types';

function rule(condition: RuleCondition): AlarmRule {
  return {
    tenant: 'demo',
    id: 'r1',
    name: 'Rule one',
    severity: 'major',
    enabled: true,
    condition,
    created_at: '2026-12-04T10:00:00.000000Z',
    updated_at: '2026-12-04T10:00:00.000000Z',
  };
}

describe('rule form', () => {
  it('round-trips every kind of condition', () => {
    const conditions: RuleCondition[] = [
      { kind: 'threshold', metric: 'air.pm25', op: 'gt', value: 50, for_s: 600 },
      { kind: 'threshold', metric: 'noise.laeq', zone: 'presquile', sensors: ['s1', 's2'], op: 'le', value: -3.5, for_s: 0 },
      { kind: 'gateway_offline', after_s: 120 },
      { kind: 'gateway_offline', after_s: 10, gateways: ['gw-1'] },
      { kind: 'spool_gap' },
      { kind: 'spool_gap', reasons: ['spool-full'] },
      { kind: 'certificate_expiry', before_s: 604_800 },
      { kind: 'certificate_expiry', before_s: 3600, gateways: ['gw-1', 'gw-2'] },
      { kind: 'security' },
      { kind: 'security', events: ['acl_violation', 'tls_rejected'] },
    ];
    for (const c of conditions) {
      const r = rule(c);
      const result = formToBody(ruleToForm(r), false);
      expect(result.ok, JSON.stringify(c)).toBe(true);
      if (result.ok) {
        expect(result.body).toEqual({ name: r.name, severity: r.severity, enabled: r.enabled, condition: c });
        expect(result.body.id).toBeUndefined();
      }
    }
  });

  it('round-trips the pooled purpose of a threshold rule, absent staying absent', () => {
    const own: RuleCondition = { kind: 'threshold', metric: 'no2', zone: 'centre', op: 'gt', value: 200, for_s: 600 };
    const pooled: RuleCondition = { ...own, pooled: 'environmental_monitoring' };
    expect(ruleToForm(rule(own)).pooled).toBe('');
    expect(ruleToForm(rule(pooled)).pooled).toBe('environmental_monitoring');
    const ownBody = formToBody(ruleToForm(rule(own)), false);
    expect(ownBody.ok && 'pooled' in ownBody.body.condition).toBe(false);
    const pooledBody = formToBody(ruleToForm(rule(pooled)), false);
    expect(pooledBody.ok && pooledBody.body.condition).toEqual(pooled);
    const chosen = formToBody({ ...emptyForm(), name: 'NO2', metric: 'no2', value: '200', pooled: 'research' }, true);
    expect(chosen.ok && chosen.body.condition).toMatchObject({ kind: 'threshold', pooled: 'research' });
  });

  it('sends the id only when creating and given', () => {
    const f = { ...emptyForm(), name: 'PM high', metric: 'air.pm25', value: '50', id: 'pm-high' };
    const created = formToBody(f, true);
    expect(created.ok && created.body.id).toBe('pm-high');
    const noId = formToBody({ ...f, id: '' }, true);
    expect(noId.ok && noId.body.id).toBeUndefined();
    const edited = formToBody(f, false);
    expect(edited.ok && edited.body.id).toBeUndefined();
  });

  it('accepts a decimal comma and trims', () => {
    const f = { ...emptyForm(), name: '  Chaleur ', metric: ' air.temperature ', value: '35,5', forS: '' };
    const result = formToBody(f, true);
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.body.name).toBe('Chaleur');
      expect(result.body.condition).toEqual({ kind: 'threshold', metric: 'air.temperature', op: 'gt', value: 35.5, for_s: 0 });
    }
  });

  it('names the fields in error', () => {
    const fields = (f: Parameters<typeof formToBody>[0], creating = true): string[] => {
      const r = formToBody(f, creating);
      return r.ok ? [] : r.errors.map((e) => e.field);
    };
    const base = { ...emptyForm(), name: 'x', metric: 'air.pm25', value: '1' };
    expect(fields({ ...base, name: '   ' })).toEqual(['name']);
    expect(fields({ ...base, name: 'x'.repeat(101) })).toEqual(['name']);
    expect(fields({ ...base, id: 'Bad Id' })).toEqual(['id']);
    expect(fields({ ...base, id: 'Bad Id' }, false)).toEqual([]);
    expect(fields({ ...base, metric: 'Air.PM25' })).toEqual(['metric']);
    expect(fields({ ...base, value: 'abc' })).toEqual(['value']);
    expect(fields({ ...base, value: '' })).toEqual(['value']);
    expect(fields({ ...base, forS: '-1' })).toEqual(['forS']);
    expect(fields({ ...base, forS: '604801' })).toEqual(['forS']);
    expect(fields({ ...base, sensors: 's1, BAD' })).toEqual(['sensors']);
    expect(fields({ ...base, zone: 'Zone A' })).toEqual(['zone']);
    const offline = { ...base, kind: 'gateway_offline' as const };
    expect(fields({ ...offline, afterS: '9' })).toEqual(['afterS']);
    expect(fields({ ...offline, afterS: '10' })).toEqual([]);
    expect(fields({ ...offline, afterS: '1.5' })).toEqual(['afterS']);
    expect(fields({ ...offline, gateways: 'gw_1' })).toEqual(['gateways']);
    const cert = { ...base, kind: 'certificate_expiry' as const };
    expect(fields({ ...cert, noticeDays: '0' })).toEqual(['noticeDays']);
    expect(fields({ ...cert, noticeDays: '366' })).toEqual(['noticeDays']);
    expect(fields({ ...cert, noticeDays: 'soon' })).toEqual(['noticeDays']);
    expect(fields({ ...cert, noticeDays: '0,5', gateways: 'gw-1' })).toEqual([]);
    const half = formToBody({ ...cert, noticeDays: '0,5' }, true);
    expect(half.ok && half.body.condition).toEqual({ kind: 'certificate_expiry', before_s: 43_200 });
  });

  it('builds the toggle body from the rule as it is', () => {
    const r = rule({ kind: 'security', events: ['acl_violation'] });
    expect(toggledBody(r, false)).toEqual({ name: r.name, severity: r.severity, enabled: false, condition: r.condition });
  });

  it('helpers', () => {
    expect(splitList(' a, b;c  d,,a ')).toEqual(['a', 'b', 'c', 'd']);
    expect(parseNumber('1e3')).toBe(1000);
    expect(parseNumber('-0,5')).toBe(-0.5);
    expect(parseNumber('12abc')).toBeNull();
    expect(parseNumber('')).toBeNull();
  });
});

describe('condition summary', () => {
  it('says what a rule watches in both languages', () => {
    const c: RuleCondition = { kind: 'threshold', metric: 'air.pm25', op: 'gt', value: 50, for_s: 600, zone: 'presquile' };
    expect(summarize(c, 'en').replace(/\u00a0/g, ' ')).toBe('air.pm25 > 50, for 10 min, in presquile');
    expect(summarize(c, 'fr').replace(/\u00a0/g, ' ')).toBe('air.pm25 > 50, pendant 10 min, dans presquile');
    expect(summarize({ kind: 'gateway_offline', after_s: 120 }, 'en').replace(/\u00a0/g, ' ')).toBe('gateway silent for 2 min');
    expect(summarize({ kind: 'spool_gap' }, 'fr')).toBe('trou dans la file (tous)');
    expect(summarize({ kind: 'certificate_expiry', before_s: 604_800, gateways: ['gw-1'] }, 'en').replace(/\u00a0/g, ' ')).toBe(
      'gateway certificate expiring within 7 d (gw-1)',
    );
    expect(summarize({ kind: 'security', events: ['acl_violation'] }, 'en')).toBe('security events (topic ACL violation)');
  });
});
