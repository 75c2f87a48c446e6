// The one live connection of a tab (docs/live.md): authenticates with the first message,
// keeps the subscriptions the pages ask for (by id; subscribing again replaces), re-sends them
// all after a reconnect, reconnects by itself with jittered exponential backoff, and tells the
// page its status. No DOM here: the socket factory, timers and randomness are injected so the
// bookkeeping is unit-tested with fakes.

import type {
  HelloMessage,
  ServerMessage,
  SubscriptionMessage,
  SubscriptionSpec,
} from './types';

export type ConnectionStatus = 'connecting' | 'connected' | 'reconnecting' | 'offline';

/** What the client needs of a WebSocket (the browser's, or a fake in tests). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const defaultTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
  setInterval: (fn, ms) => globalThis.setInterval(fn, ms),
  clearInterval: (h) => globalThis.clearInterval(h as ReturnType<typeof setInterval>),
};

export interface BackoffOptions {
  /** First delay ceiling. */
  baseMs: number;
  /** Largest delay ceiling. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 30_000 };

/**
 * The delay before reconnect attempt `attempt` (0-based): "equal jitter" over an exponential
 * ceiling, `ceil/2 + random·ceil/2` with `ceil = min(max, base·2^attempt)`. Never zero (a
 * restarting server is not hammered) and never in lock-step across a wall of screens.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.max(0, Math.min(attempt, 30)));
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(ceiling / 2 + (r * ceiling) / 2);
}

/** Close codes after which the client reconnects (all but 4401 and its own close). */
export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_RETRYABLE = [1001, 1006, 1011, 4408] as const;

export function shouldReconnect(code: number): boolean {
  return code !== CLOSE_UNAUTHORIZED;
}

export interface LiveClientOptions {
  url: string;
  /** The bearer token; read at each connection (null: do not connect). */
  token: () => string | null;
  createSocket?: (url: string) => SocketLike;
  timers?: Timers;
  random?: () => number;
  now?: () => number;
  /** Frames per second asked of the server (`options.max_fps`). */
  maxFps?: number;
  backoff?: BackoffOptions;
  /** A ping is sent this often while connected. */
  pingIntervalMs?: number;
  /** No message at all for this long: the connection is taken as dead and replaced. */
  idleTimeoutMs?: number;
  /** A connection that lasted this long resets the backoff. */
  stableAfterMs?: number;
  /** Reconnect attempts after which the status reads `offline` (it still retries). */
  offlineAfterAttempts?: number;
  /** Called on close code 4401 (the token is refused): the client stops. */
  onUnauthorized?: () => void;
}

export type SubscriptionHandler = (msg: SubscriptionMessage) => void;
export type ControlHandler = (
  msg: Extract<ServerMessage, { type: 'subscribed' | 'unsubscribed' | 'error' | 'ended' }>,
) => void;

interface Subscription {
  spec: SubscriptionSpec;
  handler: SubscriptionHandler;
  onControl: ControlHandler | undefined;
}

const OPEN = 1;

export class LiveClient {
  private readonly opts: Required<Omit<LiveClientOptions, 'onUnauthorized' | 'createSocket'>> & {
    createSocket: (url: string) => SocketLike;
    onUnauthorized: (() => void) | undefined;
  };
  private readonly subs = new Map<string, Subscription>();
  private socket: SocketLike | null = null;
  private ready = false;
  private stopped = true;
  private attempt = 0;
  private everConnected = false;
  private connectedAt = 0;
  private lastMessageAt = 0;
  private retryTimer: unknown = null;
  private watchdog: unknown = null;
  private pingCounter = 0;
  private statusValue: ConnectionStatus = 'offline';
  private nextRetry: number | null = null;
  private helloValue: HelloMessage | null = null;
  private readonly statusListeners = new Set<(s: ConnectionStatus) => void>();
  private readonly helloListeners = new Set<(h: HelloMessage) => void>();

