// The sign-in form: paste an API token. It is checked with GET /api/v1/me before use.

import { h, mount } from '../dom';
import { t } from '../i18n';
import { looksLikeToken } from '../session';

export interface LoginOptions {
  /** A message to show (why the user is here). */
  message?: string | null;
  /** Checks and uses the token; resolves to an error message, or null on success. */
  submit: (token: string) => Promise<string | null>;
  /** Shown when the stored token could not be checked (network): try it again. */
  retry?: (() => void) | null;
}

export function renderLogin(root: HTMLElement, opts: LoginOptions): void {
  const input = h('input', {
    id: 'login-token',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    autocapitalize: 'off',
    required: true,
    'data-testid': 'login-token',
    'aria-describedby': 'login-help login-error',
  });
  const error = h(
    'p',
    { id: 'login-error', class: 'form-error', role: 'alert', 'data-testid': 'login-error' },
    opts.message ?? '',
  );
  const submit = h('button', { type: 'submit', class: 'btn', 'data-testid': 'login-submit' }, t('auth.submit'));
  const form = h(
    'form',
    { class: 'login-form panel', 'aria-labelledby': 'login-title', novalidate: true },
    h('h1', { id: 'login-title', tabindex: -1 }, t('auth.title')),
    h('p', { id: 'login-help', class: 'muted' }, t('auth.intro')),
    h('label', { for: 'login-token' }, t('auth.tokenLabel')),
    input,
    error,
    h(
      'div',
      { class: 'form-buttons' },
      submit,
      opts.retry
        ? h('button', { type: 'button', class: 'btn btn-secondary', onclick: () => opts.retry?.() }, t('common.retry'))
        : null,
    ),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!looksLikeToken(token)) {
      error.textContent = t('auth.malformed');
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    input.removeAttribute('aria-invalid');
    submit.disabled = true;
    error.textContent = t('auth.checking');
    void opts.submit(token).then((message) => {
      submit.disabled = false;
      if (message) {
        error.textContent = message;
        input.setAttribute('aria-invalid', 'true');
        input.select();
        input.focus();
      }
    });
  });
  mount(root, h('main', { id: 'main', class: 'login-main' }, form));
  input.focus();
}
