import { describe, expect, it } from 'vitest';

import {
  agreementToForm,
  emptyAgreementForm,
  formToAgreement,
  fromUtcInput,
  isMetricPattern,
  parseDuration,
  secondsToText,
  serverFieldErrors,
  summarizeTarget,
  summarizeTerms,
  toUtcInput,
  validityAt,
  type AgreementForm,
} from '../src/agreementForm';
import type { Agreement } from '../src/governanceTypes';

const NOW = Date.parse('2026-12-04T10:20:00Z');

function aggregateForm(): AgreementForm {
  return {
    ...emptyAgreementForm(NOW),
    id: 'air-research',
    granteeKind: 'partner',
    granteeId: 'air-lab',
    metrics: 'air.*, noise.laeq',
    zones: 'presquile',
    purposes: ['research', 'open_data'],
    functions: ['avg', 'max'],
  };
}

function rawForm(): AgreementForm {
  return {
    ...aggregateForm(),
    action: 'read_raw',
    k: '1',
    spatialLevel: 'sensor',
    minBucket: '',
    pseudonymise: true,
    fields: ['time', 'value', 'sensor'],
  };
}

const errorFields = (form: AgreementForm): (string | null)[] => {
  const r = formToAgreement(form);
  return r.ok ? [] : r.errors.map((e) => e.field);
};

