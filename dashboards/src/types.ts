// The JSON shapes of the REST API and the live protocol, with the serde names of
// crates/store/src/model.rs, crates/store/src/alarms.rs and docs/live.md.
// Times are RFC 3339 strings with microseconds ("2026-12-04T10:00:00.000000Z").

import type { Purpose } from './governanceTypes';

export type Iso = string;

export type Role = 'viewer' | 'operator' | 'admin';

export type Me =
  | {
      scope: 'tenant';
      tenant: { id: string; name: string };
      role: Role;
      token_id: string;
      name: string;
    }
  | {
      /** A partner organisation's token: it reads only what agreements share with it. */
      scope: 'partner';
      partner: { id: string; name: string };
      token_id: string;
      name: string;
    }
  | { scope: 'platform'; token_id: string; name: string };

export interface DashboardConfig {
  tile_url: string | null;
  tile_attribution: string | null;
  version: string;
}

export interface Items<T> {
  items: T[];
}

export interface OffsetPage<T> {
  items: T[];
  next_offset: number | null;
}

export type Severity = 'info' | 'warning' | 'major' | 'critical';
export const SEVERITIES: readonly Severity[] = ['info', 'warning', 'major', 'critical'];

export type AlarmState = 'open' | 'acknowledged' | 'cleared';

export type SecurityEventKind =
  | 'quarantined'
  | 'tls_rejected'
  | 'revoked_certificate'
  | 'client_id_mismatch'
  | 'acl_violation'
  | 'connection_limit'
  | 'protocol_violation'
  | 'audit_tampered'
  | 'enrollment_refused';
export const SECURITY_EVENT_KINDS: readonly SecurityEventKind[] = [
  'quarantined',
  'tls_rejected',
  'revoked_certificate',
  'client_id_mismatch',
  'acl_violation',
  'connection_limit',
  'protocol_violation',
  'audit_tampered',
  'enrollment_refused',
];

export type GapReason = 'spool-full' | 'crash-restart';
export const GAP_REASONS: readonly GapReason[] = ['spool-full', 'crash-restart'];

export type Comparison = 'gt' | 'ge' | 'lt' | 'le';
export const COMPARISONS: readonly Comparison[] = ['gt', 'ge', 'lt', 'le'];

export type AlarmSubject =
  | { kind: 'series'; sensor: string; metric: string }
  /**
   * A series of a sensor another tenant (`operator`) pools to this one; `sensor` is its id as
   * this tenant sees it (maybe a pseudonym), and the alarm's `zone` is ours it stood in.
   */
  | { kind: 'pooled'; operator: string; sensor: string; metric: string }
  | { kind: 'gateway'; gateway: string }
  | { kind: 'gap'; gateway: string; first_seq: number; last_seq: number }
  | { kind: 'security'; gateway?: string; event: SecurityEventKind };

export interface Actor {
  token_id: string;
  name: string;
}

export interface AlarmAction {
  at: Iso;
  by: Actor | null;
  comment: string | null;
}

export interface Alarm {
  id: number;
  tenant: string;
  rule: string;
  rule_name: string;
  severity: Severity;
  subject: AlarmSubject;
  zone: string | null;
  state: AlarmState;
  message: string;
  value: number | null;
  opened_at: Iso;
  last_at: Iso;
  occurrences: number;
  acknowledged: AlarmAction | null;
  cleared: AlarmAction | null;
  updated_at: Iso;
}

export type RuleCondition =
  | {
      kind: 'threshold';
      metric: string;
      zone?: string;
      sensors?: string[];
      op: Comparison;
      value: number;
      for_s?: number;
      /** Also watch the sensors pooled to this tenant by agreements allowing this purpose. */
      pooled?: Purpose;
    }
  | { kind: 'gateway_offline'; after_s: number; gateways?: string[] }
  | { kind: 'spool_gap'; reasons?: GapReason[] }
  | { kind: 'certificate_expiry'; before_s: number; gateways?: string[] }
  | { kind: 'security'; events?: SecurityEventKind[] };

export type RuleKind = RuleCondition['kind'];
export const RULE_KINDS: readonly RuleKind[] = [
  'threshold',
  'gateway_offline',
  'spool_gap',
  'certificate_expiry',
  'security',
];

export interface AlarmRule {
  tenant: string;
  id: string;
  name: string;
  severity: Severity;
  enabled: boolean;
  condition: RuleCondition;
  created_at: Iso;
  updated_at: Iso;
}

/** The body of POST /api/v1/alarm-rules and PUT /api/v1/alarm-rules/{id}. */
export interface RuleBody {
  id?: string;
  name: string;
  severity: Severity;
  enabled: boolean;
  condition: RuleCondition;
}

export interface Gap {
  first_seq: number;
  last_seq: number;
  batches: number;
  readings: number;
  reason: GapReason;
}

export interface GatewayState {
  last_seen: Iso | null;
  spool_batches: number;
  spool_bytes: number;
  oldest_unacked_age_s: number | null;
  batches_dropped: number;
  readings_dropped: number;
  gaps: Gap[];
  agent_version: string | null;
  rss_bytes: number;
  last_committed_seq: number | null;
}

export interface GatewayKey {
  key_id: string;
  public_key_hex: string;
  created_at: Iso;
  retired_at: Iso | null;
}