  constructor(options: LiveClientOptions) {
    this.opts = {
      url: options.url,
      token: options.token,
      createSocket:
        options.createSocket ?? ((url: string) => new WebSocket(url) as unknown as SocketLike),
      timers: options.timers ?? defaultTimers,
      random: options.random ?? Math.random,
      now: options.now ?? (() => Date.now()),
      maxFps: options.maxFps ?? 5,
      backoff: options.backoff ?? DEFAULT_BACKOFF,
      pingIntervalMs: options.pingIntervalMs ?? 20_000,
      idleTimeoutMs: options.idleTimeoutMs ?? 50_000,
      stableAfterMs: options.stableAfterMs ?? 30_000,
      offlineAfterAttempts: options.offlineAfterAttempts ?? 6,
      onUnauthorized: options.onUnauthorized,
    };
  }

  // ---- public API ----

  get status(): ConnectionStatus {
    return this.statusValue;
  }

  /** When the next reconnect attempt is due (client clock, ms), while reconnecting. */
  get nextRetryAt(): number | null {
    return this.nextRetry;
  }

  /** The server's `hello` of the current connection. */
  get hello(): HelloMessage | null {
    return this.helloValue;
  }

  /** When the last message of any kind arrived (client clock, ms; 0: never). */
  get lastFrameAt(): number {
    return this.lastMessageAt;
  }

  /** The ids of the subscriptions held (sent or waiting for the connection). */
  subscriptionIds(): string[] {
    return [...this.subs.keys()];
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.connect();
  }

  /** Closes the connection and forgets nothing: `start()` resumes every subscription. */
  stop(): void {
    this.stopped = true;
    this.clearRetry();
    this.teardown(1000, 'client stop');
    this.setStatus('offline');
  }

  /** Reconnects at once (the browser came back online, the user asked). */
  reconnectNow(): void {
    if (this.stopped || this.statusValue === 'connected' || this.statusValue === 'connecting') {
      return;
    }
    this.clearRetry();
    this.connect();
  }

  /** Subscribes, or replaces the subscription `id`. Returns a function that unsubscribes. */
  subscribe(
    id: string,
    spec: SubscriptionSpec,
    handler: SubscriptionHandler,
    onControl?: ControlHandler,
  ): () => void {
    const sub: Subscription = { spec, handler, onControl };
    this.subs.set(id, sub);
    if (this.ready) this.sendSubscribe(id, spec);
    return () => {
      if (this.subs.get(id) === sub) this.unsubscribe(id);
    };
  }

  unsubscribe(id: string): void {
    if (!this.subs.delete(id)) return;
    if (this.ready) this.send({ type: 'unsubscribe', id });
  }

  /** Forgets a subscription the server refused, without telling the server (it holds none). */
  forget(id: string): void {
    this.subs.delete(id);
  }

