// Views of a governed read's answer, exactly as the grantee gets it: shared raw rows (only
// the allowed columns; sensor ids as sent, pseudonyms included), aggregate cells (suppressed
// cells listed as suppressed, with no value) and totals, the shared registry; the exact JSON
// under a disclosure; and a denial with its reason. Used by the grantor's preview and by the
// grantee's "Shared with me" page.

import { ApiError, errorMessage } from './api';
import { cellsChart } from './cellsChart';
import { h } from './dom';
import { formatDateTime, formatDuration, formatNumber, formatValue } from './format';
import {
  DENY_REASONS,
  FIELDS,
  FUNCTIONS,
  LIVE_REASONS,
  PURPOSES,
  type AggFunction,
  type SharedCells,
  type SharedRegistry,
  type SharedRows,
} from './governanceTypes';
import { getLang, t, type MessageKey } from './i18n';
import { parseMillis } from './time';
import type { Value } from './types';
import { emptyRow } from './ui';

export type GovernedAnswer = SharedRows | SharedCells | SharedRegistry;

const time = (iso: string): string => formatDateTime(parseMillis(iso), getLang());

/** The label of a deny reason code (the code itself when unknown). */
export function denyReasonLabel(reason: string): string {
  const known = (DENY_REASONS as readonly string[]).includes(reason) || (LIVE_REASONS as readonly string[]).includes(reason);
  return known ? t(`deny.${reason}` as MessageKey) : reason;
}

/** The label of a purpose (the word itself when unknown). */
export function purposeLabel(purpose: string): string {
  return (PURPOSES as readonly string[]).includes(purpose) ? t(`purpose.${purpose}` as MessageKey) : purpose;
}

/** A refused read: the policy's reason and the server's detail; other errors as they are. */
export function deniedBox(e: unknown): HTMLElement {
  const reason = e instanceof ApiError ? e.problem?.reason : undefined;
  if (e instanceof ApiError && e.status === 403 && reason) {
    return h(
      'div',
      { class: 'error-box denied', role: 'alert', 'data-testid': 'governed-denied', 'data-reason': reason },
      h('p', null, h('strong', null, t('gov.denied', { reason: denyReasonLabel(reason) }))),
      h('p', { class: 'small' }, e.detail),
    );
  }
  return h('div', { class: 'error-box', role: 'alert', 'data-testid': 'governed-error' }, h('p', null, errorMessage(e)));
}

function rawJson(answer: unknown): HTMLElement {
  return h(
    'details',
    { class: 'raw-json' },
    h('summary', null, t('gov.rawJson')),
    h('pre', { 'data-testid': 'governed-json' }, JSON.stringify(answer, null, 2)),
  );
}

function table(testid: string, caption: string, headers: string[], rows: HTMLTableRowElement[], empty: string): HTMLElement {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'data-table', 'data-testid': testid },
      h('caption', { class: 'sr-only' }, caption),
      h('thead', null, h('tr', null, ...headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', null, ...(rows.length ? rows : [emptyRow(headers.length, empty)])),
    ),
  );
}

function cellText(field: string, v: unknown, row: Record<string, unknown>): string {
  if (v === null || v === undefined) return '—';
  if (field === 'time' && typeof v === 'string') return time(v);
  if (field === 'value') return formatValue(v as Value, typeof row['unit'] === 'string' ? row['unit'] : null, getLang());
  return String(v);
}

function rowsView(answer: SharedRows): HTMLElement[] {
  const fields = FIELDS.filter((f) => answer.fields.includes(f));
  const rows = answer.items.map((item) =>
    h(
      'tr',
      { 'data-testid': 'governed-row' },
      ...fields.map((f) =>
        h('td', { class: f === 'value' ? 'num' : undefined }, f === 'sensor' ? h('code', null, cellText(f, item[f], item)) : cellText(f, item[f], item)),
      ),
    ),
  );
  return [
    h(
      'p',
      { class: 'summary', 'data-testid': 'governed-summary', 'data-rows': answer.items.length },
      t('gov.rowsSummary', {
        n: answer.items.length,
        agreement: `${answer.agreement.id} v${answer.agreement.version}`,
        purpose: purposeLabel(answer.purpose),
        from: time(answer.from),
        to: time(answer.to),
      }),
      answer.next_cursor ? ` ${t('gov.moreRows')}` : '',
    ),
    table('governed-rows', t('gov.rows'), fields.map((f) => t(`field.${f}`)), rows, t('gov.noRows')),
  ];
}

