// The audit viewer's pure logic: filters → the query of GET /api/v1/audit (the grantee filter
// applies to the entries loaded: the API filters by kind and time only), one table row's
// columns from an entry, and the verification report in words (ok, or the first broken seq
// and why).

import type { QueryValue } from './api';
import { fromUtcInput } from './agreementForm';
import type { AuditEntry, AuditKind, VerifyProblem, VerifyReport } from './governanceTypes';
import { tIn, type Lang, type MessageKey } from './i18n';

export interface AuditFilter {
  kind: AuditKind | '';
  /** `datetime-local` values read as UTC; empty: unbounded. */
  since: string;
  until: string;
  /** A grantee as the log writes it (`tenant:lyon`, `partner:acme`, `public`), or part of one. */
  grantee: string;
}

export const AUDIT_PAGE = 100;

export type AuditQuery =
  | { ok: true; query: Record<string, QueryValue> }
  | { ok: false; field: 'since' | 'until'; key: MessageKey };

/** The query of one page after `afterSeq`. */
export function auditQuery(filter: AuditFilter, afterSeq: number, limit = AUDIT_PAGE): AuditQuery {
  const query: Record<string, QueryValue> = { after_seq: afterSeq, limit };
  if (filter.kind) query['kind'] = filter.kind;
  let from: string | null = null;
  if (filter.since.trim()) {
    from = fromUtcInput(filter.since);
    if (from === null) return { ok: false, field: 'since', key: 'agr.err.time' };
    query['from'] = from;
  }
  if (filter.until.trim()) {
    const to = fromUtcInput(filter.until);
    if (to === null) return { ok: false, field: 'until', key: 'agr.err.time' };
    if (from !== null && Date.parse(to) <= Date.parse(from)) return { ok: false, field: 'until', key: 'audit.err.range' };
    query['to'] = to;
  }
  return { ok: true, query };
}

const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/** Whether an entry concerns `grantee` (case-insensitive substring; empty matches all). */
export function matchesGrantee(entry: AuditEntry, grantee: string): boolean {
  const wanted = grantee.trim().toLowerCase();
  if (!wanted) return true;
  const g = str(entry.detail['grantee']);
  return g !== null && g.toLowerCase().includes(wanted);
}

/** `4f1c2a9b0e7d…`: enough to compare by eye. */
export function abbreviateHash(hash: string | null | undefined, chars = 12): string {
  if (!hash) return '—';
  return hash.length > chars ? `${hash.slice(0, chars)}…` : hash;
}

export interface AuditRow {
  grantee: string | null;
  /** `air-open v3`. */
  agreement: string | null;
  purpose: string | null;
  rows: number | null;
  resultHash: string | null;
  /** The deny reason, or a change's action/id in a few words. */
  note: string | null;
}

/** The columns of an entry: access entries carry grantee, agreement, purpose, rows and hash. */
export function auditRow(entry: AuditEntry): AuditRow {
  const d = entry.detail;
  const agreement = d['agreement'];
  let agreementText: string | null = null;
  if (agreement && typeof agreement === 'object') {
    const a = agreement as { id?: unknown; version?: unknown };
    if (typeof a.id === 'string') agreementText = typeof a.version === 'number' ? `${a.id} v${a.version}` : a.id;
  } else if (entry.kind === 'agreement_change') {
    const id = str(d['id']) ?? str((d['request'] as Record<string, unknown> | undefined)?.['id']);
    if (id) agreementText = id;
  }
  const note =
    str(d['reason']) ??
    ([str(d['action']), str(d['id']), str(d['outcome'])].filter((x): x is string => x !== null).join(' ') || null);
  return {
    grantee: str(d['grantee']),
    agreement: agreementText,
    purpose: str(d['purpose']),
    rows: typeof d['rows'] === 'number' ? d['rows'] : null,
    resultHash: str(d['result_hash']),
    note,
  };
}

export type VerifyOutcome =
  | { ok: true; entries: number; headSeq: number; checkpoints: number; notCheckpointed: string | null }
  | { ok: false; entries: number; firstBadSeq: number | null; problems: string[] };

/** One problem in words. */
export function describeProblem(p: VerifyProblem, lang: Lang): string {
  const key = `verify.${p.problem}` as MessageKey;
  const params = {
    seq: p.seq ?? '?',
    first: p.first ?? '?',
    last: p.last ?? '?',
    after: p.after ?? '?',
    since: p.since ?? '?',
    checkpoint: p.checkpoint ?? '?',
    key: p.key_id ?? '?',
    tenant: p.tenant ?? '?',
  };
  const known = [
    'altered',
    'chain_broken',
    'missing',
    'out_of_order',
    'foreign_tenant',
    'checkpoint_forged',
    'checkpoint_foreign',
    'checkpoint_mismatch',
    'truncated',
  ];
  return known.includes(p.problem) ? tIn(lang, key, params) : tIn(lang, 'verify.unknown', { problem: p.problem });
}

/** The report's verdict: intact, or where it breaks first and why. */
export function verifyOutcome(report: VerifyReport, lang: Lang): VerifyOutcome {
  const unreadable = report.unreadable ?? [];
  if (report.problems.length === 0 && unreadable.length === 0 && report.first_bad_seq === null) {
    const nc = report.not_checkpointed;
    return {
      ok: true,
      entries: report.entries,
      headSeq: report.head.seq,
      checkpoints: report.checkpoints_matched,
      notCheckpointed: nc ? (nc.first === nc.last ? String(nc.first) : `${nc.first}–${nc.last}`) : null,
    };
  }
  const problems = report.problems.map((p) => describeProblem(p, lang));
  for (const u of unreadable) problems.push(tIn(lang, 'verify.unreadable', { seq: u.seq, reason: u.reason }));
  if (report.problems_omitted > 0) problems.push(tIn(lang, 'verify.omitted', { n: report.problems_omitted }));
  const seqs = [report.first_bad_seq, ...unreadable.map((u) => u.seq)].filter((x): x is number => x !== null);
  return {
    ok: false,
    entries: report.entries,
    firstBadSeq: seqs.length ? Math.min(...seqs) : null,
    problems,
  };
}
