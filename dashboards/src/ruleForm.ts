// The alarm-rule form, pure: rule JSON ⇄ form fields, validation with messages that name the
// field, and a one-line summary of a condition.

import { formatDuration, formatNumber } from './format';
import type { Purpose } from './governanceTypes';
import { pluralKey, tIn, type Lang, type MessageKey, type Params } from './i18n';
import type {
  AlarmRule,
  Comparison,
  GapReason,
  RuleBody,
  RuleCondition,
  RuleKind,
  SecurityEventKind,
  Severity,
} from './types';

export const MAX_DURATION_S = 7 * 86_400;
export const MIN_OFFLINE_AFTER_S = 10;
/** Longest notice of a certificate-expiry rule, in days (the platform allows 365). */
export const MAX_NOTICE_DAYS = 365;
export const MAX_NAME_CHARS = 100;
const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/;
const METRIC = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/;

export interface RuleForm {
  id: string;
  name: string;
  severity: Severity;
  enabled: boolean;
  kind: RuleKind;
  metric: string;
  zone: string;
  sensors: string;
  op: Comparison;
  value: string;
  forS: string;
  /** The purpose under which a threshold rule also watches pooled sensors ('': own only). */
  pooled: Purpose | '';
  afterS: string;
  noticeDays: string;
  gateways: string;
  reasons: GapReason[];
  events: SecurityEventKind[];
}

export function emptyForm(): RuleForm {
  return {
    id: '',
    name: '',
    severity: 'warning',
    enabled: true,
    kind: 'threshold',
    metric: '',
    zone: '',
    sensors: '',
    op: 'gt',
    value: '',
    forS: '0',
    pooled: '',
    afterS: '120',
    noticeDays: '7',
    gateways: '',
    reasons: [],
    events: [],
  };
}

export function ruleToForm(rule: AlarmRule): RuleForm {
  const f = emptyForm();
  f.id = rule.id;
  f.name = rule.name;
  f.severity = rule.severity;
  f.enabled = rule.enabled;
  const c = rule.condition;
  f.kind = c.kind;
  switch (c.kind) {
    case 'threshold':
      f.metric = c.metric;
      f.zone = c.zone ?? '';
      f.sensors = (c.sensors ?? []).join(', ');
      f.op = c.op;
      f.value = String(c.value);
      f.forS = String(c.for_s ?? 0);
      f.pooled = c.pooled ?? '';
      break;
    case 'gateway_offline':
      f.afterS = String(c.after_s);
      f.gateways = (c.gateways ?? []).join(', ');
      break;
    case 'spool_gap':
      f.reasons = [...(c.reasons ?? [])];
      break;
    case 'certificate_expiry':
      f.noticeDays = String(c.before_s / 86_400);
      f.gateways = (c.gateways ?? []).join(', ');
      break;
    case 'security':
      f.events = [...(c.events ?? [])];
      break;
  }
  return f;
}

export interface FieldError {
  field: keyof RuleForm;
  key: MessageKey;
  params?: Params;
}

export type FormResult = { ok: true; body: RuleBody } | { ok: false; errors: FieldError[] };

/** Splits a list typed by a person: commas, semicolons or spaces; trimmed and deduplicated. */
export function splitList(text: string): string[] {
  const out: string[] = [];
  for (const part of text.split(/[\s,;]+/)) {
    const p = part.trim();
    if (p && !out.includes(p)) out.push(p);
  }
  return out;
}

