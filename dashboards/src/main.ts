// Entry point: language, sign-in (pasted token or `#token=` link), then the shell (navigation,
// connection status, language switch, sign-out) and the hash router that mounts one page at a
// time. One live connection and one alarm store live as long as the session.

import './styles.css';

import { AlarmStore } from './alarmStore';
import { Api, ApiError, errorMessage } from './api';
import { registryLoader, type Ctx, type Page } from './context';
import { h, mount, setAttr, setText } from './dom';
import { FrameBatcher } from './frame';
import { detectLang, getLang, setLang, t, tn, type Lang, type MessageKey } from './i18n';
import { LiveClient, liveUrl, type ConnectionStatus } from './live';
import { agreementsPage } from './pages/agreements';
import { auditPage } from './pages/audit';
import { gatewaysPage } from './pages/gateways';
import { renderLogin } from './pages/login';
import { rulesPage } from './pages/rules';
import { securityPage } from './pages/security';
import { sensorPage } from './pages/sensor';
import { poolingPage } from './pages/pooling';
import { sharedPage } from './pages/shared';
import { supervisionPage } from './pages/supervision';
import { parseRoute, routeHash, tokenFromHash, type Route } from './routes';
import {
  clearToken,
  LANG_KEY,
  loadToken,
  safeLocalStorage,
  safeSessionStorage,
  saveToken,
} from './session';
import { Clock } from './time';
import type { DashboardConfig, Me } from './types';

const storage = safeSessionStorage();
const prefs = safeLocalStorage();
let memoryToken: string | null = null;
const currentToken = (): string | null => loadToken(storage) ?? memoryToken;

const appRoot = document.getElementById('app') as HTMLElement;
let config: DashboardConfig = { tile_url: null, tile_attribution: null, version: '' };
let session: Session | null = null;

function rememberToken(token: string): void {
  memoryToken = token;
  saveToken(storage, token);
}

function forgetToken(): void {
  memoryToken = null;
  clearToken(storage);
}

type Check = { me: Me } | { refused: true } | { error: string };

async function checkToken(token: string): Promise<Check> {
  const probe = new Api({ token: () => token });
  try {
    const me = await probe.get<Me>('/api/v1/me', undefined, { quiet401: true });
    if (!me || (me.scope !== 'tenant' && me.scope !== 'platform' && me.scope !== 'partner')) {
      return { error: 'unexpected answer from /api/v1/me' };
    }
    return { me };
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) return { refused: true };
    return { error: errorMessage(e) };
  }
}

function showLogin(message: string | null, retry: (() => void) | null = null): void {
  session?.stop();
  session = null;
  document.title = `${t('auth.title')} · ${t('app.name')}`;
  renderLogin(appRoot, {
    message,
    retry,
    submit: async (token) => {
      const result = await checkToken(token);
      if ('me' in result) {
        rememberToken(token);
        startSession(result.me);
        return null;
      }
      if ('refused' in result) return t('auth.refused');
      return t('auth.unreachable', { detail: result.error });
    },
  });
}

/** Signs in with a stored token, or one handed over in a `#token=` link (`fresh`). */
async function signIn(token: string, fresh: boolean): Promise<void> {
  const result = await checkToken(token);
  if ('me' in result) {
    startSession(result.me);
  } else if ('refused' in result) {
    forgetToken();
    showLogin(t(fresh ? 'auth.refused' : 'auth.expired'));
  } else {
    showLogin(t('auth.unreachable', { detail: result.error }), () => void signIn(token, fresh));
  }
}

function startSession(me: Me): void {
  session?.stop();
  session = new Session(me);
  session.start();
}

function applyLang(lang: Lang): void {
  setLang(lang);
  document.documentElement.lang = lang;
}

