// What every page gets: the REST client, the shared live connection, who is signed in, the
// registry (sensors and zones, fetched once and shared), the tenant's alarms, a frame batcher
// for DOM updates and a way to announce things to screen readers.

import type { AlarmStore } from './alarmStore';
import type { Api } from './api';
import type { FrameBatcher } from './frame';
import type { LiveClient } from './live';
import type { Clock } from './time';
import type { DashboardConfig, Items, Me, Role, Sensor, Zone } from './types';

export interface Registry {
  sensors: Sensor[];
  zones: Zone[];
  sensorById: Map<string, Sensor>;
  zoneById: Map<string, Zone>;
}

export interface Ctx {
  api: Api;
  live: LiveClient;
  me: Me;
  config: DashboardConfig;
  clock: Clock;
  frames: FrameBatcher;
  /** Tenant tokens only. */
  alarms: AlarmStore | null;
  registry(): Promise<Registry>;
  /** Polite screen-reader announcement. */
  announce(text: string): void;
  connected(): boolean;
}

export type Page = (root: HTMLElement, ctx: Ctx) => () => void;

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function hasRole(me: Me, role: Role): boolean {
  return me.scope === 'tenant' && RANK[me.role] >= RANK[role];
}

/** Sensors are registered as they first report: the registry is fetched again after a while. */
export const REGISTRY_TTL_MS = 5 * 60_000;

export function registryLoader(api: Api, now: () => number = Date.now): () => Promise<Registry> {
  let cached: Promise<Registry> | null = null;
  let fetchedAt = 0;
  return () => {
    if (!cached || now() - fetchedAt > REGISTRY_TTL_MS) {
      fetchedAt = now();
      cached = Promise.all([
        api.get<Items<Sensor>>('/api/v1/sensors'),
        api.get<Items<Zone>>('/api/v1/zones'),
      ]).then(([s, z]) => ({
        sensors: s.items,
        zones: z.items,
        sensorById: new Map(s.items.map((x) => [x.id, x])),
        zoneById: new Map(z.items.map((x) => [x.id, x])),
      }));
      cached.catch(() => {
        cached = null;
      });
    }
    return cached;
  };
}
