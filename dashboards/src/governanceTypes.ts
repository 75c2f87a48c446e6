// The JSON shapes of data governance (issue #8), with the serde names of crates/policy
// (agreements and their vocabularies), crates/api/src/routes/{agreements,shared,audit}.rs and
// crates/api/src/governed/ (shared rows and cells) and crates/audit (entries, reports).

import type { Iso } from './types';

// ---- vocabularies (crates/policy/src/{purpose,terms,state}.rs) ----

export type Purpose =
  | 'public_service'
  | 'mobility_planning'
  | 'environmental_monitoring'
  | 'research'
  | 'statistics'
  | 'open_data'
  | 'billing';
export const PURPOSES: readonly Purpose[] = [
  'public_service',
  'mobility_planning',
  'environmental_monitoring',
  'research',
  'statistics',
  'open_data',
  'billing',
];

export type Action = 'read_aggregate' | 'read_raw';
export const ACTIONS: readonly Action[] = ['read_aggregate', 'read_raw'];

export type AggFunction = 'avg' | 'min' | 'max' | 'count' | 'sum';
export const FUNCTIONS: readonly AggFunction[] = ['avg', 'min', 'max', 'count', 'sum'];

export type SpatialLevel = 'sensor' | 'zone';
export const SPATIAL_LEVELS: readonly SpatialLevel[] = ['sensor', 'zone'];

export type Field = 'time' | 'value' | 'unit' | 'metric' | 'sensor' | 'zone' | 'gateway' | 'seq' | 'received_at';
export const FIELDS: readonly Field[] = ['time', 'value', 'unit', 'metric', 'sensor', 'zone', 'gateway', 'seq', 'received_at'];

export type AgreementState = 'draft' | 'active' | 'suspended' | 'revoked';
export const AGREEMENT_STATES: readonly AgreementState[] = ['draft', 'active', 'suspended', 'revoked'];

/** The lifecycle (crates/policy/src/state.rs): draft → active ⇄ suspended → revoked. */
export function nextStates(state: AgreementState): AgreementState[] {
  switch (state) {
    case 'draft':
      return ['active', 'revoked'];
    case 'active':
      return ['suspended', 'revoked'];
    case 'suspended':
      return ['active', 'revoked'];
    case 'revoked':
      return [];
  }
}

export type GranteeKind = 'tenant' | 'partner' | 'public';
export const GRANTEE_KINDS: readonly GranteeKind[] = ['tenant', 'partner', 'public'];

/** Why a governed read was denied (`reason` of the 403 problem; crates/policy/src/decision.rs). */
export const DENY_REASONS = [
  'no_agreement',
  'draft',
  'suspended',
  'revoked',
  'invalid_agreement',
  'outside_validity',
  'wrong_purpose',
  'action_not_allowed',
  'scope',
  'spatial_level_not_allowed',
  'bucket_not_allowed',
  'function_not_allowed',
  'field_not_allowed',
  'embargo',
  'prohibited',
  'unknown_term',
  'invalid_request',
] as const;
export type DenyReason = (typeof DENY_REASONS)[number];

/** Reasons only live views give (docs/live.md: refused or ended grantee views). */
export const LIVE_REASONS = ['aggregate_only', 'agreement_changed'] as const;

// ---- agreements ----

export interface Target {
  metrics: string[];
  zones?: string[];
  tags?: string[];
  sensors?: string[];
  /** Pooling agreements: zones of the beneficiary its sensors must stand in. */
  territories?: string[];
}

/** A prohibition: kept as the server wrote it (the form carries it through unchanged). */
export interface Prohibition {
  action: Action;
  target: Target;
  [other: string]: unknown;
}

/** The native agreement (crates/policy/src/agreement.rs). */
export interface Agreement {
  id: string;
  version: number;
  grantor: string;
  /** `tenant:<id>`, `partner:<id>` or `public`. */
  grantee: string;
  state: AgreementState;
  not_before: Iso;
  not_after: Iso;
  purposes: Purpose[];
  action: Action;
  target: Target;
  min_bucket_s?: number;
  functions: AggFunction[];
  k: number;
  spatial_level: SpatialLevel;
  pseudonymise: boolean;
  fields?: Field[];
  embargo_s: number;
  prohibitions?: Prohibition[];
  /** A pooling agreement: the grantee tenant uses the operator's sensors as its own. */
  pooling?: boolean;
}

