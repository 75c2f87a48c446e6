// The tenant's active alarms, shared by every page: the REST listing, then the live `alarms`
// stream merged by id (the newest `updated_at` wins). After a reconnect the listing is fetched
// again, and alarms cleared while the socket was down are dropped.

import { activeAlarms, mergeAlarm, pruneCleared, reconcileActive } from './alarms';
import { ApiError, seg, type Api } from './api';
import type { FrameBatcher } from './frame';
import type { LiveClient } from './live';
import type { Alarm, OffsetPage } from './types';

export interface AlarmChangeEvent {
  before: Alarm | undefined;
  after: Alarm;
  /** Came from the live stream or an action of this user, not from a listing. */
  live: boolean;
}

const PAGE = 200;
const MAX_LISTED = 5000;
const RECENT_MAX = 40;
/** Cleared alarms are forgotten this long after their last change, once there are many. */
const KEEP_CLEARED_US = 15 * 60 * 1_000_000;
const PRUNE_ABOVE = 1000;
const PENDING_MAX = 500;

export class ConflictError extends Error {}

export class AlarmStore {
  readonly alarms = new Map<number, Alarm>();
  loaded = false;
  error: unknown = null;
  /** The latest changes seen live (not from listings), newest first, for the event ticker. */
  readonly recent: AlarmChangeEvent[] = [];
  private readonly listeners = new Set<(changes: AlarmChangeEvent[]) => void>();
  private pending: AlarmChangeEvent[] = [];
  private stopLive: (() => void) | null = null;
  private stopStatus: (() => void) | null = null;
  private generation = 0;

  constructor(
    private readonly api: Api,
    private readonly live: LiveClient,
    private readonly frames: FrameBatcher,
  ) {}

  start(): void {
    this.stopLive = this.live.subscribe('alarms', { stream: 'alarms' }, (msg) => {
      if (msg.type === 'alarm') this.apply(msg.alarm, true);
    });
    let first = true;
    this.stopStatus = this.live.onStatus((s) => {
      if (s !== 'connected') return;
      if (first) {
        first = false;
        return;
      }
      void this.refresh();
    });
    void this.refresh();
  }

  stop(): void {
    this.stopLive?.();
    this.stopStatus?.();
    this.generation += 1;
  }

  /** Fetches every active alarm and reconciles. */
  async refresh(): Promise<void> {
    const gen = ++this.generation;
    const startedAt = Date.now() * 1000 - 5_000_000; // a little slack for clock skew
    try {
      const listed: Alarm[] = [];
      let offset: number | null = 0;
      while (offset !== null && listed.length < MAX_LISTED) {
        const page: OffsetPage<Alarm> = await this.api.get<OffsetPage<Alarm>>('/api/v1/alarms', {
          state: ['open', 'acknowledged'],
          limit: PAGE,
          offset,
        });
        listed.push(...page.items);
        offset = page.next_offset;
      }
      if (gen !== this.generation) return;
      for (const a of listed) this.apply(a, false);
      if (offset === null) {
        reconcileActive(this.alarms, listed, startedAt);
      }
      this.loaded = true;
      this.error = null;
      this.notifySoon();
    } catch (e) {
      if (gen !== this.generation) return;
      this.error = e;
      this.loaded = true;
      this.notifySoon();
    }
  }

  active(): Alarm[] {
    return activeAlarms(this.alarms.values());
  }

  onChange(listener: (changes: AlarmChangeEvent[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  apply(alarm: Alarm, live: boolean): void {
    const before = this.alarms.get(alarm.id);
    if (mergeAlarm(this.alarms, alarm)) {
      const change = { before, after: alarm, live };
      this.pending.push(change);
      // No animation frames run in a hidden tab: keep the backlog bounded.
      if (this.pending.length > PENDING_MAX) this.pending.splice(0, this.pending.length - PENDING_MAX);
      if (live) {
        this.recent.unshift(change);
        if (this.recent.length > RECENT_MAX) this.recent.length = RECENT_MAX;
      }
      this.notifySoon();
    }
  }

  async acknowledge(id: number, comment: string | null): Promise<Alarm> {
    return this.act(id, 'acknowledge', comment);
  }

  async clear(id: number, comment: string | null): Promise<Alarm> {
    return this.act(id, 'clear', comment);
  }

  private async act(id: number, action: 'acknowledge' | 'clear', comment: string | null): Promise<Alarm> {
    try {
      const alarm = await this.api.post<Alarm>(`/api/v1/alarms/${seg(id)}/${action}`, {
        comment: comment && comment.trim() ? comment.trim() : null,
      });
      this.apply(alarm, true);
      return alarm;
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        try {
          this.apply(await this.api.get<Alarm>(`/api/v1/alarms/${seg(id)}`), true);
        } catch {
          // the live stream will bring it
        }
        throw new ConflictError(e.detail);
      }
      throw e;
    }
  }

  private notifySoon(): void {
    this.frames.schedule('alarm-store', () => {
      if (this.alarms.size > PRUNE_ABOVE) pruneCleared(this.alarms, Date.now() * 1000 - KEEP_CLEARED_US);
      const changes = this.pending;
      this.pending = [];
      for (const l of this.listeners) l(changes);
    });
  }
}
