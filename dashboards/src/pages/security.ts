// Security (`#/security`): the tenant's security events (paged, plus the live `security`
// stream) and its quarantined messages. A platform token sees the events that belong to no
// tenant instead, and only this page.

import type { Ctx, Page } from '../context';
import { h, mount } from '../dom';
import { formatDateTime } from '../format';
import { getLang, t } from '../i18n';
import { parseMillis } from '../time';
import type { OffsetPage, QuarantineRecord, SecurityEvent } from '../types';
import { emptyRow, errorBox, loadingBox, refreshRelativeTimes, relTime } from '../ui';

const PAGE = 50;
const MAX_ROWS = 1000;

interface PagedTable<T> {
  section: HTMLElement;
  prepend(item: T): void;
  destroy(): void;
}

function pagedTable<T>(
  ctx: Ctx,
  opts: {
    title: string;
    intro?: string;
    testid: string;
    headers: string[];
    empty: string;
    path: string;
    row: (item: T) => HTMLTableRowElement;
  },
): PagedTable<T> {
  let disposed = false;
  let nextOffset: number | null = 0;
  let count = 0;
  const tbody = h('tbody');
  const status = h('div');
  const more = h('button', { type: 'button', class: 'btn btn-secondary', hidden: true }, t('common.loadMore'));
  const headingId = `${opts.testid}-h`;
  const section = h(
    'section',
    { class: 'panel', 'aria-labelledby': headingId },
    h('h2', { id: headingId }, opts.title),
    opts.intro ? h('p', { class: 'muted' }, opts.intro) : null,
    status,
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'data-table', 'data-testid': opts.testid },
        h('thead', null, h('tr', null, ...opts.headers.map((x) => h('th', { scope: 'col' }, x)))),
        tbody,
      ),
    ),
    more,
  );
  const showEmpty = (): void => {
    if (count === 0) mount(tbody, emptyRow(opts.headers.length, opts.empty));
  };
  const loadPage = async (): Promise<void> => {
    if (nextOffset === null) return;
    more.disabled = true;
    if (count === 0) mount(status, loadingBox());
    try {
      const page = await ctx.api.get<OffsetPage<T>>(opts.path, { limit: PAGE, offset: nextOffset });
      if (disposed) return;
      mount(status);
      if (count === 0) tbody.replaceChildren();
      for (const item of page.items) tbody.append(opts.row(item));
      count += page.items.length;
      nextOffset = page.next_offset;
      more.hidden = nextOffset === null;
      showEmpty();
    } catch (e) {
      if (disposed) return;
      mount(status, errorBox(e, () => void loadPage()));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', () => void loadPage());
  void loadPage();
  return {
    section,
    prepend(item: T) {
      if (count === 0) tbody.replaceChildren();
      count += 1;
      // Keeps the paging right: one more item sits before the next page now.
      if (nextOffset !== null && nextOffset > 0) nextOffset += 1;
      const row = opts.row(item);
      row.classList.add('fresh');
      tbody.prepend(row);
      // A wall screen left open for days: keep the table bounded.
      while (tbody.rows.length > MAX_ROWS) tbody.lastElementChild?.remove();
    },
    destroy() {
      disposed = true;
    },
  };
}

export const securityPage: Page = (root, ctx) => {
  const now = (): number => ctx.clock.now();
  const timeCell = (iso: string): HTMLElement =>
    h('td', null, relTime(iso, now), h('br'), h('span', { class: 'muted small' }, formatDateTime(parseMillis(iso), getLang())));

  const eventRow = (ev: SecurityEvent): HTMLTableRowElement =>
    h(
      'tr',
      { 'data-testid': 'security-row', 'data-kind': ev.kind },
      timeCell(ev.time),
      h('td', null, h('span', { class: `pill pill-sec-${ev.kind}` }, t(`secKind.${ev.kind}`))),
      h('td', null, ev.gateway ? h('code', null, ev.gateway) : '—'),
      h('td', null, ev.address ?? '—'),
      h('td', { class: 'detail' }, ev.detail),
    );

  const quarantineRow = (q: QuarantineRecord): HTMLTableRowElement =>
    h(
      'tr',
      { 'data-testid': 'quarantine-row', 'data-reason': q.reason },
      timeCell(q.received_at),
      h('td', null, h('span', { class: 'pill' }, t(`reason.${q.reason}`))),
      h('td', null, q.gateway ? h('code', null, q.gateway) : '—'),
      h('td', null, h('code', { class: 'topic' }, q.topic)),
      h('td', { class: 'num' }, q.seq === null ? '—' : String(q.seq), q.settles_seq ? h('span', { class: 'muted small' }, ` (${t('sec.settled')})`) : null),
      h('td', { class: 'detail' }, q.detail),
    );

  const eventHeaders = [t('sec.time'), t('sec.kind'), t('sec.gateway'), t('sec.address'), t('sec.detail')];
  const platform = ctx.me.scope === 'platform';
  const events = pagedTable<SecurityEvent>(ctx, {
    title: platform ? t('sec.platformEvents') : t('sec.events'),
    ...(platform ? { intro: t('sec.platformIntro') } : {}),
    testid: 'security-events',
    headers: eventHeaders,
    empty: t('sec.eventsEmpty'),
    path: platform ? '/api/v1/platform/security-events' : '/api/v1/security-events',
    row: eventRow,
  });
  const quarantine = platform
    ? null
    : pagedTable<QuarantineRecord>(ctx, {
        title: t('sec.quarantine'),
        testid: 'quarantine',
        headers: [t('sec.time'), t('sec.reason'), t('sec.gateway'), t('sec.topic'), t('sec.seq'), t('sec.detail')],
        empty: t('sec.quarantineEmpty'),
        path: '/api/v1/quarantine',
        row: quarantineRow,
      });

  mount(
    root,
    h('h1', { class: 'page-title', tabindex: -1 }, t('sec.title')),
    events.section,
    quarantine ? quarantine.section : null,
  );

  const unsubscribe = ctx.live.subscribe('security', { stream: 'security' }, (msg) => {
    if (msg.type === 'security_event') events.prepend(msg.event);
  });
  const timer = window.setInterval(() => refreshRelativeTimes(root, now()), 15_000);

  return () => {
    window.clearInterval(timer);
    unsubscribe();
    events.destroy();
    quarantine?.destroy();
  };
};
