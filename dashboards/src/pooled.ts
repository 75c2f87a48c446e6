// Pooled sensors (docs/pooling.md), the beneficiary's side: the operators' sensors that
// pooling agreements let this tenant use as its own. They are read under
// `/api/v1/shared/{operator}/…` like any shared data; here they get a key of their own
// (`operator/sensor`: a slash never appears in an id, so they cannot collide with the
// tenant's own sensors) and the registry shape the map and the popups draw.

import { seg, type Api } from './api';
import type { Agreement, AgreementRecord, SharedRegistry } from './governanceTypes';
import type { Items, LiveReading, Sensor } from './types';

export interface PooledSensor {
  /** `operator/sensor`. */
  key: string;
  operator: string;
  agreement: string;
  sensor: string;
  kind: string;
  unit: string | null;
  lat: number | null;
  lon: number | null;
}

/** The key of an operator's sensor among the tenant's own. */
export const pooledKey = (operator: string, sensor: string): string => `${operator}/${sensor}`;

/** The pooling agreements granted to this tenant that may serve now (active, raw). */
export function poolingGrants(records: readonly AgreementRecord[], tenant: string, nowMs: number): Agreement[] {
  return records
    .map((r) => r.agreement)
    .filter(
      (a) =>
        a.pooling === true &&
        a.grantee === `tenant:${tenant}` &&
        a.state === 'active' &&
        a.action === 'read_raw' &&
        Date.parse(a.not_before) <= nowMs &&
        nowMs < Date.parse(a.not_after),
    );
}

/** The purpose a pooled read states: the agreement's first. */
export const poolingPurpose = (a: Agreement): string => a.purposes[0] ?? 'public_service';

/** The metric patterns a live view of a grant asks for: none (all it allows) for `*`. */
export const poolingMetrics = (a: Agreement): string[] => (a.target.metrics.includes('*') ? [] : [...a.target.metrics]);

/** The sensors of one grant, as its operator's registry shows them to this tenant. */
export function pooledSensors(grant: Agreement, registry: SharedRegistry): PooledSensor[] {
  const out: PooledSensor[] = [];
  for (const unit of registry.items) {
    if (unit.level !== 'sensor') continue;
    out.push({
      key: pooledKey(grant.grantor, unit.sensor),
      operator: grant.grantor,
      agreement: grant.id,
      sensor: unit.sensor,
      kind: unit.kind,
      unit: unit.unit ?? null,
      lat: unit.lat ?? null,
      lon: unit.lon ?? null,
    });
  }
  return out;
}

/** Every pooled sensor of this tenant's grants (a grant that cannot be read is skipped). */
export async function loadPooled(api: Api, tenant: string, nowMs: number): Promise<{ grants: Agreement[]; sensors: PooledSensor[] }> {
  const records = await api.get<Items<AgreementRecord>>('/api/v1/shared');
  const grants = poolingGrants(records.items, tenant, nowMs);
  const lists = await Promise.all(
    grants.map((grant) =>
      api
        .get<SharedRegistry>(`/api/v1/shared/${seg(grant.grantor)}/sensors`, {
          purpose: poolingPurpose(grant),
          agreement: grant.id,
        })
        .then((registry) => pooledSensors(grant, registry))
        .catch(() => []),
    ),
  );
  return { grants, sensors: lists.flat() };
}

/** A pooled sensor in the registry shape (owned by its operator, in none of our zones). */
export function asRegistrySensor(p: PooledSensor): Sensor {
  return { tenant: p.operator, id: p.key, kind: p.kind, unit: p.unit, lat: p.lat, lon: p.lon, zone: null };
}

/** A reading of a grant's live view, keyed like its pooled sensor. */
export function asPooledReading(operator: string, r: LiveReading): LiveReading {
  return { ...r, sensor: pooledKey(operator, r.sensor) };
}