const NAV: { route: Route['name']; key: MessageKey; testid: string }[] = [
  { route: 'supervision', key: 'nav.supervision', testid: 'nav-supervision' },
  { route: 'gateways', key: 'nav.gateways', testid: 'nav-gateways' },
  { route: 'security', key: 'nav.security', testid: 'nav-security' },
  { route: 'rules', key: 'nav.rules', testid: 'nav-rules' },
  { route: 'agreements', key: 'nav.agreements', testid: 'nav-agreements' },
  { route: 'shared', key: 'nav.shared', testid: 'nav-shared' },
  { route: 'pooling', key: 'nav.pooling', testid: 'nav-pooling' },
  { route: 'audit', key: 'nav.audit', testid: 'nav-audit' },
];

/** The only page of a token that is not a tenant's (platform operators, partners). */
function onlyPage(me: Me): Route['name'] | null {
  if (me.scope === 'platform') return 'security';
  if (me.scope === 'partner') return 'shared';
  return null;
}

class Session {
  private readonly api: Api;
  private readonly live: LiveClient;
  private readonly frames = new FrameBatcher();
  private readonly clock = new Clock();
  private readonly alarms: AlarmStore | null;
  private readonly ctx: Ctx;
  private pageCleanup: (() => void) | null = null;
  private main: HTMLElement | null = null;
  private announcer: HTMLElement | null = null;
  private statusEl: HTMLElement | null = null;
  private alarmBadge: HTMLElement | null = null;
  private readonly cleanups: (() => void)[] = [];
  private firstRoute = true;
  private stopped = false;

  constructor(private readonly me: Me) {
    this.api = new Api({ token: currentToken, onUnauthorized: () => this.expire() });
    this.live = new LiveClient({
      url: liveUrl(location),
      token: currentToken,
      maxFps: 5,
      onUnauthorized: () => this.expire(),
    });
    this.alarms = me.scope === 'tenant' ? new AlarmStore(this.api, this.live, this.frames) : null;
    this.ctx = {
      api: this.api,
      live: this.live,
      me,
      config,
      clock: this.clock,
      frames: this.frames,
      alarms: this.alarms,
      registry: registryLoader(this.api),
      announce: (text) => this.announce(text),
      connected: () => this.live.status === 'connected',
    };
  }

  start(): void {
    this.cleanups.push(
      this.live.onHello((hello) => {
        if (hello.server_time) this.clock.sync(hello.server_time);
      }),
      this.live.onStatus(() => this.renderStatus()),
    );
    if (this.alarms) {
      this.cleanups.push(this.alarms.onChange(() => this.renderAlarmBadge()));
    }
    const onHash = (): void => this.route();
    const onOnline = (): void => this.live.reconnectNow();
    window.addEventListener('hashchange', onHash);
    window.addEventListener('online', onOnline);
    this.cleanups.push(() => {
      window.removeEventListener('hashchange', onHash);
      window.removeEventListener('online', onOnline);
    });
    const tick = window.setInterval(() => this.renderStatus(), 1000);
    this.cleanups.push(() => window.clearInterval(tick));
    this.live.start();
    this.alarms?.start();
    this.renderShell();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.pageCleanup?.();
    this.pageCleanup = null;
    for (const c of this.cleanups.splice(0)) c();
    this.alarms?.stop();
    this.live.stop();
  }

  /** The token was refused (401 on REST, 4401 on the socket): back to the sign-in form. */
  expire(): void {
    if (this.stopped) return;
    forgetToken();
    showLogin(t('auth.expired'));
  }

  logout(): void {
    forgetToken();
    showLogin(t('auth.signedOut'));
  }

  private pendingAnnouncements: string[] = [];

  /** Announces politely; messages of the same moment are read together. */
  private announce(text: string): void {
    const el = this.announcer;
    if (!el) return;
    this.pendingAnnouncements.push(text);
    if (this.pendingAnnouncements.length > 1) return;
    el.textContent = '';
    window.setTimeout(() => {
      el.textContent = this.pendingAnnouncements.join(' ');
      this.pendingAnnouncements = [];
    }, 100);
  }

