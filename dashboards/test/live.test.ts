import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import {
  backoffDelay,
  DEFAULT_BACKOFF,
  LiveClient,
  liveUrl,
  shouldReconnect,
  type ConnectionStatus,
} from '../src/live';
import type { SubscriptionMessage } from '../src/types';
import { FakeSocket } from './fakeSocket';

function client(extra: Partial<ConstructorParameters<typeof LiveClient>[0]> = {}) {
  const onUnauthorized = vi.fn();
  const statuses: ConnectionStatus[] = [];
  const c = new LiveClient({
    url: 'ws://example.test/api/v1/live',
    token: () => 'bfr_test_secret',
    createSocket: (url) => new FakeSocket(url),
    random: () => 0.5,
    onUnauthorized,
    ...extra,
  });
  c.onStatus((s) => statuses.push(s));
  return { c, onUnauthorized, statuses };
}

function connect(c: LiveClient): FakeSocket {
  c.start();
  const s = FakeSocket.last();
  s.open();
  s.hello();
  return s;
}

describe('live client', () => {
  beforeEach(() => {
    FakeSocket.reset();
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-12-04T10:00:00Z'));
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('authenticates with the first message, never in the URL', () => {
    const { c } = client();
    c.start();
    const s = FakeSocket.last();
    expect(s.url).toBe('ws://example.test/api/v1/live');
    expect(s.url).not.toContain('bfr_');
    s.open();
    expect(s.sent[0]).toEqual({ type: 'auth', token: 'bfr_test_secret' });
    expect(c.status).toBe('connecting');
  });

  it('after hello: connected, asks for max_fps, then sends the subscriptions', () => {
    const { c, statuses } = client({ maxFps: 5 });
    c.subscribe('alarms', { stream: 'alarms' }, () => undefined);
    c.start();
    const s = FakeSocket.last();
    s.open();
    expect(s.sent).toHaveLength(1); // only auth before hello
    s.hello();
    expect(c.status).toBe('connected');
    expect(statuses).toEqual(['connecting', 'connected']);
    expect(s.sent[1]).toEqual({ type: 'options', max_fps: 5 });
    expect(s.sent[2]).toEqual({ type: 'subscribe', id: 'alarms', stream: 'alarms', snapshot: true });
  });

  it('subscribing again with the same id replaces it (one subscription, not two)', () => {
    const { c } = client();
    const s = connect(c);
    c.subscribe('map', { stream: 'readings', filter: { bbox: [4.8, 45.7, 4.9, 45.8] }, granularity: 'raw' }, () => undefined);
    c.subscribe('map', { stream: 'readings', filter: { bbox: [4.7, 45.6, 5.0, 45.9] }, granularity: 'raw' }, () => undefined);
    const subs = s.sentOfType('subscribe');
    expect(subs).toHaveLength(2);
    expect(subs.every((m) => m['id'] === 'map')).toBe(true);
    expect(c.subscriptionIds()).toEqual(['map']);
  });

  it('re-sends every current subscription after a reconnect, with a snapshot, and not removed ones', () => {
    const { c } = client();
    const s1 = connect(c);
    c.subscribe('a', { stream: 'alarms' }, () => undefined);
    c.subscribe('b', { stream: 'gateways' }, () => undefined);
    c.subscribe('map', { stream: 'readings', filter: { bbox: [1, 2, 3, 4] }, snapshot: false }, () => undefined);
    c.subscribe('map', { stream: 'readings', filter: { bbox: [5, 6, 7, 8] }, snapshot: false }, () => undefined);
    c.unsubscribe('b');
    expect(s1.sentOfType('unsubscribe')).toEqual([{ type: 'unsubscribe', id: 'b' }]);

    s1.serverClose(1006);
    expect(c.status).toBe('reconnecting');
    vi.advanceTimersByTime(DEFAULT_BACKOFF.maxMs);
    const s2 = FakeSocket.last();
    expect(s2).not.toBe(s1);
    s2.open();
    s2.hello();
    const subs = s2.sentOfType('subscribe');
    expect(subs.map((m) => m['id']).sort()).toEqual(['a', 'map']);
    const map = subs.find((m) => m['id'] === 'map');
    expect(map).toEqual({
      type: 'subscribe',
      id: 'map',
      stream: 'readings',
      filter: { bbox: [5, 6, 7, 8] },
      snapshot: true,
    });
    expect(s2.sentOfType('options')).toHaveLength(1);
  });

  it('queues subscriptions made while disconnected and unsubscribes silently', () => {
    const { c } = client();
    c.subscribe('x', { stream: 'security' }, () => undefined);
    c.subscribe('y', { stream: 'gateways' }, () => undefined);
    c.unsubscribe('y');
    const s = connect(c);
    expect(s.sentOfType('subscribe').map((m) => m['id'])).toEqual(['x']);
    expect(s.sentOfType('unsubscribe')).toHaveLength(0);
  });

  it('the unsubscribe function returned by subscribe only removes its own subscription', () => {
    const { c } = client();
    const s = connect(c);
    const first = c.subscribe('sensor', { stream: 'readings' }, () => undefined);
    c.subscribe('sensor', { stream: 'readings', filter: { sensors: ['s2'] } }, () => undefined);
    first();
    expect(c.subscriptionIds()).toEqual(['sensor']);
    expect(s.sentOfType('unsubscribe')).toHaveLength(0);
  });

  it('dispatches data frames by subscription id', () => {
    const { c } = client();
    const s = connect(c);
    const a: SubscriptionMessage[] = [];
    const b: SubscriptionMessage[] = [];
    c.subscribe('a', { stream: 'readings' }, (m) => a.push(m));
    c.subscribe('b', { stream: 'alarms' }, (m) => b.push(m));
    s.receive({ type: 'readings', sub: 'a', snapshot: false, items: [] });
    s.receive({ type: 'readings', sub: 'zzz', items: [] });
    s.receive('not json at all');
    s.receive({ type: 'pong', nonce: 1 });
    expect(a).toHaveLength(1);
    expect(b).toHaveLength(0);
  });

  it('reports subscription errors to their handler', () => {
    const { c } = client();
    const s = connect(c);
    const control = vi.fn();
    c.subscribe('map', { stream: 'readings' }, () => undefined, control);
    s.receive({ type: 'error', id: 'map', code: 'bad_request', detail: 'filter.bbox: west > east' });
    expect(control).toHaveBeenCalledWith(expect.objectContaining({ code: 'bad_request' }));
  });

  it('does not reconnect after 4401 and sends the user to sign in', () => {
    const { c, onUnauthorized } = client();
    const s = connect(c);
    s.serverClose(4401);
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
    expect(c.status).toBe('offline');
    vi.advanceTimersByTime(10 * 60_000);
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it.each([1001, 1006, 1011, 4408])('reconnects after close code %i', (code) => {
    const { c, onUnauthorized } = client();
    const s = connect(c);
    s.serverClose(code);
    expect(c.status).toBe('reconnecting');
    vi.advanceTimersByTime(DEFAULT_BACKOFF.maxMs);
    expect(FakeSocket.instances).toHaveLength(2);
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it('backs off exponentially with jitter between failed attempts, up to the cap', () => {
    const { c } = client({ backoff: { baseMs: 1000, maxMs: 8000 }, random: () => 0 });
    c.start();
    const delays: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      const s = FakeSocket.last();
      s.serverClose(1006); // fails before hello
      const next = c.nextRetryAt;
      expect(next).not.toBeNull();
      delays.push((next as number) - Date.now());
      const before = FakeSocket.instances.length;
      vi.advanceTimersByTime((next as number) - Date.now() - 1);
      expect(FakeSocket.instances).toHaveLength(before); // not yet
      vi.advanceTimersByTime(1);
      expect(FakeSocket.instances).toHaveLength(before + 1);
    }
    // random() = 0 → half of each ceiling: 1000, 2000, 4000, 8000, 8000, 8000 ceilings.
    expect(delays).toEqual([500, 1000, 2000, 4000, 4000, 4000]);
  });

  it('shows offline after several failed attempts but keeps trying', () => {
    const { c } = client({ offlineAfterAttempts: 3 });
    c.start();
    for (let i = 0; i < 3; i += 1) {
      FakeSocket.last().serverClose(1006);
      if (i < 2) expect(c.status).toBe('reconnecting');
      vi.advanceTimersByTime(DEFAULT_BACKOFF.maxMs);
    }
    expect(FakeSocket.instances).toHaveLength(4);
    FakeSocket.last().serverClose(1006);
    expect(c.status).toBe('offline');
    const s = FakeSocket.last();
    vi.advanceTimersByTime(DEFAULT_BACKOFF.maxMs);
    expect(FakeSocket.last()).not.toBe(s);
  });

  it('resets the backoff after a connection that stayed up', () => {
    const { c } = client({ backoff: { baseMs: 1000, maxMs: 60_000 }, random: () => 0, stableAfterMs: 30_000 });
    c.start();
    // Three quick failures grow the delay.
    for (let i = 0; i < 3; i += 1) {
      FakeSocket.last().serverClose(1006);
      vi.advanceTimersByTime(60_000);
    }
    const s = FakeSocket.last();
    s.open();
    s.hello();
    vi.advanceTimersByTime(31_000);
    s.receive({ type: 'pong' });
    s.serverClose(1001);
    expect((c.nextRetryAt as number) - Date.now()).toBe(500);
  });

  it('a connection dropped right after hello keeps growing the backoff (no tight loop)', () => {
    const { c } = client({ backoff: { baseMs: 1000, maxMs: 60_000 }, random: () => 0 });
    c.start();
    const delays: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      const s = FakeSocket.last();
      s.open();
      s.hello();
      s.serverClose(4408);
      delays.push((c.nextRetryAt as number) - Date.now());
      vi.advanceTimersByTime(60_000);
    }
    expect(delays).toEqual([500, 1000, 2000, 4000]);
  });

  it('replaces a silent (half-open) connection and pings a live one', () => {
    const { c } = client({ pingIntervalMs: 10_000, idleTimeoutMs: 25_000 });
    const s = connect(c);
    vi.advanceTimersByTime(10_000);
    expect(s.sentOfType('ping')).toHaveLength(1);
    vi.advanceTimersByTime(20_000); // 30 s without a message
    expect(s.closedWith).not.toBeNull();
    expect(c.status).toBe('reconnecting');
    vi.advanceTimersByTime(DEFAULT_BACKOFF.maxMs);
    expect(FakeSocket.instances).toHaveLength(2);
  });

  it('stop closes normally and start resumes the subscriptions', () => {
    const { c } = client();
    const s1 = connect(c);
    c.subscribe('sec', { stream: 'security' }, () => undefined);
    c.stop();
    expect(s1.closedWith?.code).toBe(1000);
    expect(c.status).toBe('offline');
    vi.advanceTimersByTime(120_000);
    expect(FakeSocket.instances).toHaveLength(1);
    const s2 = connect(c);
    expect(s2.sentOfType('subscribe').map((m) => m['id'])).toEqual(['sec']);
  });

  it('reconnectNow skips the wait', () => {
    const { c } = client();
    const s = connect(c);
    s.serverClose(1006);
    c.reconnectNow();
    expect(FakeSocket.instances).toHaveLength(2);
  });

  it('does not connect without a token', () => {
    const { c } = client({ token: () => null });
    c.start();
    expect(FakeSocket.instances).toHaveLength(0);
    expect(c.status).toBe('offline');
  });
});

describe('backoff', () => {
  it('stays within [ceiling/2, ceiling] and grows to the cap', () => {
    const opts = { baseMs: 500, maxMs: 30_000 };
    for (let attempt = 0; attempt < 12; attempt += 1) {
      const ceiling = Math.min(30_000, 500 * 2 ** attempt);
      for (const r of [0, 0.25, 0.999, 1]) {
        const d = backoffDelay(attempt, opts, () => r);
        expect(d).toBeGreaterThanOrEqual(ceiling / 2);
        expect(d).toBeLessThanOrEqual(ceiling);
      }
    }
    expect(backoffDelay(100, opts, () => 1)).toBe(30_000);
  });

  it('reconnects on every close code but 4401', () => {
    for (const code of [1000, 1001, 1006, 1011, 4400, 4408]) expect(shouldReconnect(code)).toBe(true);
    expect(shouldReconnect(4401)).toBe(false);
  });

  it('builds ws: and wss: URLs from the location', () => {
    expect(liveUrl({ protocol: 'http:', host: 'localhost:8080' })).toBe('ws://localhost:8080/api/v1/live');
    expect(liveUrl({ protocol: 'https:', host: 'ville.example' })).toBe('wss://ville.example/api/v1/live');
  });
});
