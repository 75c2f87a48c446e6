// Gateways (`#/gateways`): their health as they last reported it, updated live from the
// `gateways` stream; relative times refresh by themselves. Tenant admins also put gateways in
// service (one-time enrollment token), see those awaiting enrollment, and revoke.

import { errorMessage } from '../api';
import { hasRole, type Page } from '../context';
import { h, mount } from '../dom';
import { enrollPanel } from '../gatewayEnroll';
import { formatBytes, formatDuration, formatNumber, formatRelative } from '../format';
import { getLang, t, tn } from '../i18n';
import { parseMillis } from '../time';
import type { Gateway, Items, PendingEnrollment } from '../types';
import { emptyRow, errorBox, loadingBox, refreshRelativeTimes, relTime } from '../ui';

/** A gateway reports health every 30 s by default: silent for 3 periods is offline. */
export const OFFLINE_AFTER_MS = 90_000;
export const CERT_WARN_MS = 7 * 86_400_000;

export type GatewayStatus = 'online' | 'offline' | 'revoked';

export function gatewayStatus(g: Gateway, nowMs: number): GatewayStatus {
  if (g.revoked) return 'revoked';
  const seen = g.state.last_seen ? parseMillis(g.state.last_seen) : Number.NaN;
  return !Number.isNaN(seen) && nowMs - seen <= OFFLINE_AFTER_MS ? 'online' : 'offline';
}

export type CertStatus = 'none' | 'ok' | 'soon' | 'expired';

/** The current signing key, with the keys it replaced in its tooltip. */
function keyCell(g: Gateway): HTMLElement {
  const retired = (g.keys ?? []).filter((k) => k.retired_at);
  return h(
    'span',
    { title: retired.map((k) => t('gw.retiredKey', { key: k.key_id, when: k.retired_at ?? '' })).join('\n') },
    h('code', null, g.key_id),
    retired.length ? h('span', { class: 'muted' }, ` ${t('gw.rotations', { n: retired.length })}`) : null,
  );
}

export function certStatus(notAfter: string | null | undefined, nowMs: number): CertStatus {
  if (!notAfter) return 'none';
  const ms = parseMillis(notAfter);
  if (Number.isNaN(ms)) return 'none';
  if (ms <= nowMs) return 'expired';
  return ms - nowMs < CERT_WARN_MS ? 'soon' : 'ok';
}

const COLUMNS = 10;

