// The sharing-agreement form, pure: agreement JSON ⇄ form fields, validation mirroring the
// server's (crates/policy/src/validate.rs, with messages that name the field), the server's
// refusal (`invalid agreement: k: …; fields: …`) mapped back to the fields, and the short
// texts of the agreements list.

import { formatDuration } from './format';
import type {
  Action,
  AggFunction,
  Agreement,
  AgreementBody,
  Field,
  GranteeKind,
  Prohibition,
  Purpose,
  SpatialLevel,
} from './governanceTypes';
import { tIn, type Lang, type MessageKey, type Params } from './i18n';
import { splitList } from './ruleForm';
import { parseMillis } from './time';

const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/;
const METRIC_SEGMENT = /^[a-z][a-z0-9_]*$/;

export interface AgreementForm {
  id: string;
  granteeKind: GranteeKind;
  granteeId: string;
  /** Metric patterns, as typed (`air.pm25, noise.*`). */
  metrics: string;
  zones: string;
  tags: string;
  sensors: string;
  /** Pooling: the grantee (a tenant) uses the sensors as its own, per period. */
  pooling: boolean;
  /** Pooling: zones of the beneficiary, as typed. */
  territories: string;
  action: Action;
  /** A duration as typed: seconds (`3600`) or with a unit (`15m`, `1h`, `1d`). */
  minBucket: string;
  functions: AggFunction[];
  k: string;
  spatialLevel: SpatialLevel;
  pseudonymise: boolean;
  embargo: string;
  purposes: Purpose[];
  /** `YYYY-MM-DDTHH:MM` in UTC (a `datetime-local` input read as UTC). */
  notBefore: string;
  notAfter: string;
  fields: Field[];
  /** Carried through unchanged (the form does not edit them). */
  prohibitions: Prohibition[];
}

/** A `datetime-local` value (UTC) of an instant in ms; empty when it is not a time. */
export function toUtcInput(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString().slice(0, 16) : '';
}

/** The instant of a `datetime-local` value read as UTC (seconds optional); null if invalid. */
export function fromUtcInput(text: string): string | null {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})?$/.exec(text.trim());
  if (!m) return null;
  const iso = `${m[1]}T${m[2]}${m[3] ?? ':00'}Z`;
  return Number.isNaN(Date.parse(iso)) ? null : iso;
}

/** A new agreement: hourly zone averages, k = 3, valid from now for a year. */
export function emptyAgreementForm(nowMs: number): AgreementForm {
  const hour = 3_600_000;
  const start = Math.floor(nowMs / hour) * hour;
  return {
    id: '',
    granteeKind: 'tenant',
    granteeId: '',
    metrics: '',
    zones: '',
    tags: '',
    sensors: '',
    pooling: false,
    territories: '',
    action: 'read_aggregate',
    minBucket: '1h',
    functions: ['avg'],
    k: '3',
    spatialLevel: 'zone',
    pseudonymise: false,
    embargo: '0',
    purposes: [],
    notBefore: toUtcInput(start),
    notAfter: toUtcInput(start + 365 * 24 * hour),
    fields: [],
    prohibitions: [],
  };
}

/** Seconds as the shortest exact text the form reads back (`3600` → `1h`). */
export function secondsToText(s: number): string {
  if (s > 0 && s % 86_400 === 0) return `${s / 86_400}d`;
  if (s > 0 && s % 3600 === 0) return `${s / 3600}h`;
  if (s > 0 && s % 60 === 0) return `${s / 60}m`;
  return String(s);
}

/** A duration typed as `3600`, `90s`, `15m`, `1h` or `1d` (the server's bucket grammar). */
export function parseDuration(text: string): number | null {
  const m = /^(\d{1,10})\s*([smhd]?)$/.exec(text.trim());
  if (!m) return null;
  const factor = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  const n = Number(m[1]) * factor;
  return Number.isSafeInteger(n) ? n : null;
}

/** Whether `text` is a metric pattern the server accepts (`*`, `air.*`, `air.pm25`). */
export function isMetricPattern(text: string): boolean {
  if (text === '*') return true;
  const name = text.endsWith('.*') ? text.slice(0, -2) : text;
  if (name.length === 0 || name.length > 64) return false;
  return name.split('.').every((seg) => METRIC_SEGMENT.test(seg));
}

export function splitGrantee(grantee: string): { kind: GranteeKind; id: string } {
  if (grantee === 'public') return { kind: 'public', id: '' };
  const [kind, id] = grantee.split(':', 2);
  return { kind: kind === 'partner' ? 'partner' : 'tenant', id: id ?? '' };
}

