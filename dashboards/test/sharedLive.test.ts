import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { LiveClient } from '../src/live';
import { delayText, reasonOf, SharedLiveView, type SharedLivePhase } from '../src/sharedLive';
import { FakeSocket } from './fakeSocket';

function setup() {
  const live = new LiveClient({
    url: 'ws://example.test/api/v1/live',
    token: () => 'bfr_test_secret',
    createSocket: (url) => new FakeSocket(url),
    random: () => 0.5,
  });
  live.start();
  const socket = FakeSocket.last();
  socket.open();
  socket.hello();
  const view = new SharedLiveView(live);
  const phases: SharedLivePhase[] = [];
  view.onChange((s) => phases.push(s.phase));
  return { live, socket, view, phases };
}

const reading = (sensor: string, value: number, time = '2026-12-04T10:00:01.000000Z') => ({
  sensor,
  metric: 'air.pm25',
  unit: 'ug/m3',
  time,
  value,
});

describe('shared live view', () => {
  beforeEach(() => {
    FakeSocket.reset();
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('subscribes to the grantor’s readings with the purpose', () => {
    const { socket, view } = setup();
    view.start({ grantor: 'lyon', purpose: 'research', metrics: ['air.*'] });
    expect(socket.sentOfType('subscribe').at(-1)).toEqual({
      type: 'subscribe',
      id: 'shared-live',
      stream: 'readings',
      filter: { metrics: ['air.*'] },
      granularity: 'raw',
      grantor: 'lyon',
      purpose: 'research',
    });
    expect(view.state.phase).toBe('subscribing');
  });

  it('keeps the latest value per series (pseudonyms as sent), newest first', () => {
    const { socket, view } = setup();
    view.start({ grantor: 'lyon', purpose: 'research', metrics: [] });
    socket.receive({ type: 'subscribed', id: 'shared-live', stream: 'readings', series: 2 });
    expect(view.state.phase).toBe('live');
    socket.receive({ type: 'readings', sub: 'shared-live', items: [reading('p-3f9a', 1), reading('p-77c1', 2)] });
    socket.receive({ type: 'readings', sub: 'shared-live', items: [reading('p-3f9a', 5, '2026-12-04T10:00:02.000000Z')] });
    expect(view.rows().map((r) => [r.sensor, r.value])).toEqual([
      ['p-3f9a', 5],
      ['p-77c1', 2],
    ]);
  });

  it('shows a refusal with its deny reason and does not re-send it after a reconnect', () => {
    const { socket, view, live } = setup();
    view.start({ grantor: 'lyon', purpose: 'billing', metrics: [] });
    socket.receive({
      type: 'error',
      id: 'shared-live',
      code: 'forbidden',
      detail: 'wrong_purpose: billing is not a purpose of agreement air-research',
    });
    expect(view.state).toMatchObject({ phase: 'denied', reason: 'wrong_purpose' });
    expect(live.subscriptionIds()).toEqual([]);
    socket.serverClose(1006);
    vi.advanceTimersByTime(60_000);
    const again = FakeSocket.last();
    expect(again).not.toBe(socket);
    again.open();
    again.hello();
    expect(again.sentOfType('subscribe')).toEqual([]);
  });

  it('says clearly that the share ended, stops taking values and is not re-sent', () => {
    const { socket, view, live, phases } = setup();
    view.start({ grantor: 'lyon', purpose: 'research', metrics: [] });
    socket.receive({ type: 'subscribed', id: 'shared-live', stream: 'readings' });
    socket.receive({ type: 'readings', sub: 'shared-live', items: [reading('p-3f9a', 1)] });
    socket.receive({ type: 'ended', id: 'shared-live', reason: 'revoked', detail: 'agreement air-research was revoked' });
    expect(view.state).toMatchObject({ phase: 'ended', reason: 'revoked', detail: 'agreement air-research was revoked' });
    expect(phases.at(-1)).toBe('ended');
    expect(live.subscriptionIds()).toEqual([]);
    // Late frames of the ended subscription change nothing; the last values stay shown.
    socket.receive({ type: 'readings', sub: 'shared-live', items: [reading('p-3f9a', 99)] });
    expect(view.rows().map((r) => r.value)).toEqual([1]);
    view.stop();
    expect(view.state.phase).toBe('ended');
    expect(socket.sentOfType('unsubscribe')).toEqual([]);
    socket.serverClose(1001);
    vi.advanceTimersByTime(60_000);
    const again = FakeSocket.last();
    again.open();
    again.hello();
    expect(again.sentOfType('subscribe')).toEqual([]);
  });

  it('can follow again after it ended, and stop', () => {
    const { socket, view } = setup();
    view.start({ grantor: 'lyon', purpose: 'research', metrics: [] });
    socket.receive({ type: 'ended', id: 'shared-live', reason: 'outside_validity' });
    view.start({ grantor: 'lyon', purpose: 'research', metrics: [] });
    expect(view.state).toMatchObject({ phase: 'subscribing', reason: null, detail: null });
    expect(view.rows()).toEqual([]);
    view.stop();
    expect(view.state.phase).toBe('idle');
    expect(socket.sentOfType('unsubscribe')).toEqual([{ type: 'unsubscribe', id: 'shared-live' }]);
  });

  it('says that a view under an embargo is delayed, and by how much', () => {
    const { socket, view } = setup();
    view.start({ grantor: 'lyon', purpose: 'research', metrics: [] });
    expect(delayText(view.state, 'en')).toBeNull();
    socket.receive({ type: 'subscribed', id: 'shared-live', stream: 'readings', series: 3, embargo_s: 3600 });
    expect(view.state).toMatchObject({ phase: 'live', embargoS: 3600 });
    expect(delayText(view.state, 'en')).toBe(
      'Delayed view: the agreement holds each value back for 1\u00a0h; it arrives once it is that old.',
    );
    expect(delayText(view.state, 'fr')).toBe(
      'Vue différée : l’accord retient chaque valeur pendant 1\u00a0h ; elle arrive une fois ce délai écoulé.',
    );
    // Following again under an agreement without embargo: no delay shown.
    view.start({ grantor: 'lyon', purpose: 'research', metrics: [] });
    expect(view.state.embargoS).toBeNull();
    socket.receive({ type: 'subscribed', id: 'shared-live', stream: 'readings', series: 3 });
    expect(view.state.phase).toBe('live');
    expect(delayText(view.state, 'en')).toBeNull();
  });

  it('reads the reason code of a denial detail', () => {
    expect(reasonOf('revoked: agreement x was revoked')).toBe('revoked');
    expect(reasonOf('no colon here')).toBeNull();
    expect(reasonOf(undefined)).toBeNull();
  });
});