describe('agreement form', () => {
  it('starts with an hourly zone aggregate valid for a year from the current hour', () => {
    const f = emptyAgreementForm(NOW);
    expect(f.notBefore).toBe('2026-12-04T10:00');
    expect(f.notAfter).toBe('2027-12-04T10:00');
    expect(f.action).toBe('read_aggregate');
    expect(f.minBucket).toBe('1h');
    expect(f.k).toBe('3');
  });

  it('builds the native body of an aggregate agreement', () => {
    const r = formToAgreement(aggregateForm());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.body).toEqual({
      id: 'air-research',
      grantee: 'partner:air-lab',
      not_before: '2026-12-04T10:00:00Z',
      not_after: '2027-12-04T10:00:00Z',
      purposes: ['research', 'open_data'],
      action: 'read_aggregate',
      target: { metrics: ['air.*', 'noise.laeq'], zones: ['presquile'] },
      functions: ['avg', 'max'],
      k: 3,
      spatial_level: 'zone',
      pseudonymise: false,
      embargo_s: 0,
      min_bucket_s: 3600,
    });
  });

  it('builds a raw agreement with its fields, and a public grantee without id', () => {
    const r = formToAgreement({ ...rawForm(), granteeKind: 'public', granteeId: 'ignored', embargo: '15m' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.body.grantee).toBe('public');
    expect(r.body.fields).toEqual(['time', 'value', 'sensor']);
    expect(r.body.min_bucket_s).toBeUndefined();
    expect(r.body.embargo_s).toBe(900);
    expect(r.body.pseudonymise).toBe(true);
  });

  it('drops raw fields from an aggregate agreement (the server refuses them there)', () => {
    const r = formToAgreement({ ...aggregateForm(), fields: ['time'] });
    expect(r.ok && r.body.fields).toBe(undefined);
  });

  it('mirrors the server rules, naming the field', () => {
    expect(errorFields({ ...aggregateForm(), id: 'Air' })).toEqual(['id']);
    expect(errorFields({ ...aggregateForm(), granteeId: '' })).toEqual(['granteeId']);
    expect(errorFields({ ...aggregateForm(), metrics: '' })).toEqual(['metrics']);
    expect(errorFields({ ...aggregateForm(), metrics: 'air.' })).toEqual(['metrics']);
    expect(errorFields({ ...aggregateForm(), zones: 'a b_c' })).toEqual(['zones']);
    expect(errorFields({ ...aggregateForm(), purposes: [] })).toEqual(['purposes']);
    expect(errorFields({ ...aggregateForm(), functions: [] })).toEqual(['functions']);
    expect(errorFields({ ...aggregateForm(), k: '0' })).toEqual(['k']);
    expect(errorFields({ ...aggregateForm(), k: '2.5' })).toEqual(['k']);
    expect(errorFields({ ...aggregateForm(), minBucket: '' })).toEqual(['minBucket']);
    expect(errorFields({ ...aggregateForm(), minBucket: '0' })).toEqual(['minBucket']);
    expect(errorFields({ ...aggregateForm(), minBucket: '1w' })).toEqual(['minBucket']);
    expect(errorFields({ ...aggregateForm(), embargo: '-1' })).toEqual(['embargo']);
    expect(errorFields({ ...aggregateForm(), notAfter: '2026-12-04T10:00' })).toEqual(['notAfter']);
    expect(errorFields({ ...aggregateForm(), notBefore: 'tomorrow' })).toEqual(['notBefore']);
    expect(errorFields({ ...aggregateForm(), spatialLevel: 'sensor' })).toEqual(['k']);
    expect(errorFields({ ...rawForm(), spatialLevel: 'zone' })).toEqual(['spatialLevel']);
    expect(errorFields({ ...rawForm(), k: '3' })).toEqual(['k']);
    expect(errorFields({ ...rawForm(), fields: [] })).toEqual(['fields']);
    expect(errorFields({ ...rawForm(), fields: ['time', 'gateway'] })).toEqual(['fields']);
    expect(errorFields({ ...rawForm(), fields: ['time', 'gateway'], pseudonymise: false })).toEqual([]);
  });

  it('round-trips an agreement through the form, prohibitions kept', () => {
    const agreement: Agreement = {
      id: 'air-open',
      version: 4,
      grantor: 'demo',
      grantee: 'tenant:villeurbanne',
      state: 'active',
      not_before: '2026-01-01T00:00:00Z',
      not_after: '2027-01-01T00:00:00Z',
      purposes: ['environmental_monitoring'],
      action: 'read_aggregate',
      target: { metrics: ['air.*'], tags: ['air-quality'], sensors: ['s-1'] },
      min_bucket_s: 900,
      functions: ['avg', 'count'],
      k: 2,
      spatial_level: 'zone',
      pseudonymise: false,
      embargo_s: 86_400,
      prohibitions: [{ action: 'read_aggregate', target: { metrics: ['air.no2'] } }],
    };
    const form = agreementToForm(agreement);
    expect(form.minBucket).toBe('15m');
    expect(form.embargo).toBe('1d');
    expect(form.granteeKind).toBe('tenant');
    const r = formToAgreement(form);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const { version: _v, grantor: _g, state: _s, ...terms } = agreement;
    expect(r.body).toEqual(terms);
  });

  it('maps the server refusal to the fields it names', () => {
    expect(
      serverFieldErrors(
        'invalid agreement: k: a sensor-level cell holds one sensor: k > 1 would suppress every cell; use spatial_level zone; target.metrics: must not be empty; fields: gateway identifies the device that pseudonymisation hides; drop it or stop pseudonymising',
      ),
    ).toEqual([
      { field: 'k', message: 'a sensor-level cell holds one sensor: k > 1 would suppress every cell; use spatial_level zone' },
      { field: 'metrics', message: 'must not be empty' },
      { field: 'fields', message: 'gateway identifies the device that pseudonymisation hides; drop it or stop pseudonymising' },
    ]);
    expect(serverFieldErrors('grantee: partner:nope does not exist')).toEqual([{ field: 'granteeId', message: 'partner:nope does not exist' }]);
    expect(serverFieldErrors('invalid agreement: prohibitions[0].target.tags: a prohibition cannot be scoped by tag')[0]?.field).toBe('prohibitions');
    expect(serverFieldErrors('not an agreement: missing field `k`')).toEqual([{ field: null, message: 'not an agreement: missing field `k`' }]);
  });
});

