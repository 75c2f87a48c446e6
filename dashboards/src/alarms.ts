// Alarm bookkeeping, pure: merging copies by id (the newest `updated_at` wins), the active
// list, the worst active severity per zone that colours the map, and per sensor (own or
// pooled) that rings its marker.

import { pooledKey } from './pooled';
import { compareTimes, parseMicros } from './time';
import type { Alarm, AlarmState, AlarmSubject, Severity } from './types';

export const SEVERITY_RANK: Record<Severity, number> = {
  info: 0,
  warning: 1,
  major: 2,
  critical: 3,
};

export function isActive(state: AlarmState): boolean {
  return state === 'open' || state === 'acknowledged';
}

/**
 * Keeps `incoming` if it is newer than the copy held for its id (strictly newer
 * `updated_at`; an equal time keeps the held copy). Returns whether the map changed.
 */
export function mergeAlarm(alarms: Map<number, Alarm>, incoming: Alarm): boolean {
  const held = alarms.get(incoming.id);
  if (held && compareTimes(incoming.updated_at, held.updated_at) <= 0) return false;
  alarms.set(incoming.id, incoming);
  return true;
}

/** Merges many; returns the ids that changed. */
export function mergeAlarms(alarms: Map<number, Alarm>, incoming: Iterable<Alarm>): number[] {
  const changed: number[] = [];
  for (const a of incoming) if (mergeAlarm(alarms, a)) changed.push(a.id);
  return changed;
}

/**
 * After a complete listing of the active alarms fetched from `fetchStartedAt` (RFC 3339) on:
 * an active alarm held but absent from the listing was cleared while nobody listened, unless
 * a newer copy arrived live after the listing started. Drops those; returns the ids dropped.
 */
export function reconcileActive(
  alarms: Map<number, Alarm>,
  listed: readonly Alarm[],
  fetchStartedAtMicros: number,
): number[] {
  const present = new Set(listed.map((a) => a.id));
  const dropped: number[] = [];
  for (const [id, a] of alarms) {
    if (!isActive(a.state) || present.has(id)) continue;
    const updated = parseMicros(a.updated_at);
    if (Number.isNaN(updated) || updated < fetchStartedAtMicros) {
      alarms.delete(id);
      dropped.push(id);
    }
  }
  return dropped;
}

/**
 * Forgets cleared alarms last updated before `beforeMicros` (kept until then so that a late,
 * older copy cannot bring them back as active). Returns how many.
 */
export function pruneCleared(alarms: Map<number, Alarm>, beforeMicros: number): number {
  let n = 0;
  for (const [id, a] of alarms) {
    if (a.state === 'cleared' && !(parseMicros(a.updated_at) >= beforeMicros)) {
      alarms.delete(id);
      n += 1;
    }
  }
  return n;
}

/** Active alarms, newest first (opened_at, then id). */
export function activeAlarms(alarms: Iterable<Alarm>): Alarm[] {
  const list: Alarm[] = [];
  for (const a of alarms) if (isActive(a.state)) list.push(a);
  list.sort((a, b) => compareTimes(b.opened_at, a.opened_at) || b.id - a.id);
  return list;
}

/** Worse of two severities (undefined is none). */
export function worse(a: Severity | undefined, b: Severity | undefined): Severity | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return SEVERITY_RANK[b] > SEVERITY_RANK[a] ? b : a;
}

/**
 * The worst severity of the active alarms of each zone. An alarm counts for its `zone`, or,
 * when it has none and is about a sensor's series, for the zone that sensor is registered in.
 */
export function worstSeverityByZone(
  alarms: Iterable<Alarm>,
  sensorZone: (sensor: string) => string | null | undefined = () => undefined,
): Map<string, Severity> {
  const out = new Map<string, Severity>();
  for (const a of alarms) {
    if (!isActive(a.state)) continue;
    const zone = a.zone ?? (a.subject.kind === 'series' ? sensorZone(a.subject.sensor) : undefined);
    if (!zone) continue;
    const w = worse(out.get(zone), a.severity);
    if (w) out.set(zone, w);
  }
  return out;
}

/**
 * The map's key of the sensor an alarm is about: its id for one of ours, `operator/sensor`
 * for a pooled one (so that an own sensor with the same id is never confused with it).
 */
export function alarmSensorKey(subject: AlarmSubject): string | undefined {
  switch (subject.kind) {
    case 'series':
      return subject.sensor;
    case 'pooled':
      return pooledKey(subject.operator, subject.sensor);
    case 'gateway':
    case 'gap':
    case 'security':
      return undefined;
  }
}

/** The worst severity of the active alarms about each sensor, by map key (marker rings). */
export function worstSeverityBySensor(alarms: Iterable<Alarm>): Map<string, Severity> {
  const out = new Map<string, Severity>();
  for (const a of alarms) {
    const key = alarmSensorKey(a.subject);
    if (!isActive(a.state) || key === undefined) continue;
    const w = worse(out.get(key), a.severity);
    if (w) out.set(key, w);
  }
  return out;
}

/** Map colours of a zone by the worst severity of its active alarms (none: calm). */
export interface ZoneStyle {
  color: string;
  fillColor: string;
  fillOpacity: number;
  weight: number;
}

export const ZONE_STYLES: Record<Severity | 'none', ZoneStyle> = {
  none: { color: '#3b6e8f', fillColor: '#7fb3d5', fillOpacity: 0.15, weight: 2 },
  info: { color: '#1d4ed8', fillColor: '#60a5fa', fillOpacity: 0.25, weight: 2 },
  warning: { color: '#a16207', fillColor: '#facc15', fillOpacity: 0.35, weight: 3 },
  major: { color: '#c2410c', fillColor: '#fb923c', fillOpacity: 0.4, weight: 3 },
  critical: { color: '#991b1b', fillColor: '#ef4444', fillOpacity: 0.45, weight: 4 },
};

export function zoneStyle(severity: Severity | undefined): ZoneStyle {
  return ZONE_STYLES[severity ?? 'none'];
}

/** What changed between two copies of an alarm, for the event ticker. */
export type AlarmChange = 'opened' | 'repeated' | 'acknowledged' | 'cleared' | 'updated';

export function describeChange(before: Alarm | undefined, after: Alarm): AlarmChange {
  if (after.state === 'cleared' && before?.state !== 'cleared') return 'cleared';
  if (after.state === 'acknowledged' && before?.state !== 'acknowledged') return 'acknowledged';
  if (!before) return after.state === 'open' ? 'opened' : 'updated';
  if (after.occurrences > before.occurrences) return 'repeated';
  return 'updated';
}
