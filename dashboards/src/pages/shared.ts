// Shared with me (`#/shared`), the grantee's side (a tenant's token of any role, or a
// partner's token): the agreements other tenants grant us, by grantor, with their purposes
// and terms; a read of a grantor's sensors, readings or aggregates for a chosen purpose
// (tables as sent, denials with their reason), or the same query downloaded as CSV
// (`/export`, fetched with the token); and a live panel following a grantor's
// readings, which says clearly when the share ends (agreement revoked, suspended, expired).

import { summarizeTarget, summarizeTerms } from '../agreementForm';
import { seg, type QueryValue } from '../api';
import type { Page } from '../context';
import { h, mount, saveFile, setAttr, setText } from '../dom';
import { formatDateTime, formatValue } from '../format';
import { denyReasonLabel, deniedBox, governedView, type GovernedAnswer } from '../governedTables';
import { PURPOSES, type AgreementRecord, type Purpose } from '../governanceTypes';
import { getLang, t } from '../i18n';
import { delayText, SharedLiveView, type SharedLiveState } from '../sharedLive';
import { splitList } from '../ruleForm';
import { previewQuery, SHARED_KINDS, type SharedKind } from '../sharedQuery';
import { parseMillis } from '../time';
import type { Items } from '../types';
import { emptyRow, errorBox, loadingBox, uid } from '../ui';
import { agreementStateBadge, validityCell } from './agreements';
import { readForm } from './readForm';

