// The active-alarm feed: newest first, severity and state badges, acknowledge and clear (with
// an optional comment) for operators and admins. Items are keyed by alarm id and updated in
// place, so a live update never throws away a comment being typed or the keyboard focus. An
// alarm about a pooled sensor names its operator (item `data-subject="pooled"`, `data-operator`).

import { ConflictError, type AlarmStore } from './alarmStore';
import { errorMessage } from './api';
import { hasRole, type Ctx } from './context';
import { h, mount, setAttr } from './dom';
import { t } from './i18n';
import { sensorHref } from './routes';
import type { Alarm } from './types';
import { errorBox, loadingBox, relTime, severityBadge, stateBadge, uid } from './ui';

export function subjectText(a: Alarm): string {
  const s = a.subject;
  switch (s.kind) {
    case 'series':
      return t('alarm.subjectSeries', { sensor: s.sensor, metric: s.metric });
    case 'pooled':
      return `${t('alarm.subjectSeries', { sensor: s.sensor, metric: s.metric })} · ${t('sup.pooledBy', { operator: s.operator })}`;
    case 'gateway':
      return t('alarm.subjectGateway', { gateway: s.gateway });
    case 'gap':
      return t('alarm.subjectGap', { gateway: s.gateway, first: s.first_seq, last: s.last_seq });
    case 'security':
      return t('alarm.subjectSecurity', {
        event: t(`secKind.${s.event}`),
        gateway: s.gateway ?? '—',
      });
  }
}

type Action = 'acknowledge' | 'clear';

interface Item {
  li: HTMLLIElement;
  head: HTMLElement;
  message: HTMLElement;
  meta: HTMLElement;
  actions: HTMLElement;
  form: HTMLFormElement;
  comment: HTMLInputElement;
  confirm: HTMLButtonElement;
  error: HTMLElement;
  alarm: Alarm;
  actionsKey: string;
  pendingAction: Action | null;
}

export interface AlarmFeed {
  el: HTMLElement;
  count: HTMLElement;
  update(): void;
}

const MAX_SHOWN = 200;