/** A number as typed, accepting a decimal comma ("12,5"). */
export function parseNumber(text: string): number | null {
  const s = text.trim().replace(/\s/g, '').replace(',', '.');
  if (!/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(s)) return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

function parseSeconds(text: string, min: number, max: number): number | null {
  const s = text.trim();
  if (!/^\d+$/.test(s)) return null;
  const n = Number(s);
  return n >= min && n <= max ? n : null;
}

/** Validates the form and builds the request body (`id` only when creating and given). */
export function formToBody(form: RuleForm, creating: boolean): FormResult {
  const errors: FieldError[] = [];
  const name = form.name.trim();
  if (!name || [...name].length > MAX_NAME_CHARS || /[\u0000-\u001f\u007f]/.test(name)) {
    errors.push({ field: 'name', key: 'rules.err.name' });
  }
  const id = form.id.trim();
  if (creating && id && !SLUG.test(id)) errors.push({ field: 'id', key: 'rules.err.id' });

  const ids = (field: 'sensors' | 'gateways', label: string): string[] => {
    const list = splitList(form[field]);
    for (const item of list) {
      if (!SLUG.test(item)) {
        errors.push({ field, key: 'rules.err.ids', params: { field: label, id: item } });
        break;
      }
    }
    return list;
  };

  let condition: RuleCondition | null = null;
  switch (form.kind) {
    case 'threshold': {
      const metric = form.metric.trim();
      if (!METRIC.test(metric) || metric.length > 64) {
        errors.push({ field: 'metric', key: 'rules.err.metric' });
      }
      const value = parseNumber(form.value);
      if (value === null) errors.push({ field: 'value', key: 'rules.err.value' });
      const forText = form.forS.trim() === '' ? '0' : form.forS;
      const forS = parseSeconds(forText, 0, MAX_DURATION_S);
      if (forS === null) errors.push({ field: 'forS', key: 'rules.err.for' });
      const zone = form.zone.trim();
      if (zone && !SLUG.test(zone)) {
        errors.push({ field: 'zone', key: 'rules.err.ids', params: { field: 'zone', id: zone } });
      }
      const sensors = ids('sensors', 'sensors');
      const c: RuleCondition = { kind: 'threshold', metric, op: form.op, value: value ?? 0, for_s: forS ?? 0 };
      if (zone) c.zone = zone;
      if (sensors.length) c.sensors = sensors;
      if (form.pooled) c.pooled = form.pooled;
      condition = c;
      break;
    }
    case 'gateway_offline': {
      const after = parseSeconds(form.afterS, MIN_OFFLINE_AFTER_S, MAX_DURATION_S);
      if (after === null) errors.push({ field: 'afterS', key: 'rules.err.after' });
      const gateways = ids('gateways', 'gateways');
      const c: RuleCondition = { kind: 'gateway_offline', after_s: after ?? MIN_OFFLINE_AFTER_S };
      if (gateways.length) c.gateways = gateways;
      condition = c;
      break;
    }
    case 'certificate_expiry': {
      const days = parseNumber(form.noticeDays);
      const valid = days !== null && days > 0 && days <= MAX_NOTICE_DAYS;
      if (!valid) errors.push({ field: 'noticeDays', key: 'rules.err.notice' });
      const gateways = ids('gateways', 'gateways');
      const beforeS = valid ? Math.max(1, Math.round(days * 86_400)) : 86_400;
      const c: RuleCondition = { kind: 'certificate_expiry', before_s: beforeS };
      if (gateways.length) c.gateways = gateways;
      condition = c;
      break;
    }
    case 'spool_gap': {
      const c: RuleCondition = { kind: 'spool_gap' };
      if (form.reasons.length) c.reasons = [...form.reasons];
      condition = c;
      break;
    }
    case 'security': {
      const c: RuleCondition = { kind: 'security' };
      if (form.events.length) c.events = [...form.events];
      condition = c;
      break;
    }
  }
  if (errors.length || !condition) return { ok: false, errors };
  const body: RuleBody = { name, severity: form.severity, enabled: form.enabled, condition };
  if (creating && id) body.id = id;
  return { ok: true, body };
}

/** The body that changes only `enabled` of an existing rule. */
export function toggledBody(rule: AlarmRule, enabled: boolean): RuleBody {
  return { name: rule.name, severity: rule.severity, enabled, condition: rule.condition };
}

const OP_SYMBOL: Record<Comparison, string> = { gt: '>', ge: '≥', lt: '<', le: '≤' };

/** One line that says what a condition watches. */
export function summarize(c: RuleCondition, lang: Lang): string {
  const all = tIn(lang, 'common.all');
  switch (c.kind) {
    case 'threshold': {
      const parts = [
        tIn(lang, 'rules.sumThreshold', {
          metric: c.metric,
          op: OP_SYMBOL[c.op],
          value: formatNumber(c.value, lang, 6),
        }),
      ];
      if (c.for_s) parts.push(tIn(lang, 'rules.sumFor', { duration: formatDuration(c.for_s, lang) }));
      if (c.zone) parts.push(tIn(lang, 'rules.sumZone', { zone: c.zone }));
      if (c.sensors?.length) parts.push(tIn(lang, pluralKey(lang, 'rules.sumSensors', c.sensors.length), { n: c.sensors.length }));
      return parts.join(', ');
    }
    case 'gateway_offline': {
      const s = tIn(lang, 'rules.sumOffline', { duration: formatDuration(c.after_s, lang) });
      return c.gateways?.length ? `${s} (${c.gateways.join(', ')})` : s;
    }
    case 'certificate_expiry': {
      const s = tIn(lang, 'rules.sumCert', { duration: formatDuration(c.before_s, lang) });
      return c.gateways?.length ? `${s} (${c.gateways.join(', ')})` : s;
    }
    case 'spool_gap':
      return tIn(lang, 'rules.sumGap', {
        reasons: c.reasons?.length ? c.reasons.map((r) => tIn(lang, `gap.${r}`)).join(', ') : all,
      });
    case 'security':
      return tIn(lang, 'rules.sumSecurity', {
        events: c.events?.length ? c.events.map((e) => tIn(lang, `secKind.${e}`)).join(', ') : all,
      });
  }
}