export const sharedPage: Page = (root, ctx) => {
  let disposed = false;
  let records: AgreementRecord[] = [];
  const status = h('div');
  const tbody = h('tbody');
  const grantorSel = h('select', { 'data-testid': 'shared-grantor' });
  const agreementSel = h('select', { 'data-testid': 'shared-agreement' });
  const controls = readForm({
    kinds: SHARED_KINDS,
    kind: 'aggregates',
    purposes: PURPOSES,
    metric: '',
    bucket: '1h',
    level: 'zone',
    functions: ['avg'],
    testid: 'shared',
  });
  const result = h('div', { 'data-testid': 'shared-result', 'aria-live': 'polite' });
  const run = h('button', { type: 'submit', class: 'btn', 'data-testid': 'shared-run' }, t('shared.run'));
  const download = h('button', { type: 'button', class: 'btn btn-secondary', 'data-testid': 'shared-download' }, t('shared.download'));
  const grantorId = uid('shared-grantor');
  const agreementId = uid('shared-agreement');

  // ---- live ----
  const view = new SharedLiveView(ctx.live);
  const liveStatus = h('p', { class: 'live-status', role: 'status', 'data-testid': 'shared-live-status', 'data-phase': 'idle' }, t('shared.live.idle'));
  const liveDelay = h('p', { class: 'live-delay', 'data-testid': 'shared-live-delay', hidden: true });
  const liveEnded = h('div', { hidden: true });
  const liveBody = h('tbody');
  const follow = h('button', { type: 'button', class: 'btn', 'data-testid': 'shared-live-follow' }, t('shared.live.follow'));
  const stop = h('button', { type: 'button', class: 'btn btn-secondary', 'data-testid': 'shared-live-stop', disabled: true }, t('shared.live.stop'));

  const titleForm = uid('shared-read');
  const titleLive = uid('shared-live');
  const titleList = uid('shared-list');
  mount(
    root,
    h('h1', { class: 'page-title', tabindex: -1 }, t('shared.title')),
    h('p', { class: 'muted' }, t('shared.intro')),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': titleList },
      h('h2', { id: titleList }, t('shared.agreements')),
      status,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'data-table', 'data-testid': 'shared-table' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              ...[t('shared.grantor'), t('agr.col.id'), t('agr.col.state'), t('agr.col.purposes'), t('agr.col.what'), t('agr.col.validity')].map((x) =>
                h('th', { scope: 'col' }, x),
              ),
            ),
          ),
          tbody,
        ),
      ),
    ),
    h(
      'form',
      { class: 'panel', 'aria-labelledby': titleForm, novalidate: true, 'data-testid': 'shared-form' },
      h('h2', { id: titleForm }, t('shared.read')),
      h(
        'div',
        { class: 'form-grid' },
        h('div', { class: 'field' }, h('label', { for: grantorId }, t('shared.grantor')), Object.assign(grantorSel, { id: grantorId })),
        h('div', { class: 'field' }, h('label', { for: agreementId }, t('shared.agreement')), Object.assign(agreementSel, { id: agreementId })),
      ),
      controls.controls,
      controls.general,
      h('div', { class: 'form-buttons' }, run, download),
      result,
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': titleLive, 'data-testid': 'shared-live' },
      h('h2', { id: titleLive }, t('shared.live.title')),
      h('p', { class: 'muted' }, t('shared.live.intro')),
      h('div', { class: 'form-buttons' }, follow, stop),
      liveStatus,
      liveDelay,
      liveEnded,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'data-table', 'data-testid': 'shared-live-table' },
          h('thead', null, h('tr', null, ...[t('field.sensor'), t('field.metric'), t('field.value'), t('field.time')].map((x) => h('th', { scope: 'col' }, x)))),
          liveBody,
        ),
      ),
    ),
  );

  const grantors = (): string[] => [...new Set(records.map((r) => r.agreement.grantor))].sort();
  const selected = (): AgreementRecord | undefined => records.find((r) => r.agreement.id === agreementSel.value && r.agreement.grantor === grantorSel.value);

  const syncAgreements = (): void => {
    const mine = records.filter((r) => r.agreement.grantor === grantorSel.value);
    mount(agreementSel, h('option', { value: '' }, t('shared.anyAgreement')), ...mine.map((r) => h('option', { value: r.agreement.id }, `${r.agreement.id} (${t(`agrState.${r.agreement.state}`)})`)));
    if (mine.length === 1 && mine[0]) agreementSel.value = mine[0].agreement.id;
    syncPurposes();
  };
  const syncPurposes = (): void => {
    const one = selected();
    const purposes: readonly Purpose[] = one
      ? one.agreement.purposes
      : PURPOSES.filter((p) => records.some((r) => r.agreement.grantor === grantorSel.value && r.agreement.purposes.includes(p)));
    controls.setPurposes(purposes.length ? purposes : PURPOSES);
  };
  grantorSel.addEventListener('change', syncAgreements);
  agreementSel.addEventListener('change', syncPurposes);

  const renderList = (): void => {
    const lang = getLang();
    const now = ctx.clock.now();
    if (records.length === 0) mount(tbody, emptyRow(6, t('shared.empty')));
    else
      mount(
        tbody,
        ...records.map((r) => {
          const a = r.agreement;
          return h(
            'tr',
            { 'data-testid': 'shared-row', 'data-grantor': a.grantor, 'data-agreement-id': a.id, 'data-state': a.state },
            h('th', { scope: 'row' }, h('code', null, a.grantor)),
            h('td', null, h('code', null, a.id), h('span', { class: 'muted small' }, ` ${t('agr.version', { version: a.version })}`)),
            h('td', null, agreementStateBadge(a.state)),
            h('td', null, a.purposes.map((p) => t(`purpose.${p}`)).join(', ')),
            h('td', null, h('strong', null, t(`action.${a.action}`)), h('br'), summarizeTarget(a, lang), h('br'), h('span', { class: 'muted small' }, summarizeTerms(a, lang))),
            h('td', null, validityCell(r, now)),
          );
        }),
      );
    mount(grantorSel, ...grantors().map((g) => h('option', { value: g }, g)));
    syncAgreements();
  };

  const load = async (): Promise<void> => {
    mount(status, loadingBox());
    try {
      const resp = await ctx.api.get<Items<AgreementRecord>>('/api/v1/shared');
      if (disposed) return;
      records = [...resp.items].sort((x, y) => x.agreement.grantor.localeCompare(y.agreement.grantor) || x.agreement.id.localeCompare(y.agreement.id));
      mount(status);
      renderList();
    } catch (e) {
      if (disposed) return;
      mount(status, errorBox(e, () => void load()));
    }
  };

  const formEl = root.querySelector('[data-testid="shared-form"]') as HTMLFormElement;
  /** The form's grantor, kind and query; null (the form says why) when they are not valid.
   *  An export of the registry (`sensors`) exports the readings. */
  const formQuery = (exporting: boolean): { grantor: string; kind: SharedKind; query: Record<string, QueryValue> } | null => {
    const grantor = grantorSel.value;
    if (!grantor) {
      controls.general.textContent = t('shared.noGrantor');
      return null;
    }
    const spec = { ...controls.read(), agreement: agreementSel.value };
    if (exporting && spec.kind === 'sensors') spec.kind = 'readings';
    const q = previewQuery(spec, ctx.clock.now());
    if (!q.ok) {
      controls.showError(q);
      return null;
    }
    controls.showError(null);
    return { grantor, kind: spec.kind, query: q.query };
  };
  formEl.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const read = formQuery(false);
    if (!read) return;
    run.disabled = true;
    mount(result, loadingBox());
    void ctx.api
      .get<GovernedAnswer>(`/api/v1/shared/${seg(read.grantor)}/${read.kind}`, read.query)
      .then((answer) => !disposed && mount(result, governedView(answer)))
      .catch((e: unknown) => !disposed && mount(result, deniedBox(e)))
      .finally(() => {
        run.disabled = false;
      });
  });

  // The export of the same query, as a CSV file.
  download.addEventListener('click', () => {
    const read = formQuery(true);
    if (!read) return;
    download.disabled = true;
    void ctx.api
      .download(`/api/v1/shared/${seg(read.grantor)}/export`, { ...read.query, format: 'csv' }, `${read.grantor}.csv`)
      .then((file) => saveFile(file.blob, file.name))
      .catch((e: unknown) => !disposed && mount(result, deniedBox(e)))
      .finally(() => {
        download.disabled = false;
      });
  });

  // ---- live panel ----
  const renderLive = (s: SharedLiveState): void => {
    ctx.frames.schedule('shared-live', () => {
      setAttr(liveStatus, 'data-phase', s.phase);
      const reason = s.reason ? denyReasonLabel(s.reason) : '';
      setText(liveStatus, t(`shared.live.${s.phase}`, { reason }));
      const delay = s.phase === 'live' ? delayText(s, getLang()) : null;
      liveDelay.hidden = delay === null;
      setAttr(liveDelay, 'data-embargo-s', s.embargoS === null ? null : String(s.embargoS));
      setText(liveDelay, delay ?? '');
      follow.disabled = s.phase === 'subscribing' || s.phase === 'live';
      stop.disabled = !follow.disabled;
      const over = s.phase === 'ended' || s.phase === 'denied';
      liveEnded.hidden = !over;
      if (over) {
        mount(
          liveEnded,
          h(
            'div',
            { class: 'error-box denied', role: 'alert', 'data-testid': s.phase === 'ended' ? 'shared-live-ended' : 'shared-live-denied', 'data-reason': s.reason ?? '' },
            h('p', null, h('strong', null, t(s.phase === 'ended' ? 'shared.live.endedTitle' : 'shared.live.deniedTitle', { reason }))),
            s.detail ? h('p', { class: 'small' }, s.detail) : null,
          ),
        );
      }
      const lang = getLang();
      const rows = view.rows();
      if (rows.length === 0) mount(liveBody, emptyRow(4, t('shared.live.noValue')));
      else
        mount(
          liveBody,
          ...rows.map((r) =>
            h(
              'tr',
              { 'data-testid': 'shared-live-row' },
              h('td', null, h('code', null, r.sensor)),
              h('td', null, r.metric),
              h('td', { class: 'num' }, formatValue(r.value, r.unit, lang)),
              h('td', null, formatDateTime(parseMillis(r.time), lang)),
            ),
          ),
        );
    });
  };
  const offChange = view.onChange((s) => {
    renderLive(s);
    if (s.phase === 'ended') ctx.announce(t('shared.live.endedTitle', { reason: s.reason ? denyReasonLabel(s.reason) : '' }));
  });
  renderLive(view.state);
  follow.addEventListener('click', () => {
    const grantor = grantorSel.value;
    const spec = controls.read();
    if (!grantor || !spec.purpose) {
      controls.general.textContent = t('shared.noGrantor');
      return;
    }
    controls.general.textContent = '';
    view.start({ grantor, purpose: spec.purpose, metrics: splitList(spec.metric) });
  });
  stop.addEventListener('click', () => view.stop());

  void load();
  return () => {
    disposed = true;
    offChange();
    view.stop();
  };
};