export function agreementToForm(a: Agreement): AgreementForm {
  const grantee = splitGrantee(a.grantee);
  return {
    id: a.id,
    granteeKind: grantee.kind,
    granteeId: grantee.id,
    metrics: a.target.metrics.join(', '),
    zones: (a.target.zones ?? []).join(', '),
    tags: (a.target.tags ?? []).join(', '),
    sensors: (a.target.sensors ?? []).join(', '),
    pooling: a.pooling ?? false,
    territories: (a.target.territories ?? []).join(', '),
    action: a.action,
    minBucket: a.min_bucket_s === undefined ? '' : secondsToText(a.min_bucket_s),
    functions: [...a.functions],
    k: String(a.k),
    spatialLevel: a.spatial_level,
    pseudonymise: a.pseudonymise,
    embargo: secondsToText(a.embargo_s),
    purposes: [...a.purposes],
    notBefore: toUtcInput(parseMillis(a.not_before)),
    notAfter: toUtcInput(parseMillis(a.not_after)),
    fields: [...(a.fields ?? [])],
    prohibitions: a.prohibitions ? [...a.prohibitions] : [],
  };
}

export interface AgreementFieldError {
  field: keyof AgreementForm | null;
  key: MessageKey;
  params?: Params;
}

export type AgreementFormResult =
  | { ok: true; body: AgreementBody }
  | { ok: false; errors: AgreementFieldError[] };

/** Validates the form as the server would, and builds the body. */
export function formToAgreement(form: AgreementForm): AgreementFormResult {
  const errors: AgreementFieldError[] = [];
  const err = (field: keyof AgreementForm, key: MessageKey, params?: Params): void => {
    errors.push(params ? { field, key, params } : { field, key });
  };
  const id = form.id.trim();
  if (!SLUG.test(id)) err('id', 'agr.err.id');

  let grantee = 'public';
  if (form.granteeKind !== 'public') {
    const gid = form.granteeId.trim();
    if (!SLUG.test(gid)) err('granteeId', 'agr.err.grantee');
    grantee = `${form.granteeKind}:${gid}`;
  }

  const metrics = splitList(form.metrics);
  if (metrics.length === 0) err('metrics', 'agr.err.metricsEmpty');
  const badMetric = metrics.find((m) => !isMetricPattern(m));
  if (badMetric !== undefined) err('metrics', 'agr.err.metric', { value: badMetric });
  const slugs = (field: 'zones' | 'tags' | 'sensors' | 'territories'): string[] => {
    const list = splitList(form[field]);
    const bad = list.find((x) => !SLUG.test(x));
    if (bad !== undefined) err(field, 'agr.err.slug', { value: bad });
    return list;
  };
  const zones = slugs('zones');
  const tags = slugs('tags');
  const sensors = slugs('sensors');
  const territories = slugs('territories');
  if (form.pooling && form.granteeKind !== 'tenant') err('granteeKind', 'agr.err.poolingGrantee');
  if (territories.length && !form.pooling) err('territories', 'agr.err.territoriesPooling');
  else if (territories.length && form.action !== 'read_raw' && form.spatialLevel !== 'sensor') err('territories', 'agr.err.territoriesRaw');

  if (form.purposes.length === 0) err('purposes', 'agr.err.purposes');
  if (form.functions.length === 0) err('functions', 'agr.err.functions');

  const k = /^\d{1,9}$/.test(form.k.trim()) ? Number(form.k.trim()) : null;
  if (k === null || k < 1) err('k', 'agr.err.k');

  let minBucket: number | null = null;
  if (form.minBucket.trim() !== '') {
    minBucket = parseDuration(form.minBucket);
    if (minBucket === null || minBucket < 1 || minBucket > 0xffff_ffff) {
      err('minBucket', 'agr.err.bucket');
      minBucket = null;
    }
  } else if (form.action === 'read_aggregate') {
    err('minBucket', 'agr.err.bucketRequired');
  }

  const embargo = form.embargo.trim() === '' ? 0 : parseDuration(form.embargo);
  if (embargo === null) err('embargo', 'agr.err.embargo');

  const notBefore = fromUtcInput(form.notBefore);
  const notAfter = fromUtcInput(form.notAfter);
  if (notBefore === null) err('notBefore', 'agr.err.time');
  if (notAfter === null) err('notAfter', 'agr.err.time');
  else if (notBefore !== null && Date.parse(notAfter) <= Date.parse(notBefore)) err('notAfter', 'agr.err.window');

  const fields = form.action === 'read_raw' ? [...form.fields] : [];
  if (form.action === 'read_raw') {
    if (form.spatialLevel !== 'sensor') err('spatialLevel', 'agr.err.rawLevel');
    if (k !== null && k > 1) err('k', 'agr.err.rawK');
    if (fields.length === 0) err('fields', 'agr.err.fields');
  } else if (form.spatialLevel === 'sensor' && k !== null && k > 1) {
    err('k', 'agr.err.sensorK');
  }
  if (form.pseudonymise && fields.includes('gateway')) err('fields', 'agr.err.gateway');

  if (errors.length) return { ok: false, errors };
  const target: AgreementBody['target'] = { metrics };
  if (zones.length) target.zones = zones;
  if (tags.length) target.tags = tags;
  if (sensors.length) target.sensors = sensors;
  if (territories.length) target.territories = territories;
  const body: AgreementBody = {
    id,
    grantee,
    not_before: notBefore as string,
    not_after: notAfter as string,
    purposes: [...form.purposes],
    action: form.action,
    target,
    functions: [...form.functions],
    k: k as number,
    spatial_level: form.spatialLevel,
    pseudonymise: form.pseudonymise,
    embargo_s: embargo as number,
  };
  if (minBucket !== null) body.min_bucket_s = minBucket;
  if (fields.length) body.fields = fields;
  if (form.prohibitions.length) body.prohibitions = [...form.prohibitions];
  if (form.pooling) body.pooling = true;
  return { ok: true, body };
}

