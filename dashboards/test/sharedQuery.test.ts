import { describe, expect, it } from 'vitest';

import { previewQuery, type ReadSpec } from '../src/sharedQuery';

const NOW = Date.parse('2026-12-04T10:20:30Z');
const base: ReadSpec = {
  kind: 'readings',
  purpose: 'research',
  metric: 'air.*, noise.laeq',
  range: '1h',
  bucket: '1h',
  level: 'zone',
  functions: ['avg', 'max'],
};

describe('governed read queries', () => {
  it('reads raw rows over the chosen period', () => {
    expect(previewQuery(base, NOW)).toEqual({
      ok: true,
      query: { purpose: 'research', metric: ['air.*', 'noise.laeq'], from: '2026-12-04T09:20:30.000Z', to: '2026-12-04T10:20:30.000Z' },
    });
  });

  it('reads aggregates from a bucket boundary, with functions and level', () => {
    expect(previewQuery({ ...base, kind: 'aggregates', range: '6h', metric: '', agreement: 'air-open' }, NOW)).toEqual({
      ok: true,
      query: {
        purpose: 'research',
        agreement: 'air-open',
        bucket: 3600,
        functions: 'avg,max',
        level: 'zone',
        from: '2026-12-04T04:00:00.000Z',
        to: '2026-12-04T10:20:30.000Z',
      },
    });
  });

  it('reads sensors with the purpose only', () => {
    expect(previewQuery({ ...base, kind: 'sensors', metric: 'bad..', range: 'x' }, NOW)).toEqual({ ok: true, query: { purpose: 'research' } });
  });

  it('names the bad field', () => {
    expect(previewQuery({ ...base, purpose: '' }, NOW)).toMatchObject({ ok: false, field: 'purpose' });
    expect(previewQuery({ ...base, metric: 'air.' }, NOW)).toMatchObject({ ok: false, field: 'metric', params: { value: 'air.' } });
    expect(previewQuery({ ...base, range: '2y' }, NOW)).toMatchObject({ ok: false, field: 'range' });
    expect(previewQuery({ ...base, kind: 'aggregates', bucket: '0' }, NOW)).toMatchObject({ ok: false, field: 'bucket' });
    expect(previewQuery({ ...base, kind: 'aggregates', functions: [] }, NOW)).toMatchObject({ ok: false, field: 'functions' });
  });
});
