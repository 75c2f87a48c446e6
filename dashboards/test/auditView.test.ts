import { describe, expect, it } from 'vitest';

import { abbreviateHash, auditQuery, auditRow, matchesGrantee, verifyOutcome, type AuditFilter } from '../src/auditView';
import type { AuditEntry, VerifyReport } from '../src/governanceTypes';

const none: AuditFilter = { kind: '', since: '', until: '', grantee: '' };

function entry(seq: number, kind: AuditEntry['kind'], detail: Record<string, unknown>): AuditEntry {
  return {
    tenant: 'demo',
    seq,
    time: '2026-12-04T10:00:00.000000Z',
    actor: 'token:t-1',
    kind,
    detail,
    prev_hash: '0'.repeat(64),
    hash: 'a'.repeat(64),
  };
}

const preview = entry(7, 'access_permit', {
  grantee: 'partner:air-lab',
  agreement: { id: 'air-research', version: 2 },
  purpose: 'research',
  channel: 'rest',
  query: { preview: true },
  rows: 42,
  result_hash: '4f1c2a9b0e7d11223344556677889900aabbccddeeff00112233445566778899',
});

function report(extra: Partial<VerifyReport> = {}): VerifyReport {
  return {
    tenant: 'demo',
    entries: 12,
    head: { seq: 12, hash: 'b'.repeat(64) },
    checkpoints_matched: 1,
    last_checkpoint: 10,
    not_checkpointed: { first: 11, last: 12 },
    problems: [],
    problems_omitted: 0,
    first_bad_seq: null,
    unreadable: [],
    ...extra,
  };
}

describe('audit filters → query', () => {
  it('pages from a seq, with only the filters given', () => {
    expect(auditQuery(none, 0)).toEqual({ ok: true, query: { after_seq: 0, limit: 100 } });
    expect(auditQuery({ ...none, kind: 'access_permit', since: '2026-12-04T10:00', until: '2026-12-04T11:30' }, 200, 50)).toEqual({
      ok: true,
      query: { after_seq: 200, limit: 50, kind: 'access_permit', from: '2026-12-04T10:00:00Z', to: '2026-12-04T11:30:00Z' },
    });
  });

  it('refuses bad or empty ranges, naming the field', () => {
    expect(auditQuery({ ...none, since: 'yesterday' }, 0)).toMatchObject({ ok: false, field: 'since' });
    expect(auditQuery({ ...none, since: '2026-12-04T10:00', until: '2026-12-04T10:00' }, 0)).toMatchObject({
      ok: false,
      field: 'until',
      key: 'audit.err.range',
    });
  });

  it('filters by grantee among the entries loaded', () => {
    expect(matchesGrantee(preview, '')).toBe(true);
    expect(matchesGrantee(preview, 'AIR-lab')).toBe(true);
    expect(matchesGrantee(preview, 'tenant:')).toBe(false);
    expect(matchesGrantee(entry(1, 'rule_change', { action: 'create' }), 'air')).toBe(false);
  });
});

describe('audit rows', () => {
  it('shows the access columns', () => {
    expect(auditRow(preview)).toEqual({
      grantee: 'partner:air-lab',
      agreement: 'air-research v2',
      purpose: 'research',
      rows: 42,
      resultHash: '4f1c2a9b0e7d11223344556677889900aabbccddeeff00112233445566778899',
      note: null,
    });
    expect(abbreviateHash(auditRow(preview).resultHash)).toBe('4f1c2a9b0e7d…');
    expect(abbreviateHash(null)).toBe('—');
  });

  it('says why a read was denied and what a change did', () => {
    const deny = entry(8, 'access_deny', { grantee: 'public', purpose: 'research', rows: 0, reason: 'no_agreement: nothing granted' });
    expect(auditRow(deny)).toMatchObject({ agreement: null, rows: 0, resultHash: null, note: 'no_agreement: nothing granted' });
    const change = entry(9, 'agreement_change', { action: 'state', id: 'air-research', outcome: 'applied', request: { id: 'air-research' } });
    expect(auditRow(change)).toMatchObject({ grantee: null, agreement: 'air-research', note: 'state air-research applied' });
  });
});

describe('verification report', () => {
  it('is OK when nothing is wrong', () => {
    expect(verifyOutcome(report(), 'en')).toEqual({ ok: true, entries: 12, headSeq: 12, checkpoints: 1, notCheckpointed: '11–12' });
    expect(verifyOutcome(report({ not_checkpointed: null }), 'en')).toMatchObject({ ok: true, notCheckpointed: null });
  });

  it('names the first broken seq and why', () => {
    const broken = verifyOutcome(
      report({
        problems: [{ problem: 'altered', seq: 5 }, { problem: 'checkpoint_mismatch', seq: 10, since: 0 }, { problem: 'brand_new', seq: 11 }],
        problems_omitted: 2,
        first_bad_seq: 5,
        unreadable: [{ seq: 3, reason: 'bad json' }],
      }),
      'en',
    );
    expect(broken).toEqual({
      ok: false,
      entries: 12,
      firstBadSeq: 3,
      problems: [
        'seq 5: the entry was edited after it was written.',
        'checkpoint at seq 10: entries after seq 0 were changed, removed or reordered.',
        'problem: brand_new',
        'seq 3: unreadable (bad json).',
        '2 more problems not listed.',
      ],
    });
    const fr = verifyOutcome(report({ problems: [{ problem: 'missing', first: 4, last: 6 }], first_bad_seq: 4 }), 'fr');
    expect(fr).toMatchObject({ ok: false, firstBadSeq: 4, problems: ['n° 4–6 : entrées manquantes.'] });
  });
});
