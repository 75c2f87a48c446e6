// Putting a gateway in service from the Gateways page (tenant admins): a form that creates the
// gateway and shows its one-time enrollment token once, with the command to run on the
// gateway; and the check of a gateway id before it is sent. See docs/gateway-identity.md.

import type { Api } from './api';
import { errorMessage } from './api';
import { h, mount } from './dom';
import { FieldErrors } from './formFields';
import { formatDateTime } from './format';
import { getLang, t } from './i18n';
import { parseMillis } from './time';
import type { EnrollmentTicket } from './types';

const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Longest life of a token, as the platform allows it (30 days), in hours. */
export const MAX_TOKEN_HOURS = 30 * 24;

export type EnrollField = 'id' | 'hours';

/** Validates the form: a gateway id and a token life in hours (1..=720). */
export function enrollBody(
  id: string,
  hours: string,
): { ok: true; body: { id: string; ttl_s: number } } | { ok: false; errors: EnrollField[] } {
  const errors: EnrollField[] = [];
  const gateway = id.trim();
  if (!SLUG.test(gateway)) errors.push('id');
  const h = hours.trim();
  const n = /^\d+$/.test(h) ? Number(h) : Number.NaN;
  if (!(n >= 1 && n <= MAX_TOKEN_HOURS)) errors.push('hours');
  return errors.length ? { ok: false, errors } : { ok: true, body: { id: gateway, ttl_s: n * 3600 } };
}

/** The command an integrator runs on the gateway. */
export function enrollCommand(ticket: EnrollmentTicket): string {
  const url = ticket.enroll_url ?? 'https://PLATFORM:8443';
  return `beffroi-agent enroll --url ${url} --token ${ticket.token}`;
}

/** The "add a gateway" panel; `created` is called after each success (to reload the list). */
export function enrollPanel(api: Api, created: () => void): HTMLElement {
  const errors = new FieldErrors<EnrollField>();
  const idInput = h('input', { type: 'text', maxlength: 63, 'data-testid': 'enroll-id', autocomplete: 'off' });
  const hoursInput = h('input', { type: 'text', inputmode: 'numeric', value: '24', 'data-testid': 'enroll-hours' });
  const general = h('p', { class: 'form-error', role: 'alert' });
  const result = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'btn', 'data-testid': 'enroll-submit' }, t('enroll.create'));
  const form = h(
    'form',
    { class: 'panel enroll-form', novalidate: true, 'data-testid': 'enroll-form' },
    h('h2', null, t('enroll.title')),
    h('p', { class: 'help' }, t('enroll.intro')),
    h(
      'div',
      { class: 'form-grid' },
      errors.field('id', t('enroll.id'), idInput, t('enroll.idHelp')),
      errors.field('hours', t('enroll.hours'), hoursInput, t('enroll.hoursHelp', { max: MAX_TOKEN_HOURS })),
    ),
    general,
    h('div', { class: 'form-buttons' }, submit),
    result,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const checked = enrollBody(idInput.value, hoursInput.value);
    if (!checked.ok) {
      errors.show(
        checked.errors.map((field) => ({ field, text: t(field === 'id' ? 'enroll.err.id' : 'enroll.err.hours', { max: MAX_TOKEN_HOURS }) })),
        general,
      );
      return;
    }
    errors.show([], general);
    submit.disabled = true;
    api
      .post<EnrollmentTicket>('/api/v1/gateways', checked.body)
      .then((ticket) => {
        mount(result, ticketBox(ticket));
        idInput.value = '';
        created();
      })
      .catch((e: unknown) => errors.show([{ field: null, text: errorMessage(e) }], general))
      .finally(() => {
        submit.disabled = false;
      });
  });
  return form;
}

/** The token, shown once, with the command to run and a copy button. */
function ticketBox(ticket: EnrollmentTicket): HTMLElement {
  const command = enrollCommand(ticket);
  const copied = h('span', { class: 'muted', role: 'status' });
  const copy = h('button', { type: 'button', class: 'btn btn-secondary', 'data-testid': 'enroll-copy' }, t('enroll.copy'));
  copy.addEventListener('click', () => {
    navigator.clipboard
      .writeText(command)
      .then(() => {
        copied.textContent = t('enroll.copied');
      })
      .catch(() => {
        copied.textContent = t('enroll.copyFailed');
      });
  });
  return h(
    'div',
    { class: 'token-box', 'data-testid': 'enroll-ticket', 'data-gateway': ticket.gateway },
    h('p', null, h('strong', null, t('enroll.once', { gateway: ticket.gateway }))),
    h('pre', { class: 'command', 'data-testid': 'enroll-command', tabindex: 0 }, command),
    h('p', { class: 'help' }, t('enroll.expires', { when: formatDateTime(parseMillis(ticket.expires_at), getLang()) })),
    h('div', { class: 'form-buttons' }, copy, copied),
  );
}
