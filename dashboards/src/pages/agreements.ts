// Sharing agreements (`#/agreements`), the grantor's side: the list with state, grantee,
// purposes, action and validity; for admins create/edit (see `agreementEditor.ts`), state
// changes (revoking asks for confirmation), ODRL 2.2 export (download) and import (paste or
// file), pseudonym key rotation (confirmation: every pseudonym changes), and "Preview as
// grantee" (see `agreementPreview.ts`). Viewers and operators see the list read-only and may
// preview.

import { errorMessage, seg } from '../api';
import { summarizeTarget, summarizeTerms, validityAt } from '../agreementForm';
import { hasRole, type Page } from '../context';
import { h, mount } from '../dom';
import { formatDateTime, formatDuration } from '../format';
import { nextStates, type AgreementRecord, type AgreementState, type Rotated } from '../governanceTypes';
import { getLang, t, type MessageKey } from '../i18n';
import { parseMillis } from '../time';
import type { Items } from '../types';
import { emptyRow, errorBox, loadingBox, uid } from '../ui';
import { agreementEditor } from './agreementEditor';
import { agreementPreview } from './agreementPreview';

const STATE_ACTION: Record<AgreementState, MessageKey> = {
  draft: 'agr.toDraft',
  active: 'agr.activate',
  suspended: 'agr.suspend',
  revoked: 'agr.revoke',
};

export function agreementStateBadge(state: AgreementState): HTMLElement {
  return h('span', { class: `badge agr-${state}`, 'data-testid': 'agreement-state', 'data-state': state }, t(`agrState.${state}`));
}

/** `from → to` in the browser's zone, with "not yet" / "expired" when outside. */
export function validityCell(record: AgreementRecord, nowMs: number): HTMLElement {
  const a = record.agreement;
  const lang = getLang();
  const when = validityAt(a, nowMs);
  return h(
    'span',
    { 'data-validity': when },
    `${formatDateTime(parseMillis(a.not_before), lang)} → ${formatDateTime(parseMillis(a.not_after), lang)}`,
    when === 'current' ? null : h('span', { class: 'pill pill-offline' }, ' ', t(`agr.validity.${when}`)),
  );
}

