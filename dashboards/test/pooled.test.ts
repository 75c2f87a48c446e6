import { describe, expect, it } from 'vitest';

import type { Agreement, AgreementRecord, SharedRegistry } from '../src/governanceTypes';
import {
  asPooledReading,
  asRegistrySensor,
  pooledKey,
  pooledSensors,
  poolingGrants,
  poolingMetrics,
  poolingPurpose,
} from '../src/pooled';

const NOW = Date.parse('2026-12-05T12:00:00Z');

function agreement(over: Partial<Agreement>): Agreement {
  return {
    id: 'pool-villeurbanne',
    version: 1,
    grantor: 'lyon',
    grantee: 'tenant:villeurbanne',
    state: 'active',
    not_before: '2026-01-01T00:00:00Z',
    not_after: '2027-01-01T00:00:00Z',
    purposes: ['environmental_monitoring', 'research'],
    action: 'read_raw',
    target: { metrics: ['air.*'], territories: ['commune'] },
    functions: ['avg'],
    k: 1,
    spatial_level: 'sensor',
    pseudonymise: false,
    fields: ['time', 'value', 'metric', 'sensor'],
    embargo_s: 0,
    pooling: true,
    ...over,
  };
}

const record = (a: Agreement): AgreementRecord => ({ agreement: a, created_at: a.not_before, updated_at: a.not_before });

describe('pooled sensors', () => {
  it('keeps only the active pooling grants of this tenant that serve now', () => {
    const grants = poolingGrants(
      [
        agreement({}),
        agreement({ id: 'sharing', pooling: false }),
        agreement({ id: 'other-tenant', grantee: 'tenant:vaulx' }),
        agreement({ id: 'suspended', state: 'suspended' }),
        agreement({ id: 'ended', not_after: '2026-06-01T00:00:00Z' }),
        agreement({ id: 'later', not_before: '2027-01-01T00:00:00Z', not_after: '2028-01-01T00:00:00Z' }),
      ].map(record),
      'villeurbanne',
      NOW,
    );
    expect(grants.map((g) => g.id)).toEqual(['pool-villeurbanne']);
    expect(poolingPurpose(grants[0] as Agreement)).toBe('environmental_monitoring');
    expect(poolingMetrics(grants[0] as Agreement)).toEqual(['air.*']);
    expect(poolingMetrics(agreement({ target: { metrics: ['*', 'air.no2'] } }))).toEqual([]);
  });

  it('keys the operator’s sensors apart from the tenant’s own, positions kept', () => {
    const registry: SharedRegistry = {
      grantor: 'lyon',
      agreement: { id: 'pool-villeurbanne', version: 1 },
      items: [
        { level: 'sensor', sensor: 's-1', kind: 'air', unit: 'ug/m3', lat: 45.77, lon: 4.88 },
        { level: 'sensor', sensor: 's-2', kind: 'noise' },
        { level: 'zone', zone: 'centre', name: 'Centre', geometry: {} },
      ],
    };
    const sensors = pooledSensors(agreement({}), registry);
    expect(sensors.map((s) => s.key)).toEqual(['lyon/s-1', 'lyon/s-2']);
    expect(asRegistrySensor(sensors[0]!)).toEqual({
      tenant: 'lyon',
      id: 'lyon/s-1',
      kind: 'air',
      unit: 'ug/m3',
      lat: 45.77,
      lon: 4.88,
      zone: null,
    });
    expect(sensors[1]?.lat).toBeNull();
    const reading = { sensor: 's-1', metric: 'air.no2', unit: 'ug/m3', time: '2026-12-05T11:59:00Z', value: 21 };
    expect(asPooledReading('lyon', reading).sensor).toBe(pooledKey('lyon', 's-1'));
  });
});