  private renderShell(): void {
    this.pageCleanup?.();
    this.pageCleanup = null;
    const me = this.me;
    const only = onlyPage(me);
    const items = only ? NAV.filter((n) => n.route === only) : NAV;
    this.alarmBadge = this.alarms ? h('span', { class: 'nav-badge', hidden: true, 'data-testid': 'nav-alarm-count' }) : null;
    const nav = h(
      'nav',
      { class: 'mainnav', 'aria-label': t('nav.main') },
      h(
        'ul',
        null,
        ...items.map((n) =>
          h(
            'li',
            null,
            h(
              'a',
              { href: routeHash({ name: n.route } as Route), 'data-testid': n.testid, 'data-route': n.route },
              t(n.key),
              n.route === 'supervision' ? this.alarmBadge : null,
            ),
          ),
        ),
      ),
    );
    this.statusEl = h(
      'div',
      { class: 'conn', 'data-testid': 'connection-status', 'data-status': this.live.status },
      h('span', { class: 'conn-dot', 'aria-hidden': 'true' }),
      h('span', { class: 'sr-only' }, `${t('conn.label')}: `),
      h('span', { class: 'conn-text', role: 'status' }),
      h('span', { class: 'conn-retry muted', 'aria-hidden': 'true' }),
      h(
        'button',
        { type: 'button', class: 'btn btn-small btn-ghost conn-retry-now', hidden: true, onclick: () => this.live.reconnectNow() },
        t('conn.retryNow'),
      ),
    );
    const who =
      me.scope === 'tenant'
        ? `${me.tenant.name} · ${me.name} (${t(`role.${me.role}`)})`
        : me.scope === 'partner'
          ? `${me.partner.name} · ${me.name} (${t('scope.partner')})`
          : `${me.name} (${t('scope.platform')})`;
    const other: Lang = getLang() === 'fr' ? 'en' : 'fr';
    this.main = h('main', { id: 'main', class: 'content', tabindex: -1 });
    this.announcer = h('div', { class: 'sr-only', 'aria-live': 'polite', 'aria-atomic': 'true', 'data-testid': 'announcer' });
    mount(
      appRoot,
      h(
        'a',
        {
          class: 'skip-link',
          href: '#main',
          onclick: (ev: Event) => {
            ev.preventDefault();
            (this.main?.querySelector('h1') ?? this.main)?.focus();
          },
        },
        t('nav.skip'),
      ),
      h(
        'header',
        { class: 'topbar' },
        h('div', { class: 'brand' }, h('span', { class: 'brand-name' }, t('app.name')), h('span', { class: 'brand-sub' }, t('app.tagline'))),
        nav,
        h(
          'div',
          { class: 'topbar-right' },
          this.statusEl,
          h('span', { class: 'who', title: t('auth.who', { name: me.name }), 'data-testid': 'who' }, who),
          h(
            'button',
            {
              type: 'button',
              class: 'btn btn-small btn-ghost',
              lang: other,
              'aria-label': t('lang.switchLabel'),
              'data-testid': 'lang-switch',
              onclick: () => this.switchLang(other),
            },
            t('lang.switch'),
          ),
          h(
            'button',
            { type: 'button', class: 'btn btn-small btn-secondary', 'data-testid': 'logout', onclick: () => this.logout() },
            t('auth.logout'),
          ),
        ),
      ),
      this.main,
      h('footer', { class: 'footer muted small' }, t('app.name'), config.version ? ` · ${t('app.version', { version: config.version })}` : ''),
      this.announcer,
    );
    this.renderStatus();
    this.renderAlarmBadge();
    this.route();
  }

  private switchLang(lang: Lang): void {
    applyLang(lang);
    try {
      prefs?.setItem(LANG_KEY, lang);
    } catch {
      // ignore
    }
    this.firstRoute = true;
    this.renderShell();
    (appRoot.querySelector('[data-testid="lang-switch"]') as HTMLElement | null)?.focus();
  }

  private renderStatus(): void {
    const el = this.statusEl;
    if (!el) return;
    const status: ConnectionStatus = this.live.status;
    setAttr(el, 'data-status', status);
    const text = el.querySelector('.conn-text') as HTMLElement;
    const retry = el.querySelector('.conn-retry') as HTMLElement;
    const retryNow = el.querySelector('.conn-retry-now') as HTMLButtonElement;
    setText(text, t(`conn.${status}`));
    const next = this.live.nextRetryAt;
    const waiting = (status === 'reconnecting' || status === 'offline') && next !== null;
    setText(retry, waiting ? t('conn.retryIn', { s: Math.max(0, Math.ceil((next - Date.now()) / 1000)) }) : '');
    retryNow.hidden = !waiting;
  }

