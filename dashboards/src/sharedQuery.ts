// The query of a governed read, pure: a grantor's preview or a grantee's read of
// `/api/v1/shared/{grantor}/{sensors|readings|aggregates}` (crates/api/src/routes/shared.rs):
// purpose, optional agreement, metric patterns, time range `[from, to)`, and for aggregates
// the bucket (seconds), functions and spatial level. Bad input names its field.

import type { QueryValue } from './api';
import { isMetricPattern, parseDuration } from './agreementForm';
import type { MessageKey, Params } from './i18n';
import { splitList } from './ruleForm';
import { toIso } from './time';

export type PreviewKind = 'readings' | 'aggregates';
export type SharedKind = 'sensors' | PreviewKind;
export const SHARED_KINDS: readonly SharedKind[] = ['sensors', 'readings', 'aggregates'];

/** Time ranges offered, ending now. */
export const RANGES = [
  { id: '1h', s: 3600 },
  { id: '6h', s: 6 * 3600 },
  { id: '24h', s: 86_400 },
  { id: '7d', s: 7 * 86_400 },
] as const;

export interface ReadSpec {
  kind: SharedKind;
  purpose: string;
  /** Metric patterns as typed; empty: every metric allowed. */
  metric: string;
  /** An id of `RANGES`. */
  range: string;
  /** Aggregates: a duration as typed (`1h`, `3600`). */
  bucket: string;
  level: string;
  functions: readonly string[];
  /** Only this agreement may permit. */
  agreement?: string;
}

export type ReadQuery =
  | { ok: true; query: Record<string, QueryValue> }
  | { ok: false; field: 'purpose' | 'metric' | 'range' | 'bucket' | 'functions'; key: MessageKey; params?: Params };

/** The query of `spec` at `nowMs`. Aggregate ranges start on a bucket boundary. */
export function previewQuery(spec: ReadSpec, nowMs: number): ReadQuery {
  if (!spec.purpose) return { ok: false, field: 'purpose', key: 'gov.err.purpose' };
  const query: Record<string, QueryValue> = { purpose: spec.purpose };
  if (spec.agreement) query['agreement'] = spec.agreement;
  if (spec.kind === 'sensors') return { ok: true, query };
  const metrics = splitList(spec.metric);
  const bad = metrics.find((m) => !isMetricPattern(m));
  if (bad !== undefined) return { ok: false, field: 'metric', key: 'agr.err.metric', params: { value: bad } };
  if (metrics.length) query['metric'] = metrics;
  const range = RANGES.find((r) => r.id === spec.range);
  if (!range) return { ok: false, field: 'range', key: 'gov.err.range' };
  let from = nowMs - range.s * 1000;
  if (spec.kind === 'aggregates') {
    const bucket = parseDuration(spec.bucket);
    if (bucket === null || bucket < 1) return { ok: false, field: 'bucket', key: 'agr.err.bucket' };
    if (spec.functions.length === 0) return { ok: false, field: 'functions', key: 'agr.err.functions' };
    from = Math.floor(from / (bucket * 1000)) * bucket * 1000;
    query['bucket'] = bucket;
    query['functions'] = spec.functions.join(',');
    query['level'] = spec.level;
  }
  query['from'] = toIso(from);
  query['to'] = toIso(nowMs);
  return { ok: true, query };
}