function valueCells(functions: AggFunction[], values: Partial<Record<AggFunction, number>> | undefined): HTMLTableCellElement[] {
  return functions.map((f) => {
    const v = values?.[f];
    return h('td', { class: 'num' }, v === undefined ? '—' : formatNumber(v, getLang(), 3));
  });
}

function cellsView(answer: SharedCells): (HTMLElement | null)[] {
  const functions = FUNCTIONS.filter((f) => answer.functions.includes(f));
  const cellRows = answer.cells.map((c) =>
    h(
      'tr',
      { 'data-testid': 'governed-cell', 'data-suppressed': String(c.suppressed), class: c.suppressed ? 'suppressed' : undefined },
      h('td', null, c.metric),
      h('td', null, time(c.bucket)),
      h('td', null, h('code', null, c.unit)),
      ...(c.suppressed
        ? [h('td', { colspan: functions.length, class: 'suppressed-cell' }, h('span', { class: 'badge badge-suppressed' }, t('gov.suppressed')))]
        : valueCells(functions, c.values)),
    ),
  );
  const totalRows = answer.totals.map((c) =>
    h('tr', { 'data-testid': 'governed-total' }, h('td', null, c.metric), h('td', null, time(c.bucket)), ...valueCells(functions, c.values)),
  );
  const fnHeaders = functions.map((f) => t(`fn.${f}`));
  return [
    h(
      'p',
      { class: 'summary', 'data-testid': 'governed-summary', 'data-rows': answer.cells.length },
      t('gov.cellsSummary', {
        n: answer.cells.length,
        agreement: `${answer.agreement.id} v${answer.agreement.version}`,
        purpose: purposeLabel(answer.purpose),
        bucket: formatDuration(answer.bucket_s, getLang()),
        level: t(`level.${answer.level}`),
        k: answer.k,
        suppressed: answer.suppressed.cells,
      }),
    ),
    cellsChart(answer),
    table('governed-cells', t('gov.cells'), [t('gov.metric'), t('gov.bucket'), t(`level.${answer.level}`), ...fnHeaders], cellRows, t('gov.noRows')),
    h('h3', null, t('gov.totals')),
    table('governed-totals', t('gov.totals'), [t('gov.metric'), t('gov.bucket'), ...fnHeaders], totalRows, t('gov.noRows')),
  ];
}

function registryView(answer: SharedRegistry): HTMLElement[] {
  const rows = answer.items.map((u) =>
    u.level === 'zone'
      ? h('tr', { 'data-testid': 'governed-unit' }, h('td', null, h('code', null, u.zone)), h('td', null, u.name), h('td', null, '—'), h('td', null, '—'))
      : h(
          'tr',
          { 'data-testid': 'governed-unit' },
          h('td', null, h('code', null, u.sensor)),
          h('td', null, u.kind),
          h('td', null, u.zone ?? '—'),
          h('td', null, u.lat !== undefined && u.lon !== undefined ? `${formatNumber(u.lat, getLang(), 5)}, ${formatNumber(u.lon, getLang(), 5)}` : '—'),
        ),
  );
  return [
    h('p', { class: 'summary', 'data-testid': 'governed-summary', 'data-rows': answer.items.length }, t('gov.unitsSummary', {
      n: answer.items.length,
      agreement: `${answer.agreement.id} v${answer.agreement.version}`,
    })),
    table('governed-units', t('gov.units'), [t('gov.unit'), t('gov.kindOrName'), t('field.zone'), t('sensor.position')], rows, t('gov.noRows')),
  ];
}

/** The answer as tables, then its exact JSON. */
export function governedView(answer: GovernedAnswer): HTMLElement {
  let parts: (HTMLElement | null)[];
  if ('cells' in answer) parts = cellsView(answer);
  else if ('fields' in answer) parts = rowsView(answer);
  else parts = registryView(answer);
  return h('div', { class: 'governed', 'data-testid': 'governed-answer' }, ...parts, rawJson(answer));
}
