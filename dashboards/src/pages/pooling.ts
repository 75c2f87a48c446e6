// Pooled network (`#/pooling`), the operator's side (docs/pooling.md): the pooling agreements
// by which its sensors serve other tenants (beneficiaries, state, period, which sensors), and
// what they served — sensors, accesses, readings, denials — per beneficiary and month or day,
// read from the operator's audit log (`GET /api/v1/pooling/usage`, admins), with the same
// report downloaded as CSV to bill or report to its partners. Pooling agreements are created
// and changed in Sharing agreements (the "pooling" term).

import type { Page } from '../context';
import { h, mount, saveFile } from '../dom';
import { formatDateTime, formatNumber } from '../format';
import { summarizeTarget } from '../agreementForm';
import type { AgreementRecord } from '../governanceTypes';
import { getLang, t } from '../i18n';
import { parseMillis } from '../time';
import type { Items } from '../types';
import { emptyRow, errorBox, loadingBox, uid } from '../ui';
import { agreementStateBadge, validityCell } from './agreements';

/** One row of `GET /api/v1/pooling/usage` (crates/api/src/routes/pooling.rs). */
export interface UsageRow {
  beneficiary: string;
  agreement: string;
  period_from: string;
  period_to: string;
  sensors: number;
  accesses: number;
  readings_served: number;
  denied: number;
}

export interface UsageReport {
  operator: string;
  from: string;
  to: string;
  items: UsageRow[];
}

type Period = 'month' | 'day';

export const poolingPage: Page = (root, ctx) => {
  let disposed = false;
  const agreementsBody = h('tbody', { 'data-testid': 'pooling-agreements' });
  const usageBody = h('tbody', { 'data-testid': 'pooling-usage' });
  const usageStatus = h('div');
  const periodSel = h(
    'select',
    { 'data-testid': 'pooling-period', id: uid('pooling-period') },
    ...(['month', 'day'] as const).map((p) => h('option', { value: p }, t(`pool.period.${p}`))),
  );
  const download = h('button', { type: 'button', class: 'btn btn-secondary', 'data-testid': 'pooling-download' }, t('pool.download'));
  const titleAgreements = uid('pool-agreements');
  const titleUsage = uid('pool-usage');
  const table = (testid: string, heads: string[], body: HTMLElement): HTMLElement =>
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'data-table', 'data-testid': testid },
        h('thead', null, h('tr', null, ...heads.map((x) => h('th', { scope: 'col' }, x)))),
        body,
      ),
    );

  mount(
    root,
    h('h1', { class: 'page-title', tabindex: -1 }, t('pool.title')),
    h('p', { class: 'muted' }, t('pool.intro'), ' ', h('a', { href: '#/agreements' }, t('pool.manage'))),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': titleAgreements },
      h('h2', { id: titleAgreements }, t('pool.agreements')),
      table(
        'pooling-agreements-table',
        [t('pool.col.beneficiary'), t('agr.col.id'), t('agr.col.state'), t('agr.col.what'), t('agr.col.validity')],
        agreementsBody,
      ),
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': titleUsage },
      h('h2', { id: titleUsage }, t('pool.usage')),
      h('p', { class: 'muted small' }, t('pool.usageHelp')),
      h(
        'div',
        { class: 'toolbar' },
        h('label', { for: periodSel.id }, t('pool.period')),
        periodSel,
        download,
      ),
      usageStatus,
      table(
        'pooling-usage-table',
        [
          t('pool.col.beneficiary'),
          t('agr.col.id'),
          t('pool.col.period'),
          t('pool.col.sensors'),
          t('pool.col.accesses'),
          t('pool.col.readings'),
          t('pool.col.denied'),
        ],
        usageBody,
      ),
    ),
  );

  const renderAgreements = (records: AgreementRecord[]): void => {
    const lang = getLang();
    const pooling = records.filter((r) => r.agreement.pooling === true);
    if (pooling.length === 0) {
      mount(agreementsBody, emptyRow(5, t('pool.none')));
      return;
    }
    mount(
      agreementsBody,
      ...pooling.map((r) =>
        h(
          'tr',
          { 'data-testid': 'pooling-agreement', 'data-agreement': r.agreement.id },
          h('td', { 'data-testid': 'pooling-beneficiary' }, r.agreement.grantee.replace(/^tenant:/, '')),
          h('td', null, r.agreement.id),
          h('td', null, agreementStateBadge(r.agreement.state)),
          h('td', null, summarizeTarget(r.agreement, lang)),
          h('td', null, validityCell(r, ctx.clock.now())),
        ),
      ),
    );
  };

  const period = (): Period => (periodSel.value === 'day' ? 'day' : 'month');

  const renderUsage = (report: UsageReport): void => {
    const lang = getLang();
    mount(usageStatus);
    if (report.items.length === 0) {
      mount(usageBody, emptyRow(7, t('pool.noUsage')));
      return;
    }
    const n = (x: number): string => formatNumber(x, lang, 0);
    mount(
      usageBody,
      ...report.items.map((u) =>
        h(
          'tr',
          { 'data-testid': 'pooling-usage-row', 'data-beneficiary': u.beneficiary, 'data-agreement': u.agreement },
          h('td', null, u.beneficiary),
          h('td', null, u.agreement),
          h('td', null, `${formatDateTime(parseMillis(u.period_from), lang)} → ${formatDateTime(parseMillis(u.period_to), lang)}`),
          h('td', { 'data-testid': 'usage-sensors' }, n(u.sensors)),
          h('td', { 'data-testid': 'usage-accesses' }, n(u.accesses)),
          h('td', { 'data-testid': 'usage-readings' }, n(u.readings_served)),
          h('td', { 'data-testid': 'usage-denied' }, n(u.denied)),
        ),
      ),
    );
  };

  const loadUsage = (): void => {
    mount(usageStatus, loadingBox());
    ctx.api
      .get<UsageReport>('/api/v1/pooling/usage', { period: period() })
      .then((report) => !disposed && renderUsage(report))
      .catch((e: unknown) => {
        if (disposed) return;
        mount(usageStatus, errorBox(e, loadUsage));
        mount(usageBody);
      });
  };

  const load = (): void => {
    mount(agreementsBody, h('tr', null, h('td', { colspan: 5 }, loadingBox())));
    ctx.api
      .get<Items<AgreementRecord>>('/api/v1/agreements')
      .then((list) => !disposed && renderAgreements(list.items))
      .catch((e: unknown) => !disposed && mount(agreementsBody, h('tr', null, h('td', { colspan: 5 }, errorBox(e, load)))));
    loadUsage();
  };

  periodSel.addEventListener('change', loadUsage);
  download.addEventListener('click', () => {
    download.disabled = true;
    void ctx.api
      .download('/api/v1/pooling/usage', { period: period(), format: 'csv' }, 'pooling-usage.csv')
      .then((file) => saveFile(file.blob, file.name))
      .catch((e: unknown) => !disposed && mount(usageStatus, errorBox(e)))
      .finally(() => {
        download.disabled = false;
      });
  });
  load();

  return () => {
    disposed = true;
  };
};