  onStatus(listener: (s: ConnectionStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  onHello(listener: (h: HelloMessage) => void): () => void {
    this.helloListeners.add(listener);
    return () => this.helloListeners.delete(listener);
  }

  // ---- connection ----

  private connect(): void {
    this.teardown(1000, 'reconnect');
    const token = this.opts.token();
    if (!token) {
      this.stopped = true;
      this.setStatus('offline');
      return;
    }
    this.nextRetry = null;
    this.setStatus(this.everConnected || this.attempt > 0 ? 'reconnecting' : 'connecting');
    let socket: SocketLike;
    try {
      socket = this.opts.createSocket(this.opts.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.lastMessageAt = this.opts.now();
      socket.send(JSON.stringify({ type: 'auth', token }));
      this.startWatchdog();
    };
    socket.onmessage = (ev) => {
      if (this.socket !== socket) return;
      this.receive(ev.data);
    };
    socket.onerror = () => {
      // A close event always follows; nothing to do here.
    };
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.handleClose(ev.code);
    };
  }

  private handleClose(code: number): void {
    const wasConnectedFor = this.ready ? this.opts.now() - this.connectedAt : 0;
    this.detach();
    if (this.stopped) {
      this.setStatus('offline');
      return;
    }
    if (!shouldReconnect(code)) {
      this.stopped = true;
      this.setStatus('offline');
      this.opts.onUnauthorized?.();
      return;
    }
    if (wasConnectedFor >= this.opts.stableAfterMs) this.attempt = 0;
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const delay = backoffDelay(this.attempt, this.opts.backoff, this.opts.random);
    this.attempt += 1;
    this.nextRetry = this.opts.now() + delay;
    this.setStatus(this.attempt >= this.opts.offlineAfterAttempts ? 'offline' : 'reconnecting');
    this.clearRetry();
    this.retryTimer = this.opts.timers.setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) this.connect();
    }, delay);
  }

  private receive(data: unknown): void {
    if (typeof data !== 'string') return;
    let msg: ServerMessage;
    try {
      msg = JSON.parse(data) as ServerMessage;
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return;
    this.lastMessageAt = this.opts.now();
    switch (msg.type) {
      case 'hello':
        this.onHelloMessage(msg);
        return;
      case 'readings':
      case 'buckets':
      case 'alarm':
      case 'security_event':
      case 'gateway': {
        const sub = this.subs.get(msg.sub);
        if (sub) sub.handler(msg);
        return;
      }
      case 'subscribed':
      case 'unsubscribed':
      case 'error': {
        const sub = msg.id === undefined ? undefined : this.subs.get(msg.id);
        if (sub?.onControl) sub.onControl(msg);
        else if (msg.type === 'error') console.warn('live:', msg.code, msg.detail);
        return;
      }
      case 'ended': {
        // The server stopped it (a grantee's agreement ended): it is not re-sent after a
        // reconnect; the page decides whether to subscribe again.
        const sub = this.subs.get(msg.id);
        if (!sub) return;
        this.subs.delete(msg.id);
        sub.onControl?.(msg);
        return;
      }
      default:
        return;
    }
  }

  private onHelloMessage(hello: HelloMessage): void {
    this.helloValue = hello;
    this.ready = true;
    this.everConnected = true;
    this.connectedAt = this.opts.now();
    this.nextRetry = null;
    this.setStatus('connected');
    for (const l of this.helloListeners) l(hello);
    this.send({ type: 'options', max_fps: this.opts.maxFps });
    for (const [id, sub] of this.subs) this.sendSubscribe(id, sub.spec, true);
  }

  private sendSubscribe(id: string, spec: SubscriptionSpec, snapshot?: boolean): void {
    const msg: Record<string, unknown> = { type: 'subscribe', id, stream: spec.stream };
    if (spec.filter !== undefined) msg['filter'] = spec.filter;
    if (spec.granularity !== undefined) msg['granularity'] = spec.granularity;
    if (spec.grantor !== undefined) msg['grantor'] = spec.grantor;
    if (spec.purpose !== undefined) msg['purpose'] = spec.purpose;
    const snap = snapshot ?? spec.snapshot;
    if (snap !== undefined) msg['snapshot'] = snap;
    this.send(msg);
  }

  private send(msg: object): void {
    const s = this.socket;
    if (!s || s.readyState !== OPEN) return;
    try {
      s.send(JSON.stringify(msg));
    } catch {
      // The close event will follow.
    }
  }

  private startWatchdog(): void {
    this.stopWatchdog();
    this.watchdog = this.opts.timers.setInterval(() => {
      if (!this.socket) return;
      if (this.opts.now() - this.lastMessageAt > this.opts.idleTimeoutMs) {
        // Half-open connection: the close handshake would never complete. Replace it now.
        const s = this.socket;
        this.handleClose(1006);
        try {
          s.close(4000, 'idle');
        } catch {
          // ignore
        }
        return;
      }
      if (this.ready) {
        this.pingCounter += 1;
        this.send({ type: 'ping', nonce: this.pingCounter });
      }
    }, this.opts.pingIntervalMs);
  }

  private stopWatchdog(): void {
    if (this.watchdog !== null) this.opts.timers.clearInterval(this.watchdog);
    this.watchdog = null;
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) this.opts.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /** Forgets the current socket without closing it. */
  private detach(): void {
    const s = this.socket;
    if (s) {
      s.onopen = null;
      s.onmessage = null;
      s.onclose = null;
      s.onerror = null;
    }
    this.socket = null;
    this.ready = false;
    this.helloValue = null;
    this.stopWatchdog();
  }

  private teardown(code: number, reason: string): void {
    const s = this.socket;
    this.detach();
    if (s) {
      try {
        s.close(code, reason);
      } catch {
        // ignore
      }
    }
  }

  private setStatus(status: ConnectionStatus): void {
    if (status === this.statusValue) return;
    this.statusValue = status;
    for (const l of this.statusListeners) l(status);
  }
}

/** `ws:` or `wss:` URL of the live endpoint, from the page's location. */
export function liveUrl(location: { protocol: string; host: string }, path = '/api/v1/live'): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}