describe('pooling agreements', () => {
  const pooling = (): AgreementForm => ({
    ...rawForm(),
    granteeKind: 'tenant',
    granteeId: 'villeurbanne',
    pooling: true,
    territories: 'commune, quartier-nord',
  });

  it('builds a pooling body with territories, and round-trips it', () => {
    const result = formToAgreement(pooling());
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.body.pooling).toBe(true);
    expect(result.body.target.territories).toEqual(['commune', 'quartier-nord']);
    const stored: Agreement = { ...result.body, grantor: 'lyon', state: 'active', version: 1 };
    const back = agreementToForm(stored);
    expect(back.pooling).toBe(true);
    expect(back.territories).toBe('commune, quartier-nord');
    expect(summarizeTarget(stored, 'en')).toContain('territories: commune, quartier-nord');
    const plain = formToAgreement({ ...rawForm(), granteeKind: 'tenant', granteeId: 'villeurbanne' });
    expect(plain.ok).toBe(true);
    expect(plain.ok && 'pooling' in plain.body).toBe(false);
  });

  it('refuses what the server refuses, naming the field', () => {
    const fields = (form: AgreementForm): (string | null)[] => {
      const result = formToAgreement(form);
      return result.ok ? [] : result.errors.map((e) => e.field);
    };
    expect(fields({ ...pooling(), granteeKind: 'partner', granteeId: 'air-lab' })).toEqual(['granteeKind']);
    expect(fields({ ...pooling(), pooling: false })).toEqual(['territories']);
    expect(fields({ ...pooling(), territories: 'Not A Slug' })).toEqual(['territories']);
    const zoneCells = { ...aggregateForm(), granteeKind: 'tenant' as const, granteeId: 'vaulx', pooling: true, territories: 'commune' };
    expect(fields(zoneCells)).toEqual(['territories']);
    // Sensor cells may be pooled by territory (each kept only if its sensor stood inside).
    expect(fields({ ...zoneCells, spatialLevel: 'sensor', k: '1' })).toEqual([]);
    expect(serverFieldErrors('invalid agreement: target.territories: read_raw only')[0]?.field).toBe('territories');
  });
});

describe('agreement form parsing', () => {
  it('reads durations as the server does', () => {
    expect(parseDuration('3600')).toBe(3600);
    expect(parseDuration('90s')).toBe(90);
    expect(parseDuration(' 15m ')).toBe(900);
    expect(parseDuration('1h')).toBe(3600);
    expect(parseDuration('1d')).toBe(86_400);
    expect(parseDuration('1.5h')).toBeNull();
    expect(parseDuration('h')).toBeNull();
    expect(parseDuration('-5')).toBeNull();
    for (const s of [1, 59, 60, 900, 3600, 5400, 86_400, 172_800]) expect(parseDuration(secondsToText(s))).toBe(s);
    expect(secondsToText(5400)).toBe('90m');
  });

  it('knows metric patterns', () => {
    for (const ok of ['*', 'air.*', 'air.pm25', 'air.no2.*', 'traffic.count']) expect(isMetricPattern(ok), ok).toBe(true);
    for (const bad of ['', 'air.', '*.pm25', 'air*', 'air.*.*', 'Air.*', '2air']) expect(isMetricPattern(bad), bad).toBe(false);
  });

  it('reads datetime-local values as UTC', () => {
    expect(fromUtcInput('2026-12-04T10:00')).toBe('2026-12-04T10:00:00Z');
    expect(fromUtcInput('2026-12-04T10:00:30')).toBe('2026-12-04T10:00:30Z');
    expect(fromUtcInput('2026-13-04T10:00')).toBeNull();
    expect(fromUtcInput('')).toBeNull();
    expect(toUtcInput(Date.parse('2026-12-04T10:00:59Z'))).toBe('2026-12-04T10:00');
  });

  it('summarizes an agreement in both languages', () => {
    const agreement = {
      target: { metrics: ['air.*'], zones: ['north'] },
      min_bucket_s: 3600,
      action: 'read_aggregate',
      functions: ['avg'],
      k: 3,
      spatial_level: 'zone',
      not_before: '2026-01-01T00:00:00Z',
      not_after: '2027-01-01T00:00:00Z',
    } as unknown as Agreement;
    expect(summarizeTarget(agreement, 'en')).toBe('air.* · zones: north');
    expect(summarizeTarget(agreement, 'fr')).toBe('air.* · secteurs : north');
    expect(summarizeTerms(agreement, 'en')).toBe('1\u00a0h · mean · k ≥ 3 · zone');
    expect(validityAt(agreement, Date.parse('2025-06-01T00:00:00Z'))).toBe('pending');
    expect(validityAt(agreement, Date.parse('2026-06-01T00:00:00Z'))).toBe('current');
    expect(validityAt(agreement, Date.parse('2027-01-01T00:00:00Z'))).toBe('expired');
  });
});