export interface Gateway {
  tenant: string;
  id: string;
  key_id: string;
  public_key_hex: string;
  cert_fingerprint: string | null;
  cert_not_after?: Iso | null;
  rejected_batches?: number;
  revoked: boolean;
  revoked_at?: Iso | null;
  /** Every signing key it has had, newest first. */
  keys?: GatewayKey[];
  /** Expiry of an unused enrollment token for it (a re-enrollment is prepared). */
  pending_enrollment?: Iso | null;
  created_at: Iso;
  state: GatewayState;
}

/** The answer to creating a gateway: its one-time enrollment token, shown once. */
export interface EnrollmentTicket {
  gateway: string;
  token: string;
  expires_at: Iso;
  enroll_url?: string | null;
}

/** A gateway created but not yet enrolled. */
export interface PendingEnrollment {
  gateway: string;
  created_at: Iso;
  expires_at: Iso;
  created_by: string;
}

export interface Sensor {
  tenant: string;
  id: string;
  kind: string;
  unit: string | null;
  lat: number | null;
  lon: number | null;
  zone: string | null;
}

export type Position = number[];
export type Geometry =
  | { type: 'Polygon'; coordinates: Position[][] }
  | { type: 'MultiPolygon'; coordinates: Position[][][] };

export interface Zone {
  tenant: string;
  id: string;
  name: string;
  geometry: Geometry;
}

export type Value = number | boolean | string;

export interface StoredReading {
  gateway: string;
  seq: number;
  sensor: string;
  metric: string;
  unit: string;
  time: Iso;
  value: Value;
}

export interface ReadingsPage {
  from: Iso;
  to: Iso;
  items: StoredReading[];
  next_cursor: string | null;
}

export interface Bucket {
  start: Iso;
  sensor: string;
  metric: string;
  avg: number;
  min: number;
  max: number;
  count: number;
}

export interface BucketsResponse {
  from: Iso;
  to: Iso;
  bucket: string;
  items: Bucket[];
}

export type QuarantineReason =
  | 'bad_signature'
  | 'unknown_key'
  | 'revoked'
  | 'retired_key'
  | 'replay'
  | 'stale'
  | 'future'
  | 'malformed'
  | 'acl';
export const QUARANTINE_REASONS: readonly QuarantineReason[] = [
  'bad_signature',
  'unknown_key',
  'revoked',
  'retired_key',
  'replay',
  'stale',
  'future',
  'malformed',
  'acl',
];

export interface QuarantineRecord {
  tenant: string | null;
  gateway: string | null;
  topic: string;
  seq: number | null;
  reason: QuarantineReason;
  detail: string;
  received_at: Iso;
  settles_seq?: boolean;
}

export interface SecurityEvent {
  time: Iso;
  tenant: string | null;
  gateway: string | null;
  address: string | null;
  kind: SecurityEventKind;
  detail: string;
}

// ---- live protocol (docs/live.md) ----

export type StreamKind = 'readings' | 'alarms' | 'security' | 'gateways';
export type Granularity = 'raw' | '1m' | '5m' | '15m' | '1h';

export interface ReadingsFilter {
  metrics?: string[];
  zones?: string[];
  sensors?: string[];
  bbox?: [number, number, number, number];
}

/** What a subscription asks for (the `subscribe` message without `type` and `id`). */
export interface SubscriptionSpec {
  stream: StreamKind;
  filter?: ReadingsFilter;
  granularity?: Granularity;
  snapshot?: boolean;
  /** Readings of another tenant, under one of its sharing agreements (a grantee's view). */
  grantor?: string;
  /** Why the grantee reads (required with `grantor`). */
  purpose?: string;
}

export interface LiveReading {
  sensor: string;
  metric: string;
  unit: string;
  time: Iso;
  value: Value;
  gateway?: string;
}

export interface LiveBucket {
  sensor: string;
  metric: string;
  unit: string;
  start: Iso;
  avg: number;
  min: number;
  max: number;
  count: number;
}

export interface HelloMessage {
  type: 'hello';
  protocol: number;
  scope: 'tenant' | 'platform';
  tenant?: string;
  role?: Role;
  server_time?: Iso;
  limits?: { max_subscriptions?: number; max_fps?: number; granularities?: string[] };
}

export type SubscriptionMessage =
  | { type: 'readings'; sub: string; snapshot?: boolean; items: LiveReading[] }
  | {
      type: 'buckets';
      sub: string;
      width_s: number;
      snapshot?: boolean;
      revised?: boolean;
      items: LiveBucket[];
    }
  | { type: 'alarm'; sub: string; alarm: Alarm }
  | { type: 'security_event'; sub: string; event: SecurityEvent }
  | { type: 'gateway'; sub: string; gateway: Gateway };

export type ServerMessage =
  | HelloMessage
  | SubscriptionMessage
  /** `embargo_s`: a grantee view under an embargo, whose values arrive once that old. */
  | { type: 'subscribed'; id: string; stream: StreamKind; series?: number; embargo_s?: number }
  | { type: 'unsubscribed'; id: string }
  | { type: 'pong'; nonce?: unknown }
  | { type: 'error'; id?: string; code: string; detail: string }
  /** A grantee's subscription stopped by the server: its agreement was revoked, suspended or expired. */
  | { type: 'ended'; id: string; reason: string; detail?: string };

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  /** The deny reason code of a governed read refused by the policy engine (403). */
  reason?: string;
}