export const gatewaysPage: Page = (root, ctx) => {
  let disposed = false;
  const admin = hasRole(ctx.me, 'admin');
  const gateways = new Map<string, Gateway>();
  const rows = new Map<string, HTMLTableRowElement>();
  const summary = h('p', { class: 'summary', role: 'status' });
  const tbody = h('tbody');
  const status = h('div');
  const table = h(
    'table',
    { class: 'data-table', 'data-testid': 'gateway-table' },
    h('caption', { class: 'sr-only' }, t('gw.title')),
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        ...(
          ['gw.id', 'gw.status', 'gw.lastSeen', 'gw.spool', 'gw.oldest', 'gw.gaps', 'gw.version', 'gw.cert', 'gw.key', 'gw.rejected'] as const
        ).map((k) => h('th', { scope: 'col' }, t(k))),
      ),
    ),
    tbody,
  );
  const pending = h('section', { class: 'enroll-pending', 'data-testid': 'enroll-pending' });
  mount(
    root,
    h('h1', { class: 'page-title', tabindex: -1 }, t('gw.title')),
    summary,
    status,
    h('div', { class: 'table-wrap' }, table),
    admin ? pending : null,
    admin ? enrollPanel(ctx.api, () => void loadPending()) : null,
  );

  const now = (): number => ctx.clock.now();

  const renderRow = (g: Gateway): HTMLTableRowElement => {
    const lang = getLang();
    const n = now();
    const st = gatewayStatus(g, n);
    const cert = certStatus(g.cert_not_after, n);
    const gaps = g.state.gaps;
    const lostReadings = gaps.reduce((s, gap) => s + gap.readings, 0);
    const certCell = g.revoked
      ? h('span', { class: 'muted', title: g.revoked_at ?? '' }, t('gw.certRevoked'))
      : cert === 'none'
        ? h('span', { class: 'muted' }, t('gw.noCert'))
        : h(
            'span',
            {
              class: `cert cert-${cert}`,
              title: g.cert_not_after ?? '',
              'data-cert': cert,
            },
            cert === 'expired' ? '⛔ ' : cert === 'soon' ? '⚠ ' : '',
            t(cert === 'expired' ? 'gw.certExpired' : 'gw.certExpires', {
              when: formatRelative(parseMillis(g.cert_not_after ?? ''), n, lang),
            }),
            cert === 'soon' ? h('span', { class: 'sr-only' }, ` (${t('gw.certSoon')})`) : null,
          );
    return h(
      'tr',
      {
        'data-testid': 'gateway-row',
        'data-gateway': g.id,
        'data-status': st,
        class: `gw-${st}`,
      },
      h('th', { scope: 'row' }, h('code', null, g.id)),
      h('td', null, h('span', { class: `pill pill-${st}` }, t(`gw.${st}`))),
      h('td', null, relTime(g.state.last_seen, now)),
      h(
        'td',
        null,
        t('gw.spoolValue', {
          batches: formatNumber(g.state.spool_batches, lang, 0),
          bytes: formatBytes(g.state.spool_bytes, lang),
        }),
      ),
      h(
        'td',
        null,
        g.state.oldest_unacked_age_s === null ? '—' : formatDuration(g.state.oldest_unacked_age_s, lang),
      ),
      h(
        'td',
        {
          class: gaps.length ? 'warn' : '',
          title: gaps.map((gap) => `${gap.first_seq}–${gap.last_seq} (${t(`gap.${gap.reason}`)})`).join('\n'),
        },
        gaps.length
          ? tn('gw.gapSummary', gaps.length, { readings: formatNumber(lostReadings, lang, 0) })
          : t('common.none'),
      ),
      h('td', null, g.state.agent_version ?? '—'),
      h('td', null, certCell),
      h('td', null, keyCell(g)),
      h(
        'td',
        { class: (g.rejected_batches ?? 0) > 0 ? 'warn num' : 'num' },
        g.rejected_batches === undefined ? '—' : formatNumber(g.rejected_batches, lang, 0),
        admin && !g.revoked ? revokeControl(g.id) : null,
      ),
    );
  };

  // Revocation asks once more, in place (no modal: keyboard and screen readers stay put).
  const revokeControl = (id: string): HTMLElement => {
    const slot = h('span', { class: 'revoke' });
    const ask = (): void => {
      const error = h('span', { class: 'form-error', role: 'alert' });
      const confirm = h(
        'button',
        { type: 'button', class: 'btn btn-small btn-danger', 'data-testid': 'revoke-confirm' },
        t('gw.revokeConfirm', { gateway: id }),
      );
      const cancel = h('button', { type: 'button', class: 'btn btn-small btn-secondary' }, t('common.cancel'));
      confirm.addEventListener('click', () => {
        confirm.disabled = true;
        ctx.api
          .post<unknown>(`/api/v1/gateways/${encodeURIComponent(id)}/revoke`, {})
          .then(() => void load())
          .catch((e: unknown) => {
            confirm.disabled = false;
            error.textContent = errorMessage(e);
          });
      });
      cancel.addEventListener('click', idle);
      mount(slot, confirm, ' ', cancel, error);
      confirm.focus();
    };
    const idle = (): void => {
      const button = h('button', { type: 'button', class: 'btn btn-small btn-secondary', 'data-testid': 'revoke' }, t('gw.revoke'));
      button.addEventListener('click', ask);
      mount(slot, button);
    };
    idle();
    return slot;
  };

  const renderPending = (items: PendingEnrollment[]): void => {
    const lang = getLang();
    mount(
      pending,
      h('h2', null, t('enroll.pending')),
      items.length === 0
        ? h('p', { class: 'muted' }, t('enroll.noPending'))
        : h(
            'ul',
            { class: 'plain-list' },
            ...items.map((p) =>
              h(
                'li',
                { 'data-testid': 'enroll-pending-item', 'data-gateway': p.gateway },
                h('code', null, p.gateway),
                ' — ',
                t('enroll.pendingUntil', { when: formatRelative(parseMillis(p.expires_at), now(), lang), by: p.created_by }),
              ),
            ),
          ),
    );
  };

  const loadPending = async (): Promise<void> => {
    try {
      const resp = await ctx.api.get<Items<PendingEnrollment>>('/api/v1/gateways/enrollments');
      if (!disposed) renderPending(resp.items);
    } catch (e) {
      if (!disposed) mount(pending, h('p', { class: 'form-error', role: 'alert' }, errorMessage(e)));
    }
  };
  if (admin) void loadPending();

  const renderSummary = (): void => {
    const n = now();
    let online = 0;
    let offline = 0;
    let revoked = 0;
    for (const g of gateways.values()) {
      const s = gatewayStatus(g, n);
      if (s === 'online') online += 1;
      else if (s === 'offline') offline += 1;
      else revoked += 1;
    }
    summary.textContent = t('gw.summary', { online, offline, revoked });
  };

  const renderAll = (): void => {
    rows.clear();
    const sorted = [...gateways.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    if (sorted.length === 0) {
      mount(tbody, emptyRow(COLUMNS, t('gw.empty')));
    } else {
      mount(
        tbody,
        ...sorted.map((g) => {
          const row = renderRow(g);
          rows.set(g.id, row);
          return row;
        }),
      );
    }
    renderSummary();
  };

  const dirty = new Set<string>();
  const flush = (): void => {
    for (const id of dirty) {
      const g = gateways.get(id);
      const old = rows.get(id);
      if (!g) continue;
      if (!old) {
        renderAll();
        dirty.clear();
        return;
      }
      const row = renderRow(g);
      old.replaceWith(row);
      rows.set(id, row);
    }
    dirty.clear();
    renderSummary();
  };

  const unsubscribe = ctx.live.subscribe('gateways', { stream: 'gateways' }, (msg) => {
    if (msg.type !== 'gateway') return;
    gateways.set(msg.gateway.id, msg.gateway);
    dirty.add(msg.gateway.id);
    ctx.frames.schedule('gw-flush', flush);
  });

  // Online/offline and relative times change with time alone.
  const timer = window.setInterval(() => {
    if (disposed) return;
    const n = now();
    for (const [id, g] of gateways) {
      const row = rows.get(id);
      if (row && row.dataset['status'] !== gatewayStatus(g, n)) dirty.add(id);
    }
    if (dirty.size) ctx.frames.schedule('gw-flush', flush);
    refreshRelativeTimes(root, n);
  }, 10_000);

  const load = async (): Promise<void> => {
    mount(status, loadingBox());
    try {
      const resp = await ctx.api.get<Items<Gateway>>('/api/v1/gateways');
      if (disposed) return;
      for (const g of resp.items) {
        // A live copy that arrived meanwhile is at least as new.
        if (!dirty.has(g.id) || !gateways.has(g.id)) gateways.set(g.id, g);
      }
      mount(status);
      renderAll();
    } catch (e) {
      if (disposed) return;
      mount(status, errorBox(e, () => void load()));
    }
  };
  void load();

  return () => {
    disposed = true;
    window.clearInterval(timer);
    ctx.frames.cancel('gw-');
    unsubscribe();
  };
};