  private renderAlarmBadge(): void {
    const badge = this.alarmBadge;
    if (!badge || !this.alarms) return;
    const n = this.alarms.active().length;
    badge.hidden = n === 0;
    setText(badge, String(n));
    setAttr(badge, 'aria-label', tn('nav.activeAlarms', n));
  }

  private route(): void {
    if (this.stopped || !this.main) return;
    let route = parseRoute(location.hash);
    if (route.name === 'login') {
      location.replace('#/');
      return;
    }
    const only = onlyPage(this.me);
    if (only && route.name !== only) {
      route = { name: only } as Route;
      history.replaceState(null, '', routeHash(route));
    }
    this.pageCleanup?.();
    this.pageCleanup = null;
    this.main.replaceChildren();
    const page = pageFor(route);
    try {
      this.pageCleanup = page(this.main, this.ctx);
    } catch (e) {
      console.error(e);
      mount(this.main, h('p', { class: 'error-box', role: 'alert' }, errorMessage(e)));
    }
    appRoot.querySelectorAll<HTMLAnchorElement>('.mainnav a').forEach((a) => {
      const active = a.dataset['route'] === route.name || (route.name === 'sensor' && a.dataset['route'] === 'supervision');
      setAttr(a, 'aria-current', active ? 'page' : null);
    });
    const title = this.main.querySelector('h1')?.textContent ?? t('app.name');
    document.title = `${title} · ${t('app.name')}`;
    if (!this.firstRoute) (this.main.querySelector('h1') as HTMLElement | null)?.focus({ preventScroll: false });
    this.firstRoute = false;
  }
}

function pageFor(route: Route): Page {
  switch (route.name) {
    case 'supervision':
      return supervisionPage;
    case 'sensor':
      return sensorPage(route.id);
    case 'gateways':
      return gatewaysPage;
    case 'security':
      return securityPage;
    case 'rules':
      return rulesPage;
    case 'agreements':
      return agreementsPage;
    case 'shared':
      return sharedPage;
    case 'pooling':
      return poolingPage;
    case 'audit':
      return auditPage;
    case 'login':
    case 'notFound':
      return notFoundPage;
  }
}

const notFoundPage: Page = (root) => {
  mount(
    root,
    h('h1', { class: 'page-title', tabindex: -1 }, t('route.notFound')),
    h('p', null, t('route.notFoundText')),
    h('p', null, h('a', { href: '#/' }, t('route.home'))),
  );
  return () => undefined;
};

/** Takes a `#token=` from the address bar (and removes it at once); returns it. */
function takeHandedToken(): string | null {
  const handed = tokenFromHash(location.hash);
  if (handed) {
    rememberToken(handed);
    // The token must not stay in the address bar, the history or a bookmark.
    history.replaceState(null, '', `${location.pathname}${location.search}#/`);
  }
  return handed;
}

async function boot(): Promise<void> {
  applyLang(detectLang(navigator.languages, prefs?.getItem(LANG_KEY) ?? null));
  const handed = takeHandedToken();
  // A `#token=` link opened in this tab later: registered before any session's router, so
  // that the router never sees the token.
  window.addEventListener('hashchange', () => {
    const later = takeHandedToken();
    if (later) {
      session?.stop();
      session = null;
      void signIn(later, true);
    }
  });
  const anonymous = new Api({ token: () => null });
  try {
    const c = await anonymous.get<DashboardConfig>('/api/v1/dashboard-config', undefined, { anonymous: true });
    if (c && typeof c === 'object') config = { ...config, ...c };
  } catch {
    // No configuration endpoint: no tile layer.
  }
  const token = currentToken();
  if (!token) showLogin(null);
  else await signIn(token, handed !== null);
}

void boot();