/** The form field a server path names (`target.metrics` → `metrics`), or null. */
const PATH_FIELDS: Record<string, keyof AgreementForm> = {
  id: 'id',
  grantee: 'granteeId',
  not_before: 'notBefore',
  not_after: 'notAfter',
  purposes: 'purposes',
  action: 'action',
  'target.metrics': 'metrics',
  'target.zones': 'zones',
  'target.tags': 'tags',
  'target.sensors': 'sensors',
  'target.territories': 'territories',
  pooling: 'pooling',
  min_bucket_s: 'minBucket',
  functions: 'functions',
  k: 'k',
  spatial_level: 'spatialLevel',
  pseudonymise: 'pseudonymise',
  fields: 'fields',
  embargo_s: 'embargo',
  prohibitions: 'prohibitions',
};

export interface ServerFieldError {
  field: keyof AgreementForm | null;
  message: string;
}

/**
 * The server's refusal split by term: `invalid agreement: k: …; fields: …` or
 * `grantee: tenant:x does not exist` → one message per field (messages may themselves hold
 * `; `: a piece that names no term belongs to the one before). What names no known term is
 * kept whole with `field: null`.
 */
export function serverFieldErrors(detail: string): ServerFieldError[] {
  const body = detail.replace(/^invalid agreement:\s*/, '');
  const out: ServerFieldError[] = [];
  for (const piece of body.split('; ')) {
    const m = /^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+)*): ([\s\S]*)$/.exec(piece);
    const path = m?.[1]?.replace(/\[\d+\].*$/, '');
    const field = path !== undefined ? PATH_FIELDS[path] ?? PATH_FIELDS[path.split('.')[0] ?? ''] : undefined;
    const last = out[out.length - 1];
    if (field !== undefined) out.push({ field, message: m?.[2] ?? piece });
    else if (last && !m) last.message = `${last.message}; ${piece}`;
    else out.push({ field: null, message: piece });
  }
  return out.length ? out : [{ field: null, message: detail }];
}

/** What an agreement covers in one line: `air.*, noise.laeq · zones: north`. */
export function summarizeTarget(a: Agreement, lang: Lang): string {
  const parts = [a.target.metrics.join(', ')];
  if (a.target.zones?.length) parts.push(tIn(lang, 'agr.sumZones', { list: a.target.zones.join(', ') }));
  if (a.target.tags?.length) parts.push(tIn(lang, 'agr.sumTags', { list: a.target.tags.join(', ') }));
  if (a.target.sensors?.length) parts.push(tIn(lang, 'agr.sumSensors', { list: a.target.sensors.join(', ') }));
  if (a.target.territories?.length) {
    parts.push(tIn(lang, 'agr.sumTerritories', { list: a.target.territories.join(', ') }));
  }
  return parts.join(' · ');
}

/** The terms of an aggregate or raw agreement in a few words: `1 h · avg, max · k ≥ 3 · zone`. */
export function summarizeTerms(a: Agreement, lang: Lang): string {
  const parts: string[] = [];
  if (a.min_bucket_s !== undefined) parts.push(formatDuration(a.min_bucket_s, lang));
  if (a.action === 'read_aggregate') parts.push(a.functions.map((f) => tIn(lang, `fn.${f}`)).join(', '), `k ≥ ${a.k}`);
  else parts.push((a.fields ?? []).map((f) => tIn(lang, `field.${f}`)).join(', '));
  parts.push(tIn(lang, `level.${a.spatial_level}`));
  return parts.join(' · ');
}

/** Whether `nowMs` is inside the validity window `[not_before, not_after)`. */
export function validityAt(a: Agreement, nowMs: number): 'pending' | 'current' | 'expired' {
  if (nowMs < parseMillis(a.not_before)) return 'pending';
  if (nowMs >= parseMillis(a.not_after)) return 'expired';
  return 'current';
}
