// Audit (`#/audit`): the tenant's tamper-evident log (admin): entries by seq, a page at a time,
// filtered by kind and time on the server and by grantee among the entries loaded; an entry's
// full JSON in a side drawer; "Verify" runs the server's verification and says whether the
// chain is intact or where it breaks first and why. The signed checkpoints and the platform's
// public key (any role) let anyone verify offline with `beffroi audit verify`.

import { hasRole, type Page } from '../context';
import { h, mount, setText } from '../dom';
import { formatDateTime, formatNumber } from '../format';
import { AUDIT_KINDS, type AuditEntry, type AuditPage, type CheckpointPage, type PublicKeys, type VerifyReport } from '../governanceTypes';
import { abbreviateHash, auditQuery, auditRow, matchesGrantee, verifyOutcome, type AuditFilter } from '../auditView';
import { purposeLabel } from '../governedTables';
import { getLang, t } from '../i18n';
import { parseMillis } from '../time';
import { emptyRow, errorBox, loadingBox, uid } from '../ui';

export const auditPage: Page = (root, ctx) => {
  let disposed = false;
  const admin = hasRole(ctx.me, 'admin');
  const titleLog = uid('audit-log');
  const titleCp = uid('audit-cp');
  const titleKey = uid('audit-key');
  const cpBody = h('tbody');
  const cpStatus = h('div');
  const keyHost = h('div', { 'data-testid': 'audit-public-key' });

  const logSection = admin ? entriesSection() : h('p', { class: 'notice notice-info', 'data-testid': 'audit-admin-only' }, t('audit.adminOnly'));
  mount(
    root,
    h('h1', { class: 'page-title', tabindex: -1 }, t('audit.title')),
    h('p', { class: 'muted' }, t('audit.intro')),
    h('section', { class: 'panel', 'aria-labelledby': titleLog }, h('h2', { id: titleLog }, t('audit.log')), logSection),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': titleCp },
      h('h2', { id: titleCp }, t('audit.checkpoints')),
      cpStatus,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'data-table', 'data-testid': 'audit-checkpoints' },
          h('thead', null, h('tr', null, ...[t('audit.col.seq'), t('audit.col.time'), t('audit.col.head'), t('audit.col.key')].map((x) => h('th', { scope: 'col' }, x)))),
          cpBody,
        ),
      ),
    ),
    h('section', { class: 'panel', 'aria-labelledby': titleKey }, h('h2', { id: titleKey }, t('audit.publicKey')), keyHost),
  );

  function entriesSection(): HTMLElement {
    let entries: AuditEntry[] = [];
    let nextAfter: number | null = 0;
    let applied: AuditFilter = { kind: '', since: '', until: '', grantee: '' };
    const tbody = h('tbody');
    const status = h('div');
    const filterError = h('div', { class: 'form-error', role: 'alert', 'data-testid': 'audit-filter-error' });
    const more = h('button', { type: 'button', class: 'btn btn-secondary', hidden: true, 'data-testid': 'audit-more' }, t('common.loadMore'));
    const count = h('p', { class: 'muted small', 'data-testid': 'audit-count' });
    const verifyButton = h('button', { type: 'button', class: 'btn', 'data-testid': 'audit-verify' }, t('audit.verify'));
    const verifyHost = h('div', { 'data-testid': 'audit-verify-result', 'aria-live': 'polite' });
    const drawer = h('aside', { class: 'drawer', hidden: true, role: 'dialog', 'aria-modal': 'false', 'data-testid': 'audit-drawer' });

    const kindSel = h('select', { 'data-testid': 'audit-kind' }, h('option', { value: '' }, t('common.all')), ...AUDIT_KINDS.map((k) => h('option', { value: k }, t(`auditKind.${k}`))));
    const sinceInput = h('input', { type: 'datetime-local', 'data-testid': 'audit-since' });
    const untilInput = h('input', { type: 'datetime-local', 'data-testid': 'audit-until' });
    const granteeInput = h('input', { type: 'text', 'data-testid': 'audit-grantee', autocomplete: 'off', placeholder: 'partner:…' });
    const labelled = (label: string, control: HTMLElement, help?: string): HTMLElement => {
      control.id = uid('audit-f');
      const helpEl = help ? h('span', { class: 'help', id: `${control.id}-help` }, help) : null;
      if (helpEl) control.setAttribute('aria-describedby', helpEl.id);
      return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, helpEl);
    };
    const filterForm = h(
      'form',
      { class: 'filters', novalidate: true, 'data-testid': 'audit-filters', 'aria-label': t('audit.filters') },
      h(
        'div',
        { class: 'form-grid' },
        labelled(t('audit.col.kind'), kindSel),
        labelled(t('audit.since'), sinceInput, t('audit.utc')),
        labelled(t('audit.until'), untilInput, t('audit.utc')),
        labelled(t('audit.col.grantee'), granteeInput, t('audit.granteeHelp')),
      ),
      filterError,
      h('div', { class: 'form-buttons' }, h('button', { type: 'submit', class: 'btn btn-secondary', 'data-testid': 'audit-apply' }, t('audit.apply'))),
    );

    const openDrawer = (entry: AuditEntry, opener: HTMLElement): void => {
      const titleId = uid('drawer-title');
      const closeBtn = h('button', { type: 'button', class: 'btn btn-small btn-ghost', 'data-testid': 'audit-drawer-close' }, t('common.close'));
      const close = (): void => {
        drawer.hidden = true;
        drawer.replaceChildren();
        opener.focus();
      };
      closeBtn.addEventListener('click', close);
      drawer.onkeydown = (ev) => {
        if (ev.key === 'Escape') close();
      };
      drawer.setAttribute('aria-labelledby', titleId);
      mount(
        drawer,
        h('div', { class: 'drawer-head' }, h('h3', { id: titleId }, t('audit.entry', { seq: entry.seq })), closeBtn),
        h('pre', { 'data-testid': 'audit-entry-json' }, JSON.stringify(entry, null, 2)),
      );
      drawer.hidden = false;
      closeBtn.focus();
    };

    const renderRows = (): void => {
      const lang = getLang();
      const shown = entries.filter((e) => matchesGrantee(e, applied.grantee));
      setText(count, t('audit.count', { shown: shown.length, loaded: entries.length }));
      if (shown.length === 0) {
        mount(tbody, emptyRow(10, t('audit.empty')));
        return;
      }
      mount(
        tbody,
        ...shown.map((e) => {
          const r = auditRow(e);
          const details = h('button', { type: 'button', class: 'btn btn-small btn-secondary', 'data-testid': 'audit-details', 'aria-label': t('audit.detailsOf', { seq: e.seq }) }, t('audit.details'));
          details.addEventListener('click', () => openDrawer(e, details));
          return h(
            'tr',
            { 'data-testid': 'audit-row', 'data-seq': e.seq, 'data-kind': e.kind, 'data-preview': String((e.detail['query'] as Record<string, unknown> | undefined)?.['preview'] === true) },
            h('th', { scope: 'row', class: 'num' }, String(e.seq)),
            h('td', null, formatDateTime(parseMillis(e.time), lang)),
            h('td', null, h('code', null, e.actor)),
            h('td', null, h('span', { class: `badge audit-${e.kind}` }, t(`auditKind.${e.kind}`)), r.note ? h('div', { class: 'muted small' }, r.note) : null),
            h('td', null, r.grantee ? h('code', null, r.grantee) : '—'),
            h('td', null, r.agreement ?? '—'),
            h('td', null, r.purpose ? purposeLabel(r.purpose) : '—'),
            h('td', { class: 'num' }, r.rows === null ? '—' : formatNumber(r.rows, lang)),
            h('td', null, h('code', { title: r.resultHash ?? '' }, abbreviateHash(r.resultHash))),
            h('td', null, details),
          );
        }),
      );
    };

    const loadPage = async (reset: boolean): Promise<void> => {
      if (reset) {
        entries = [];
        nextAfter = 0;
      }
      if (nextAfter === null) return;
      const q = auditQuery(applied, nextAfter);
      if (!q.ok) {
        filterError.textContent = t(q.key);
        (q.field === 'since' ? sinceInput : untilInput).setAttribute('aria-invalid', 'true');
        return;
      }
      filterError.textContent = '';
      sinceInput.removeAttribute('aria-invalid');
      untilInput.removeAttribute('aria-invalid');
      more.disabled = true;
      if (entries.length === 0) mount(status, loadingBox());
      try {
        const page = await ctx.api.get<AuditPage>('/api/v1/audit', q.query);
        if (disposed) return;
        mount(status);
        entries = entries.concat(page.items);
        nextAfter = page.next_after_seq;
        more.hidden = nextAfter === null;
        renderRows();
      } catch (e) {
        if (disposed) return;
        mount(status, errorBox(e, () => void loadPage(false)));
      } finally {
        more.disabled = false;
      }
    };

    filterForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      applied = { kind: kindSel.value as AuditFilter['kind'], since: sinceInput.value, until: untilInput.value, grantee: granteeInput.value };
      void loadPage(true);
    });
    more.addEventListener('click', () => void loadPage(false));

    verifyButton.addEventListener('click', () => {
      verifyButton.disabled = true;
      mount(verifyHost, loadingBox());
      void ctx.api
        .get<VerifyReport>('/api/v1/audit/verify')
        .then((report) => {
          if (disposed) return;
          const o = verifyOutcome(report, getLang());
          mount(
            verifyHost,
            o.ok
              ? h(
                  'div',
                  { class: 'verify verify-ok', role: 'status', 'data-testid': 'audit-verify-ok', 'data-ok': 'true' },
                  h('p', null, h('strong', null, t('audit.verifyOk'))),
                  h('p', null, t('audit.verifyOkDetail', { entries: o.entries, seq: o.headSeq, checkpoints: o.checkpoints })),
                  o.notCheckpointed ? h('p', { class: 'muted small' }, t('audit.notCheckpointed', { seqs: o.notCheckpointed })) : null,
                )
              : h(
                  'div',
                  { class: 'verify verify-broken error-box', role: 'alert', 'data-testid': 'audit-verify-broken', 'data-ok': 'false', 'data-first-bad-seq': o.firstBadSeq ?? '' },
                  h('p', null, h('strong', null, o.firstBadSeq === null ? t('audit.verifyBrokenNoSeq') : t('audit.verifyBroken', { seq: o.firstBadSeq }))),
                  h('ul', null, ...o.problems.map((p) => h('li', null, p))),
                ),
          );
        })
        .catch((e: unknown) => !disposed && mount(verifyHost, errorBox(e)))
        .finally(() => {
          verifyButton.disabled = false;
        });
    });

    void loadPage(true);
    return h(
      'div',
      null,
      h('div', { class: 'toolbar' }, verifyButton),
      verifyHost,
      filterForm,
      status,
      count,
      h(
        'div',
        null,
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'data-table', 'data-testid': 'audit-table' },
            h('caption', { class: 'sr-only' }, t('audit.log')),
            h(
              'thead',
              null,
              h(
                'tr',
                null,
                ...[
                  t('audit.col.seq'),
                  t('audit.col.time'),
                  t('audit.col.actor'),
                  t('audit.col.kind'),
                  t('audit.col.grantee'),
                  t('audit.col.agreement'),
                  t('audit.col.purpose'),
                  t('audit.col.rows'),
                  t('audit.col.hash'),
                  h('span', { class: 'sr-only' }, t('audit.details')),
                ].map((x) => h('th', { scope: 'col' }, x)),
              ),
            ),
            tbody,
          ),
        ),
        drawer,
      ),
      more,
    );
  }

  const loadCheckpoints = async (): Promise<void> => {
    mount(cpStatus, loadingBox());
    try {
      const page = await ctx.api.get<CheckpointPage>('/api/v1/audit/checkpoints', { limit: 100 });
      if (disposed) return;
      mount(cpStatus);
      const lang = getLang();
      const items = [...page.items].reverse();
      if (items.length === 0) mount(cpBody, emptyRow(4, t('audit.noCheckpoint')));
      else
        mount(
          cpBody,
          ...items.map((cp) =>
            h(
              'tr',
              { 'data-testid': 'checkpoint-row' },
              h('td', { class: 'num' }, String(cp.seq)),
              h('td', null, formatDateTime(parseMillis(cp.time), lang)),
              h('td', null, h('code', { title: cp.head }, abbreviateHash(cp.head))),
              h('td', null, h('code', null, cp.key_id)),
            ),
          ),
        );
      if (page.next_after_seq !== null) cpStatus.append(h('p', { class: 'muted small' }, t('audit.moreCheckpoints')));
    } catch (e) {
      if (!disposed) mount(cpStatus, errorBox(e, () => void loadCheckpoints()));
    }
  };

  const loadKey = async (): Promise<void> => {
    try {
      const keys = await ctx.api.get<PublicKeys>('/api/v1/audit/public-key');
      if (disposed) return;
      mount(
        keyHost,
        h('p', null, t('audit.keyId'), ' ', h('code', { 'data-testid': 'audit-key-id' }, keys.current.key_id)),
        h('pre', { class: 'pem' }, keys.current.pem),
        h('p', { class: 'muted small' }, t('audit.keyHelp')),
        keys.retired.length ? h('p', { class: 'muted small' }, t('audit.retired', { ids: keys.retired.map((k) => k.key_id).join(', ') })) : null,
      );
    } catch (e) {
      if (!disposed) mount(keyHost, errorBox(e, () => void loadKey()));
    }
  };

  void loadCheckpoints();
  void loadKey();
  return () => {
    disposed = true;
  };
};
