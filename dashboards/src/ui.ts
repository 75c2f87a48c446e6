// Small shared view pieces: badges, stale markers, relative times that refresh themselves,
// loading and error boxes.

import { errorMessage } from './api';
import { h, setAttr, setText } from './dom';
import { formatDateTime, formatRelative } from './format';
import { getLang, t } from './i18n';
import { parseMillis } from './time';
import type { AlarmState, Severity } from './types';

export function severityBadge(severity: Severity): HTMLElement {
  return h('span', { class: `badge sev-${severity}`, 'data-severity': severity }, t(`severity.${severity}`));
}

export function stateBadge(state: AlarmState): HTMLElement {
  return h('span', { class: `badge state-${state}`, 'data-state': state }, t(`state.${state}`));
}

/** A "stale" marker, hidden while the value is current. */
export function staleMarker(): HTMLElement {
  return h(
    'span',
    { class: 'stale-marker', title: t('common.staleHelp'), hidden: true, 'data-testid': 'stale-marker' },
    t('common.stale'),
  );
}

export function setStale(container: HTMLElement, marker: HTMLElement, stale: boolean): void {
  setAttr(container, 'data-stale', stale ? 'true' : 'false');
  marker.hidden = !stale;
}

/** A `<time>` showing "3 minutes ago", refreshed by `refreshRelativeTimes`. */
export function relTime(iso: string | null | undefined, now: () => number): HTMLElement {
  if (!iso) return h('span', { class: 'muted' }, t('common.never'));
  const ms = parseMillis(iso);
  const el = h('time', { datetime: iso, 'data-rel': String(ms), title: formatDateTime(ms, getLang()) });
  el.textContent = formatRelative(ms, now(), getLang());
  return el;
}

export function refreshRelativeTimes(root: ParentNode, nowMs: number): void {
  const lang = getLang();
  root.querySelectorAll<HTMLElement>('time[data-rel]').forEach((el) => {
    const ms = Number(el.dataset['rel']);
    setText(el, formatRelative(ms, nowMs, lang));
  });
}

export function loadingBox(): HTMLElement {
  return h('p', { class: 'loading', role: 'status' }, t('common.loading'));
}

export function errorBox(e: unknown, retry?: () => void): HTMLElement {
  return h(
    'div',
    { class: 'error-box', role: 'alert' },
    h('p', null, t('common.loadFailed', { detail: errorMessage(e) })),
    retry ? h('button', { type: 'button', class: 'btn', onclick: () => retry() }, t('common.retry')) : null,
  );
}

export function emptyRow(cols: number, text: string): HTMLTableRowElement {
  return h('tr', { class: 'empty' }, h('td', { colspan: cols }, text));
}

let idCounter = 0;
/** A document-unique id for label/aria wiring. */
export function uid(prefix: string): string {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}