export const agreementsPage: Page = (root, ctx) => {
  let disposed = false;
  const admin = hasRole(ctx.me, 'admin');
  let records: AgreementRecord[] = [];
  const tbody = h('tbody');
  const status = h('div');
  const notice = h('p', { class: 'notice', role: 'status', 'aria-live': 'polite', 'data-testid': 'agr-notice' });
  const panelHost = h('div');
  const newButton = admin
    ? h('button', { type: 'button', class: 'btn', 'data-testid': 'agr-new', onclick: () => openEditor(null) }, t('agr.new'))
    : null;
  const importButton = admin
    ? h('button', { type: 'button', class: 'btn btn-secondary', 'data-testid': 'agr-import', onclick: () => openImport() }, t('agr.import'))
    : null;
  const cols = 7;

  mount(
    root,
    h('h1', { class: 'page-title', tabindex: -1 }, t('agr.title')),
    h('p', { class: 'muted' }, t('agr.intro')),
    admin ? null : h('p', { class: 'notice notice-info', 'data-testid': 'agr-readonly' }, t('agr.readOnly')),
    h('div', { class: 'toolbar' }, newButton, ' ', importButton),
    notice,
    panelHost,
    status,
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'data-table', 'data-testid': 'agreements-table' },
        h('caption', { class: 'sr-only' }, t('agr.title')),
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            ...['agr.col.id', 'agr.col.state', 'agr.col.grantee', 'agr.col.purposes', 'agr.col.what', 'agr.col.validity', 'common.actions'].map((k) =>
              h('th', { scope: 'col' }, t(k as MessageKey)),
            ),
          ),
        ),
        tbody,
      ),
    ),
  );

  const button = (label: string, testid: string, aria: string, onclick: () => void, cls = 'btn-secondary'): HTMLButtonElement =>
    h('button', { type: 'button', class: `btn btn-small ${cls}`, 'data-testid': testid, 'aria-label': aria, onclick }, label);

  const rowActions = (r: AgreementRecord): HTMLElement => {
    const a = r.agreement;
    const items: HTMLElement[] = [button(t('agr.preview'), 'agr-preview', t('agr.previewOf', { id: a.id }), () => openPreview(r))];
    items.push(button(t('agr.odrl'), 'agr-odrl', t('agr.odrlOf', { id: a.id }), () => void exportOdrl(r)));
    if (admin && a.state !== 'revoked') {
      items.push(button(t('common.edit'), 'agr-edit', t('agr.editOf', { id: a.id }), () => openEditor(r)));
      for (const next of nextStates(a.state)) {
        items.push(
          button(t(STATE_ACTION[next]), `agr-state-${next}`, t('agr.stateOf', { action: t(STATE_ACTION[next]), id: a.id }), () => void setState(r, next), next === 'revoked' ? 'btn-danger' : 'btn-secondary'),
        );
      }
      if (a.pseudonymise) items.push(button(t('agr.rotate'), 'agr-rotate', t('agr.rotateOf', { id: a.id }), () => void rotate(r)));
    }
    return h('td', { class: 'actions' }, ...items.flatMap((b) => [b, ' ']));
  };

  const renderList = (): void => {
    if (records.length === 0) {
      mount(tbody, emptyRow(cols, t('agr.empty')));
      return;
    }
    const lang = getLang();
    const now = ctx.clock.now();
    mount(
      tbody,
      ...records.map((r) => {
        const a = r.agreement;
        return h(
          'tr',
          { 'data-testid': 'agreement-row', 'data-agreement-id': a.id, 'data-state': a.state },
          h('th', { scope: 'row' }, h('code', null, a.id), h('br'), h('span', { class: 'muted small' }, t('agr.version', { version: a.version }))),
          h('td', null, agreementStateBadge(a.state)),
          h('td', null, h('code', null, a.grantee)),
          h('td', null, a.purposes.map((p) => t(`purpose.${p}`)).join(', ')),
          h(
            'td',
            null,
            h('strong', null, t(`action.${a.action}`)),
            h('br'),
            summarizeTarget(a, lang),
            h('br'),
            h('span', { class: 'muted small' }, summarizeTerms(a, lang), a.pseudonymise ? ` · ${t('agr.pseudonymised')}` : '', a.embargo_s ? ` · ${t('agr.embargoOf', { duration: formatDuration(a.embargo_s, lang) })}` : ''),
          ),
          h('td', null, validityCell(r, now)),
          rowActions(r),
        );
      }),
    );
  };

  const load = async (): Promise<void> => {
    mount(status, loadingBox());
    try {
      const resp = await ctx.api.get<Items<AgreementRecord>>('/api/v1/agreements');
      if (disposed) return;
      records = [...resp.items].sort((x, y) => x.agreement.id.localeCompare(y.agreement.id));
      mount(status);
      renderList();
    } catch (e) {
      if (disposed) return;
      mount(status, errorBox(e, () => void load()));
    }
  };

  const closePanel = (focus: HTMLElement | null = newButton): void => {
    mount(panelHost);
    focus?.focus();
  };

  const openEditor = (record: AgreementRecord | null): void => {
    notice.textContent = '';
    const form = agreementEditor(ctx, record, {
      saved: (saved) => {
        closePanel();
        notice.textContent = t('agr.saved', { id: saved.agreement.id, version: saved.agreement.version });
        void load();
      },
      cancelled: () => closePanel(),
    });
    mount(panelHost, form);
    (form.querySelector('input:not([disabled]), select') as HTMLElement | null)?.focus();
  };

  const openPreview = (record: AgreementRecord): void => {
    notice.textContent = '';
    const panel = agreementPreview(ctx, record, () => closePanel());
    mount(panelHost, panel);
    (panel.querySelector('select') as HTMLElement | null)?.focus();
  };

  const setState = async (record: AgreementRecord, next: AgreementState): Promise<void> => {
    const a = record.agreement;
    if (next === 'revoked' && !window.confirm(t('agr.confirmRevoke', { id: a.id, grantee: a.grantee }))) return;
    if (next === 'suspended' && !window.confirm(t('agr.confirmSuspend', { id: a.id, grantee: a.grantee }))) return;
    notice.textContent = '';
    try {
      const saved = await ctx.api.post<AgreementRecord>(`/api/v1/agreements/${seg(a.id)}/state`, { state: next, version: a.version });
      notice.textContent = t('agr.stateChanged', { id: a.id, state: t(`agrState.${saved.agreement.state}`) });
      await load();
    } catch (e) {
      notice.textContent = errorMessage(e);
    }
  };

  const rotate = async (record: AgreementRecord): Promise<void> => {
    const a = record.agreement;
    if (!window.confirm(t('agr.confirmRotate', { id: a.id, grantee: a.grantee }))) return;
    notice.textContent = '';
    try {
      const r = await ctx.api.post<Rotated>(`/api/v1/agreements/${seg(a.id)}/keys/rotate`, {});
      notice.textContent = t('agr.rotated', { id: a.id, epoch: r.epoch });
    } catch (e) {
      notice.textContent = errorMessage(e);
    }
  };

  const exportOdrl = async (record: AgreementRecord): Promise<void> => {
    const id = record.agreement.id;
    notice.textContent = '';
    try {
      const doc = await ctx.api.get<unknown>(`/api/v1/agreements/${seg(id)}/odrl`);
      const blob = new Blob([`${JSON.stringify(doc, null, 2)}\n`], { type: 'application/ld+json' });
      const url = URL.createObjectURL(blob);
      const link = h('a', { href: url, download: `${id}.odrl.jsonld`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
      notice.textContent = t('agr.exported', { id });
    } catch (e) {
      notice.textContent = errorMessage(e);
    }
  };

  const openImport = (): void => {
    notice.textContent = '';
    const titleId = uid('import-title');
    const textId = uid('import-text');
    const fileId = uid('import-file');
    const text = h('textarea', { id: textId, rows: 10, class: 'code-input', 'data-testid': 'agr-import-text', spellcheck: false });
    const file = h('input', { type: 'file', id: fileId, accept: '.json,.jsonld,application/json,application/ld+json', 'data-testid': 'agr-import-file' });
    const error = h('div', { class: 'form-error', role: 'alert', 'data-testid': 'agr-import-error' });
    file.addEventListener('change', () => {
      const f = file.files?.[0];
      if (f) void f.text().then((content) => (text.value = content));
    });
    const submit = h('button', { type: 'submit', class: 'btn', 'data-testid': 'agr-import-submit' }, t('agr.importSubmit'));
    const formEl = h(
      'form',
      { class: 'panel', 'aria-labelledby': titleId, novalidate: true, 'data-testid': 'agr-import-form' },
      h('h2', { id: titleId }, t('agr.importTitle')),
      h('p', { class: 'muted' }, t('agr.importIntro')),
      h('div', { class: 'field' }, h('label', { for: fileId }, t('agr.importFile')), file),
      h('div', { class: 'field' }, h('label', { for: textId }, t('agr.importPaste')), text),
      error,
      h(
        'div',
        { class: 'form-buttons' },
        submit,
        h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => closePanel(importButton) }, t('common.cancel')),
      ),
    );
    formEl.addEventListener('submit', (ev) => {
      ev.preventDefault();
      let doc: unknown;
      try {
        doc = JSON.parse(text.value);
      } catch (e) {
        error.textContent = t('agr.importNotJson', { detail: e instanceof Error ? e.message : String(e) });
        text.focus();
        return;
      }
      submit.disabled = true;
      void ctx.api
        .post<AgreementRecord>('/api/v1/agreements/import', doc)
        .then((saved) => {
          closePanel(importButton);
          notice.textContent = t('agr.imported', { id: saved.agreement.id });
          return load();
        })
        .catch((e: unknown) => {
          error.textContent = errorMessage(e);
        })
        .finally(() => {
          submit.disabled = false;
        });
    });
    formEl.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') closePanel(importButton);
    });
    mount(panelHost, formEl);
    file.focus();
  };

  void load();
  return () => {
    disposed = true;
  };
};