/** What POST /api/v1/agreements and PUT /api/v1/agreements/{id} take (grantor and state default). */
export type AgreementBody = Omit<Agreement, 'grantor' | 'state' | 'version'> & { version?: number };

export interface AgreementRecord {
  agreement: Agreement;
  created_at: Iso;
  updated_at: Iso;
}

export interface Partner {
  id: string;
  name: string;
  created_at: Iso;
}

export interface Rotated {
  agreement: string;
  epoch: number;
}

// ---- governed reads (previews and /api/v1/shared/…) ----

export interface AgreementRef {
  id: string;
  version: number;
}

/** `…/readings`: only the allowed columns are in each row. */
export interface SharedRows {
  grantor: string;
  agreement: AgreementRef;
  purpose: Purpose;
  from: Iso;
  to: Iso;
  fields: Field[];
  items: Record<string, unknown>[];
  next_cursor: string | null;
}

export interface CellValues {
  avg?: number;
  min?: number;
  max?: number;
  count?: number;
  sum?: number;
}

export interface SharedCell {
  metric: string;
  bucket: Iso;
  unit: string;
  suppressed: boolean;
  fine_buckets?: number;
  values?: CellValues;
}

export interface SharedTotal {
  metric: string;
  bucket: Iso;
  fine_buckets: number;
  values: CellValues;
}

/** `…/aggregates`. */
export interface SharedCells {
  grantor: string;
  agreement: AgreementRef;
  purpose: Purpose;
  from: Iso;
  to: Iso;
  bucket_s: number;
  level: SpatialLevel;
  functions: AggFunction[];
  k: number;
  cells: SharedCell[];
  totals: SharedTotal[];
  suppressed: { cells: number; totals: number };
}

export type SharedUnit =
  | { level: 'sensor'; sensor: string; kind: string; unit?: string; zone?: string; lat?: number; lon?: number }
  | { level: 'zone'; zone: string; name: string; geometry: unknown };

/** `…/sensors`. */
export interface SharedRegistry {
  grantor: string;
  agreement: AgreementRef;
  items: SharedUnit[];
}

// ---- audit ----

export type AuditKind =
  | 'access_permit'
  | 'access_deny'
  | 'agreement_change'
  | 'rule_change'
  | 'token_change'
  | 'gateway_change'
  | 'certificate_change'
  | 'registry_change'
  | 'retention_change'
  | 'purge'
  | 'export'
  | 'import';
export const AUDIT_KINDS: readonly AuditKind[] = [
  'access_permit',
  'access_deny',
  'agreement_change',
  'rule_change',
  'token_change',
  'gateway_change',
  'certificate_change',
  'registry_change',
  'retention_change',
  'purge',
  'export',
  'import',
];

export interface AuditEntry {
  tenant: string;
  seq: number;
  time: Iso;
  /** `token:t-1`, `user:alice`, `system:retention`, `gateway:gw-1` or `public`. */
  actor: string;
  kind: AuditKind;
  detail: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

export interface AuditPage {
  items: AuditEntry[];
  next_after_seq: number | null;
}

export interface Checkpoint {
  tenant: string;
  seq: number;
  head: string;
  time: Iso;
  key_id: string;
  signature: string;
}

export interface CheckpointPage {
  items: Checkpoint[];
  next_after_seq: number | null;
}

export interface PublicKey {
  key_id: string;
  pem: string;
  hex: string;
}

export interface PublicKeys {
  current: PublicKey;
  retired: PublicKey[];
}

/** A problem of a verification (crates/audit/src/report.rs), tagged by `problem`. */
export interface VerifyProblem {
  problem: string;
  seq?: number;
  first?: number;
  last?: number;
  after?: number;
  since?: number;
  checkpoint?: number;
  key_id?: string;
  tenant?: string;
}

/** GET /api/v1/audit/verify (crates/api/src/audit/check.rs `LogCheck`). */
export interface VerifyReport {
  tenant: string;
  entries: number;
  head: { seq: number; hash: string };
  checkpoints_matched: number;
  last_checkpoint: number | null;
  not_checkpointed: { first: number; last: number } | null;
  problems: VerifyProblem[];
  problems_omitted: number;
  first_bad_seq: number | null;
  unreadable: { seq: number; reason: string }[];
}