export function createAlarmFeed(ctx: Ctx, store: AlarmStore): AlarmFeed {
  const canAct = hasRole(ctx.me, 'operator');
  const list = h('ul', { class: 'alarm-feed', 'data-testid': 'alarm-feed' });
  const status = h('div', { class: 'feed-status' });
  const more = h('p', { class: 'muted', hidden: true });
  const count = h('span', { class: 'count-badge', 'data-testid': 'alarm-count' }, '0');
  const el = h('div', null, status, list, more);
  const items = new Map<number, Item>();

  const renderActions = (item: Item): void => {
    const a = item.alarm;
    const parts: HTMLElement[] = [];
    if (a.subject.kind === 'series') {
      parts.push(
        h(
          'a',
          {
            class: 'btn btn-small btn-ghost',
            href: sensorHref(a.subject.sensor),
            'aria-label': `${t('alarm.sensorChart')}: ${subjectText(a)}`,
          },
          t('alarm.sensorChart'),
        ),
      );
    }
    if (canAct && a.state === 'open') {
      parts.push(
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-small',
            'data-testid': 'alarm-ack',
            'aria-expanded': 'false',
            'aria-describedby': item.message.id,
            onclick: () => openForm(item, 'acknowledge'),
          },
          t('alarm.acknowledge'),
        ),
      );
    }
    if (canAct && (a.state === 'open' || a.state === 'acknowledged')) {
      parts.push(
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-small btn-secondary',
            'data-testid': 'alarm-clear',
            'aria-expanded': 'false',
            'aria-describedby': item.message.id,
            onclick: () => openForm(item, 'clear'),
          },
          t('alarm.clear'),
        ),
      );
    }
    mount(item.actions, ...parts);
  };

  const renderBody = (item: Item): void => {
    const a = item.alarm;
    setAttr(item.li, 'data-state', a.state);
    setAttr(item.li, 'data-severity', a.severity);
    setAttr(item.li, 'data-subject', a.subject.kind);
    setAttr(item.li, 'data-operator', a.subject.kind === 'pooled' ? a.subject.operator : null);
    item.li.className = `alarm-item sev-${a.severity} state-${a.state}`;
    mount(item.head, severityBadge(a.severity), stateBadge(a.state), h('strong', { class: 'alarm-rule' }, a.rule_name));
    mount(item.message, a.message);
    const meta: (HTMLElement | string)[] = [h('span', null, subjectText(a))];
    if (a.zone) meta.push(h('span', null, t('alarm.zone', { zone: a.zone })));
    meta.push(h('span', null, t('alarm.opened'), ' ', relTime(a.opened_at, () => ctx.clock.now())));
    if (a.occurrences > 1) meta.push(h('span', null, t('alarm.occurrences', { n: a.occurrences })));
    if (a.acknowledged) {
      meta.push(
        h(
          'span',
          null,
          t('alarm.acknowledgedBy', { name: a.acknowledged.by?.name ?? '—' }),
          ' ',
          relTime(a.acknowledged.at, () => ctx.clock.now()),
          a.acknowledged.comment ? ` — “${a.acknowledged.comment}”` : '',
        ),
      );
    }
    mount(item.meta, ...meta);
    const key = `${a.state}`;
    if (key !== item.actionsKey) {
      item.actionsKey = key;
      const focusedInside = item.actions.contains(document.activeElement);
      renderActions(item);
      if (focusedInside) (item.actions.querySelector('button, a') as HTMLElement | null)?.focus();
      if (item.pendingAction === 'acknowledge' && a.state !== 'open') closeForm(item);
    }
  };

  const openForm = (item: Item, action: Action): void => {
    item.pendingAction = action;
    item.form.hidden = false;
    item.confirm.textContent = t(action === 'acknowledge' ? 'alarm.confirmAcknowledge' : 'alarm.confirmClear');
    item.confirm.dataset['action'] = action;
    item.actions
      .querySelectorAll<HTMLElement>('button[aria-expanded]')
      .forEach((b) =>
        b.setAttribute(
          'aria-expanded',
          String(b.dataset['testid'] === (action === 'acknowledge' ? 'alarm-ack' : 'alarm-clear')),
        ),
      );
    item.comment.focus();
  };

  const closeForm = (item: Item): void => {
    item.pendingAction = null;
    item.form.hidden = true;
    item.comment.value = '';
    item.actions.querySelectorAll<HTMLElement>('button[aria-expanded]').forEach((b) => b.setAttribute('aria-expanded', 'false'));
  };

  const submit = async (item: Item): Promise<void> => {
    const action = item.pendingAction;
    if (!action) return;
    item.confirm.disabled = true;
    item.error.textContent = '';
    try {
      const comment = item.comment.value.trim() || null;
      if (action === 'acknowledge') await store.acknowledge(item.alarm.id, comment);
      else await store.clear(item.alarm.id, comment);
      // The store's change event announces the new state.
      closeForm(item);
    } catch (e) {
      item.error.textContent =
        e instanceof ConflictError ? t('alarm.conflict') : t('alarm.failed', { detail: errorMessage(e) });
    } finally {
      item.confirm.disabled = false;
    }
  };

  const createItem = (alarm: Alarm): Item => {
    const commentId = uid('comment');
    const comment = h('input', {
      id: commentId,
      type: 'text',
      maxlength: 1000,
      autocomplete: 'off',
      'data-testid': 'alarm-comment',
    });
    const confirm = h('button', { type: 'submit', class: 'btn btn-small', 'data-testid': 'alarm-confirm' });
    const form = h(
      'form',
      { class: 'alarm-form', hidden: true },
      h('label', { for: commentId }, t('alarm.comment')),
      comment,
      h(
        'div',
        { class: 'form-buttons' },
        confirm,
        h(
          'button',
          { type: 'button', class: 'btn btn-small btn-ghost', onclick: () => closeForm(item) },
          t('common.cancel'),
        ),
      ),
    );
    const item: Item = {
      li: h('li', { 'data-testid': 'alarm-item', 'data-alarm-id': String(alarm.id) }),
      head: h('div', { class: 'alarm-head' }),
      message: h('p', { class: 'alarm-message', id: uid('alarm-message') }),
      meta: h('p', { class: 'alarm-meta' }),
      actions: h('div', { class: 'alarm-actions' }),
      form,
      comment,
      confirm,
      error: h('p', { class: 'form-error', role: 'alert' }),
      alarm,
      actionsKey: '',
      pendingAction: null,
    };
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void submit(item);
    });
    form.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        closeForm(item);
        (item.actions.querySelector('button') as HTMLElement | null)?.focus();
      }
    });
    item.li.append(item.head, item.message, item.meta, item.actions, form, item.error);
    renderBody(item);
    return item;
  };

  const update = (): void => {
    if (!store.loaded) {
      mount(status, loadingBox());
      return;
    }
    if (store.error) mount(status, errorBox(store.error, () => void store.refresh()));
    else mount(status);
    const active = store.active();
    count.textContent = String(active.length);
    const shown = active.slice(0, MAX_SHOWN);
    const keep = new Set(shown.map((a) => a.id));
    for (const [id, item] of items) {
      if (!keep.has(id)) {
        item.li.remove();
        items.delete(id);
      }
    }
    let prev: Element | null = null;
    for (const a of shown) {
      let item = items.get(a.id);
      if (!item) {
        item = createItem(a);
        items.set(a.id, item);
      } else if (item.alarm !== a) {
        item.alarm = a;
        renderBody(item);
      }
      const expected: Element | null = prev ? prev.nextElementSibling : list.firstElementChild;
      if (expected !== item.li) list.insertBefore(item.li, expected);
      prev = item.li;
    }
    if (active.length === 0) {
      if (!list.querySelector('.empty')) list.append(h('li', { class: 'empty muted' }, t('sup.alarmsEmpty')));
    } else {
      list.querySelector('.empty')?.remove();
    }
    more.hidden = active.length <= MAX_SHOWN;
    more.textContent = `+${active.length - MAX_SHOWN}`;
  };

  update();
  return { el, count, update };
}
