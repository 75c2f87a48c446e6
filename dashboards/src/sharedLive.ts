// A grantee's live view of another tenant's readings (docs/live.md: `subscribe` with
// `grantor` and `purpose`), without DOM: the latest value per series, and where the view
// stands — waiting for the server, following, refused (`error` with the deny reason), or
// ended by the server because the agreement was revoked, suspended or expired (`ended`).
// Under an agreement with an embargo the view is delayed: `subscribed.embargo_s` says by how
// much, and the panel says so.
// After `denied` or `ended` the subscription is gone: nothing is re-sent on reconnect; the
// user may start again.

import { formatDuration } from './format';
import { tIn, type Lang } from './i18n';
import type { LiveClient } from './live';
import type { LiveReading } from './types';

export type SharedLivePhase = 'idle' | 'subscribing' | 'live' | 'denied' | 'ended';

export interface SharedLiveState {
  phase: SharedLivePhase;
  /** The deny reason code (`revoked`, `wrong_purpose`…), when denied or ended. */
  reason: string | null;
  detail: string | null;
  /** The agreement's embargo, in seconds, when the view is delayed (from `subscribed`). */
  embargoS: number | null;
  /** The latest reading per series (sensor — perhaps a pseudonym — and metric). */
  latest: Map<string, LiveReading>;
}

export interface SharedLiveRequest {
  grantor: string;
  purpose: string;
  /** Metric patterns; empty: every metric the agreement allows. */
  metrics: string[];
}

/** Most series a view keeps (the oldest updated is dropped past it). */
export const MAX_SERIES = 200;

/** `error.detail` is `<reason>: <message>` for a denial: the code before the colon. */
export function reasonOf(detail: string | undefined): string | null {
  const m = /^([a-z_]+):/.exec(detail ?? '');
  return m?.[1] ?? null;
}

/** What the panel says of a delayed view (`null` for a view without embargo). */
export function delayText(state: SharedLiveState, lang: Lang): string | null {
  if (state.embargoS === null || state.embargoS <= 0) return null;
  return tIn(lang, 'shared.live.delayed', { delay: formatDuration(state.embargoS, lang) });
}

export class SharedLiveView {
  private readonly listeners = new Set<(s: SharedLiveState) => void>();
  private unsubscribe: (() => void) | null = null;
  readonly state: SharedLiveState = { phase: 'idle', reason: null, detail: null, embargoS: null, latest: new Map() };

  constructor(
    private readonly live: LiveClient,
    private readonly id = 'shared-live',
  ) {}

  onChange(listener: (s: SharedLiveState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Follows `request` (replacing what was followed). */
  start(request: SharedLiveRequest): void {
    this.unsubscribe?.();
    this.state.phase = 'subscribing';
    this.state.reason = null;
    this.state.detail = null;
    this.state.embargoS = null;
    this.state.latest.clear();
    const filter = request.metrics.length ? { metrics: request.metrics } : {};
    this.unsubscribe = this.live.subscribe(
      this.id,
      { stream: 'readings', filter, granularity: 'raw', grantor: request.grantor, purpose: request.purpose },
      (msg) => {
        if (msg.type !== 'readings' || this.ended()) return;
        for (const r of msg.items) {
          const key = `${r.sensor}\u0000${r.metric}`;
          this.state.latest.delete(key);
          this.state.latest.set(key, r);
        }
        while (this.state.latest.size > MAX_SERIES) {
          const oldest = this.state.latest.keys().next().value as string;
          this.state.latest.delete(oldest);
        }
        this.state.phase = 'live';
        this.emit();
      },
      (msg) => {
        switch (msg.type) {
          case 'subscribed':
            if (!this.ended()) {
              this.state.phase = 'live';
              this.state.embargoS = msg.embargo_s ?? null;
            }
            break;
          case 'error':
            this.live.forget(this.id);
            this.unsubscribe = null;
            this.state.phase = 'denied';
            this.state.reason = msg.code === 'forbidden' ? reasonOf(msg.detail) ?? msg.code : msg.code;
            this.state.detail = msg.detail;
            break;
          case 'ended':
            this.unsubscribe = null;
            this.state.phase = 'ended';
            this.state.reason = msg.reason;
            this.state.detail = msg.detail ?? null;
            break;
          case 'unsubscribed':
            return;
        }
        this.emit();
      },
    );
    this.emit();
  }

  /** Stops following (the values stay shown). */
  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (!this.ended()) this.state.phase = 'idle';
    this.emit();
  }

  /** The series, newest first. */
  rows(): LiveReading[] {
    return [...this.state.latest.values()].reverse();
  }

  private ended(): boolean {
    return this.state.phase === 'denied' || this.state.phase === 'ended';
  }

  private emit(): void {
    for (const l of this.listeners) l(this.state);
  }
}
