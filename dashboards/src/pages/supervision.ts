// Supervision (`#/`): the map, live tiles per zone and metric, the active alarms and a ticker
// of recent events.
//
// Live subscriptions (one socket, fixed ids, replaced rather than multiplied):
// - `map`: raw readings inside the map's view (padded bbox), re-sent with the same id after a
//   pan or zoom (debounced, and only when the view leaves the box or shrinks well inside it);
//   it feeds the sensor popups.
// - `zones`: raw readings of the sensors registered in the tenant's zones; it feeds the tiles,
//   which summarise whole zones whatever part of the map is in view.
// - `sec`: security events, for the ticker. Alarms come from the shared AlarmStore.
// - `pooled-<agreement>`: for each pooling agreement granted to the tenant, a grantee view of
//   the operator's pooled sensors (docs/pooling.md). They are drawn on the map apart (hollow
//   markers), keyed `operator/sensor`, and listed with their operator in the Pooled sensors
//   panel. An alarm about a pooled sensor rings its marker (matched by operator and sensor).
// Values only mark things dirty; the DOM is updated once per animation frame.

import { alarmSensorKey, describeChange, worstSeverityBySensor, worstSeverityByZone } from '../alarms';
import { createAlarmFeed, subjectText } from '../alarmFeed';
import type { AlarmChangeEvent } from '../alarmStore';
import type { Page, Registry } from '../context';
import { h, mount, setAttr, setText } from '../dom';
import { formatNumber, formatValue } from '../format';
import { debounce, inGeometry, needsResubscribe, type BBox } from '../geo';
import { getLang, t, tn } from '../i18n';
import type { MapView } from '../mapView';
import { sensorHref } from '../routes';
import { asPooledReading, asRegistrySensor, loadPooled, poolingMetrics, poolingPurpose, type PooledSensor } from '../pooled';
import { SharedLiveView } from '../sharedLive';
import { parseMillis } from '../time';
import type { LiveReading, OffsetPage, SecurityEvent, Severity, SubscriptionMessage } from '../types';
import { errorBox, loadingBox, refreshRelativeTimes, relTime, setStale, severityBadge, staleMarker } from '../ui';
import { isStale, LatestValues, tileKey, ZoneTiles, type Tile } from '../values';

const TICKER_MAX = 40;
const RESUBSCRIBE_DEBOUNCE_MS = 400;
const BBOX_PAD = 0.25;

interface TileView {
  el: HTMLElement;
  value: HTMLElement;
  meta: HTMLElement;
  marker: HTMLElement;
  tile: Tile;
}

interface TickerEntry {
  time: string;
  kind: string;
  text: string;
  severity?: Severity;
}

export const supervisionPage: Page = (root, ctx) => {
  let disposed = false;
  const cleanups: (() => void)[] = [];
  const store = ctx.alarms;

  const mapBox = h('div', {
    class: 'map',
    'data-testid': 'map',
    role: 'region',
    'aria-label': t('sup.mapRegion'),
    'aria-describedby': 'sup-map-help',
  });
  const mapNote = h('p', { class: 'muted small' });
  const tilesBox = h('div', { class: 'tiles', 'data-testid': 'zone-tiles' }, loadingBox());
  const ticker = h('ol', { class: 'ticker', 'data-testid': 'event-ticker', 'aria-label': t('sup.ticker') });
  const pooledBody = h('tbody', { 'data-testid': 'pooled-sensors' });
  const pooledPanel = h(
    'section',
    { class: 'panel pooled-panel', 'aria-labelledby': 'sup-pooled-h', hidden: true },
    h('h2', { id: 'sup-pooled-h' }, t('sup.pooled')),
    h('p', { class: 'muted small' }, t('sup.pooledHelp')),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'data-table' },
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            ...[t('sup.pooledSensor'), t('sup.pooledOperator'), t('sup.pooledValues')].map((x) => h('th', { scope: 'col' }, x)),
          ),
        ),
        pooledBody,
      ),
    ),
  );
  const feed = store ? createAlarmFeed(ctx, store) : null;

  mount(
    root,
    h('h1', { class: 'page-title', tabindex: -1 }, t('sup.title')),
    h(
      'div',
      { class: 'sup-grid' },
      h(
        'section',
        { class: 'panel map-panel', 'aria-labelledby': 'sup-map-h' },
        h('h2', { id: 'sup-map-h' }, t('sup.map')),
        h('p', { class: 'muted small', id: 'sup-map-help' }, t('sup.mapHelp')),
        mapBox,
        legend(),
        mapNote,
      ),
      h(
        'section',
        { class: 'panel alarms-panel', 'aria-labelledby': 'sup-alarms-h' },
        h('h2', { id: 'sup-alarms-h' }, t('sup.alarms'), ' ', feed ? feed.count : null),
        feed ? feed.el : null,
      ),
      h(
        'section',
        { class: 'panel tiles-panel', 'aria-labelledby': 'sup-tiles-h' },
        h('h2', { id: 'sup-tiles-h' }, t('sup.tiles')),
        tilesBox,
      ),
      h(
        'section',
        { class: 'panel ticker-panel', 'aria-labelledby': 'sup-ticker-h' },
        h('h2', { id: 'sup-ticker-h' }, t('sup.ticker')),
        ticker,
      ),
      pooledPanel,
    ),
  );

  // ---- state ----
  const latest = new LatestValues();
  let registry: Registry | null = null;
  let tiles: ZoneTiles | null = null;
  let map: MapView | null = null;
  const tileViews = new Map<string, TileView>();
  const dirtyTiles = new Set<string>();
  let tilesStructureDirty = false;
  let zoneWorst = new Map<string, Severity>();
  let sensorWorst = new Map<string, Severity>();
  let subscribedBBox: BBox | null = null;
  let popupSensor: string | null = null;
  let popupEl: HTMLElement | null = null;
  let popupDirty = false;
  const tickerEntries: TickerEntry[] = [];
  let pooled = new Map<string, PooledSensor>();

  // ---- alarms ----
  const alarmEntry = (c: AlarmChangeEvent): TickerEntry => ({
    time: c.after.updated_at,
    kind: t(`ticker.${describeChange(c.before, c.after)}`),
    text: `${c.after.rule_name} — ${subjectText(c.after)}`,
    severity: c.after.severity,
  });
  const onAlarms = (changes: AlarmChangeEvent[]): void => {
    feed?.update();
    if (!store) return;
    zoneWorst = worstSeverityByZone(store.alarms.values(), (s) => registry?.sensorById.get(s)?.zone);
    sensorWorst = worstSeverityBySensor(store.alarms.values());
    map?.setZoneSeverities(zoneWorst);
    if (changes.some((c) => alarmSensorKey(c.after.subject) !== undefined)) map?.renderMarkers();
    updateZoneBadges();
    let announced = 0;
    for (const c of changes) {
      if (!c.live) continue;
      const change = describeChange(c.before, c.after);
      pushTicker(alarmEntry(c));
      if (announced < 3 && (change === 'opened' || change === 'acknowledged' || change === 'cleared')) {
        announced += 1;
        ctx.announce(
          change === 'opened'
            ? t('alarm.announceOpened', { severity: t(`severity.${c.after.severity}`), message: c.after.message })
            : t(change === 'cleared' ? 'alarm.announceCleared' : 'alarm.announceAcknowledged', {
                message: c.after.message,
              }),
        );
      }
    }
  };
  if (store) cleanups.push(store.onChange(onAlarms));

  // ---- ticker ----
  const pushTicker = (e: TickerEntry): void => {
    tickerEntries.unshift(e);
    tickerEntries.sort((a, b) => parseMillis(b.time) - parseMillis(a.time));
    tickerEntries.length = Math.min(tickerEntries.length, TICKER_MAX);
    ctx.frames.schedule('sup-ticker', renderTicker);
  };
  const renderTicker = (): void => {
    if (tickerEntries.length === 0) {
      mount(ticker, h('li', { class: 'muted' }, t('sup.tickerEmpty')));
      return;
    }
    mount(
      ticker,
      ...tickerEntries.map((e) =>
        h(
          'li',
          { class: 'ticker-item', 'data-testid': 'ticker-item' },
          relTime(e.time, () => ctx.clock.now()),
          ' ',
          e.severity ? severityBadge(e.severity) : h('span', { class: 'badge badge-security', 'aria-hidden': 'true' }, '⚠'),
          ' ',
          h('strong', null, e.kind),
          ' ',
          h('span', null, e.text),
        ),
      ),
    );
  };
  for (const c of [...(store?.recent ?? [])].reverse()) pushTicker(alarmEntry(c));
  renderTicker();
  const securityText = (ev: SecurityEvent): string =>
    [t(`secKind.${ev.kind}`), ev.gateway, ev.detail].filter(Boolean).join(' — ');

  if (ctx.me.scope === 'tenant') {
    ctx.api
      .get<OffsetPage<SecurityEvent>>('/api/v1/security-events', { limit: 10 })
      .then((page) => {
        if (disposed) return;
        for (const ev of page.items) {
          pushTicker({ time: ev.time, kind: t('ticker.security'), text: securityText(ev) });
        }
      })
      .catch(() => undefined);
    cleanups.push(
      ctx.live.subscribe('sec', { stream: 'security' }, (msg) => {
        if (msg.type === 'security_event') {
          pushTicker({ time: msg.event.time, kind: t('ticker.security'), text: securityText(msg.event) });
        }
      }),
    );
  }

  // ---- live readings ----
  const onReadings = (msg: SubscriptionMessage): void => {
    if (msg.type !== 'readings') return;
    for (const r of msg.items) applyReading(r);
    ctx.frames.schedule('sup-values', flushValues);
  };
  const applyReading = (r: LiveReading): void => {
    if (latest.update(r) && r.sensor === popupSensor) popupDirty = true;
    const key = tiles?.update(r);
    if (key) {
      if (!tileViews.has(key)) tilesStructureDirty = true;
      dirtyTiles.add(key);
    }
  };
  const flushValues = (): void => {
    renderPooled();
    if (tilesStructureDirty) {
      tilesStructureDirty = false;
      dirtyTiles.clear();
      renderTiles();
    } else {
      for (const key of dirtyTiles) updateTile(key);
      dirtyTiles.clear();
    }
    if (popupDirty) {
      popupDirty = false;
      if (popupSensor && popupEl) {
        fillPopup(popupEl, popupSensor);
        map?.updatePopupLayout();
      }
    }
  };

  const subscribeMap = (view: BBox): void => {
    if (!needsResubscribe(subscribedBBox, view)) return;
    const padded = map ? map.viewBBox(BBOX_PAD) : view;
    subscribedBBox = padded;
    ctx.live.subscribe(
      'map',
      { stream: 'readings', filter: { bbox: padded }, granularity: 'raw', snapshot: true },
      onReadings,
    );
  };
  const debouncedSubscribe = debounce(subscribeMap, RESUBSCRIBE_DEBOUNCE_MS);
  cleanups.push(() => {
    debouncedSubscribe.cancel();
    ctx.live.unsubscribe('map');
    ctx.live.unsubscribe('zones');
  });

  // ---- tiles ----
  const zoneName = (id: string): string => registry?.zoneById.get(id)?.name ?? id;

  const renderTiles = (): void => {
    if (!tiles) return;
    tileViews.clear();
    const all = tiles.all();
    if (all.length === 0) {
      mount(tilesBox, h('p', { class: 'muted' }, t('sup.tilesEmpty')));
      return;
    }
    const groups = new Map<string, Tile[]>();
    for (const tile of all) {
      const list = groups.get(tile.zone) ?? [];
      list.push(tile);
      groups.set(tile.zone, list);
    }
    const zones = [...groups.keys()].sort((a, b) => zoneName(a).localeCompare(zoneName(b), getLang()));
    mount(
      tilesBox,
      ...zones.map((zone) =>
        h(
          'section',
          { class: 'zone-group', 'data-zone': zone, 'aria-label': zoneName(zone) },
          h('h3', null, zoneName(zone), ' ', h('span', { class: 'zone-badge', 'data-zone-badge': zone })),
          h(
            'ul',
            { class: 'tile-list' },
            ...(groups.get(zone) ?? []).map((tile) => h('li', null, createTile(tile))),
          ),
        ),
      ),
    );
    updateZoneBadges();
  };

  const createTile = (tile: Tile): HTMLElement => {
    const key = tileKey(tile.zone, tile.metric);
    const value = h('span', { class: 'tile-value', 'data-testid': 'tile-value' });
    const meta = h('span', { class: 'tile-meta' });
    const marker = staleMarker();
    const el = h(
      'div',
      {
        class: 'tile',
        'data-testid': 'zone-tile',
        'data-zone': tile.zone,
        'data-metric': tile.metric,
        'data-stale': 'false',
      },
      h('span', { class: 'tile-metric' }, tile.metric),
      value,
      h('span', { class: 'tile-foot' }, meta, ' ', marker),
    );
    const view: TileView = { el, value, meta, marker, tile };
    tileViews.set(key, view);
    fillTile(view);
    return el;
  };

  const fillTile = (view: TileView): void => {
    const tile = view.tile;
    const lang = getLang();
    if (tile.boolean) {
      setText(view.value, t('sup.tileTrue', { k: tile.trueCount, n: tile.count }));
    } else {
      setText(view.value, tile.mean === null ? '—' : formatValue(tile.mean, tile.unit, lang));
    }
    setAttr(view.value, 'data-value', tile.mean === null ? null : String(tile.mean));
    setText(view.meta, tn('sup.tileSensors', tile.count, { n: formatNumber(tile.count, lang, 0) }));
    setStale(view.el, view.marker, isStale(tile.newestMs, ctx.clock.now(), ctx.connected()));
  };

  const updateTile = (key: string): void => {
    const view = tileViews.get(key);
    const tile = tiles?.tile(key);
    if (!view || !tile) return;
    view.tile = tile;
    fillTile(view);
  };

  const refreshStaleness = (): void => {
    const now = ctx.clock.now();
    const connected = ctx.connected();
    for (const view of tileViews.values()) {
      setStale(view.el, view.marker, isStale(view.tile.newestMs, now, connected));
    }
    if (popupSensor && popupEl) fillPopup(popupEl, popupSensor);
    refreshRelativeTimes(root, now);
  };
  const staleTimer = window.setInterval(refreshStaleness, 5000);
  cleanups.push(() => window.clearInterval(staleTimer));
  cleanups.push(ctx.live.onStatus(() => ctx.frames.schedule('sup-stale', refreshStaleness)));

  const updateZoneBadges = (): void => {
    tilesBox.querySelectorAll<HTMLElement>('[data-zone-badge]').forEach((el) => {
      const sev = zoneWorst.get(el.dataset['zoneBadge'] ?? '');
      if ((el.dataset['severity'] ?? '') === (sev ?? '')) return;
      el.dataset['severity'] = sev ?? '';
      mount(el, sev ? severityBadge(sev) : null);
    });
  };

  // ---- popup ----
  const fillPopup = (el: HTMLElement, sensorId: string): void => {
    const sensor = registry?.sensorById.get(sensorId);
    const pooledSensor = pooled.get(sensorId);
    const lang = getLang();
    const values = [...latest.of(sensorId).entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    const now = ctx.clock.now();
    const connected = ctx.connected();
    const sev = sensorWorst.get(sensorId);
    // Rebuilt in place on every value: keep the keyboard focus where it was.
    const active = document.activeElement;
    const focusedId = active instanceof HTMLElement && el.contains(active) ? active.dataset['testid'] : undefined;
    mount(
      el,
      h('h3', null, pooledSensor?.sensor ?? sensorId, ' ', sev ? severityBadge(sev) : null),
      h(
        'p',
        { class: 'muted small' },
        [sensor?.kind, sensor?.zone ? zoneName(sensor.zone) : null].filter(Boolean).join(' · '),
      ),
      pooledSensor
        ? h('p', { class: 'pooled-operator', 'data-testid': 'popup-pooled' }, t('sup.pooledBy', { operator: pooledSensor.operator }))
        : null,
      values.length === 0
        ? h('p', { class: 'muted' }, t('sup.noValue'))
        : h(
            'dl',
            { class: 'popup-values' },
            ...values.flatMap(([metric, v]) => {
              const stale = isStale(v.timeMs, now, connected);
              return [
                h('dt', null, metric),
                h(
                  'dd',
                  { 'data-stale': String(stale), 'data-metric': metric },
                  formatValue(v.value, v.unit, lang, { yes: t('common.yes'), no: t('common.no') }),
                  stale ? h('span', { class: 'stale-marker', title: t('common.staleHelp') }, t('common.stale')) : null,
                ),
              ];
            }),
          ),
      pooledSensor
        ? null
        : h('a', { href: sensorHref(sensorId), class: 'btn btn-small', 'data-testid': 'popup-sensor-link' }, t('sup.openSensor')),
    );
    if (focusedId) el.querySelector<HTMLElement>(`[data-testid="${focusedId}"]`)?.focus({ preventScroll: true });
  };

  // ---- pooled sensors ----
  const renderPooled = (): void => {
    if (pooled.size === 0) return;
    const lang = getLang();
    mount(
      pooledBody,
      ...[...pooled.values()].map((p) => {
        const values = [...latest.of(p.key).entries()].sort(([a], [b]) => (a < b ? -1 : 1));
        return h(
          'tr',
          { 'data-testid': 'pooled-sensor', 'data-sensor': p.sensor, 'data-operator': p.operator },
          h('td', null, p.sensor, ' ', h('span', { class: 'muted small' }, p.kind)),
          h('td', { class: 'pooled-operator' }, t('sup.pooledBy', { operator: p.operator })),
          h(
            'td',
            null,
            values.length === 0
              ? h('span', { class: 'muted' }, t('sup.noValue'))
              : values.map(([metric, v]) =>
                  h(
                    'span',
                    { class: 'pooled-value', 'data-testid': 'pooled-value', 'data-metric': metric, 'data-time': String(v.timeMs) },
                    `${metric} ${formatValue(v.value, v.unit, lang, { yes: t('common.yes'), no: t('common.no') })} `,
                  ),
                ),
          ),
        );
      }),
    );
  };
  /** Follows each pooling grant live; its values join the tenant's own. */
  const followPooled = (grants: Awaited<ReturnType<typeof loadPooled>>['grants']): void => {
    for (const grant of grants) {
      const view = new SharedLiveView(ctx.live, `pooled-${grant.id}`);
      cleanups.push(view.onChange((state) => {
        for (const r of state.latest.values()) applyReading(asPooledReading(grant.grantor, r));
        popupDirty ||= popupSensor !== null && pooled.has(popupSensor);
        ctx.frames.schedule('sup-values', flushValues);
      }));
      cleanups.push(() => view.stop());
      view.start({ grantor: grant.grantor, purpose: poolingPurpose(grant), metrics: poolingMetrics(grant) });
    }
  };

  // ---- load ----
  const start = async (): Promise<void> => {
    let reg: Registry;
    let pooledLoad: Awaited<ReturnType<typeof loadPooled>> = { grants: [], sensors: [] };
    try {
      const me = ctx.me;
      [reg, pooledLoad] = await Promise.all([
        ctx.registry(),
        me.scope === 'tenant'
          ? loadPooled(ctx.api, me.tenant.id, ctx.clock.now()).catch(() => pooledLoad)
          : Promise.resolve(pooledLoad),
      ]);
    } catch (e) {
      if (disposed) return;
      mount(mapBox, errorBox(e, () => void start()));
      mount(tilesBox);
      return;
    }
    if (disposed) return;
    pooled = new Map(pooledLoad.sensors.map((p) => [p.key, p]));
    const own = reg;
    // A pooled sensor counts in the tiles of our zone it stands in, like our own.
    const pooledZone = new Map<string, string>();
    for (const p of pooledLoad.sensors) {
      const { lon, lat } = p;
      const zone = lon === null || lat === null ? undefined : reg.zones.find((z) => inGeometry(lon, lat, z.geometry));
      if (zone) pooledZone.set(p.key, zone.id);
    }
    // The map draws the tenant's sensors and the pooled ones; tiles summarise its own zones.
    if (pooled.size) {
      const sensors = [...reg.sensors, ...pooledLoad.sensors.map(asRegistrySensor)];
      reg = { ...reg, sensors, sensorById: new Map(sensors.map((s) => [s.id, s])) };
    }
    registry = reg;
    tiles = new ZoneTiles((s) => own.sensorById.get(s)?.zone ?? pooledZone.get(s));
    const { MapView } = await import('../mapView');
    if (disposed) return;
    map = new MapView({
      container: mapBox,
      config: ctx.config,
      registry: reg,
      onMove: (view) => debouncedSubscribe(view),
      sensorSeverity: (id) => sensorWorst.get(id),
      isPooled: (id) => pooled.has(id),
      popupContent: (id) => {
        popupSensor = id;
        popupEl = h('div', { class: 'popup', 'data-testid': 'sensor-popup', 'data-sensor': id });
        fillPopup(popupEl, id);
        return popupEl;
      },
      onSensorOpen: (id) => {
        if (id === null) {
          popupSensor = null;
          popupEl = null;
        }
      },
    });
    cleanups.push(() => map?.destroy());
    const unplaced = reg.sensors.filter((s) => s.lat === null || s.lon === null).length;
    mapNote.textContent = [
      map.hasData ? '' : t('sup.noMapData'),
      unplaced ? tn('sup.noPosition', unplaced) : '',
    ]
      .filter(Boolean)
      .join(' ');
    if (store) onAlarms([]);
    subscribeMap(map.viewBBox(0));
    const zoneIds = reg.zones.map((z) => z.id).slice(0, 1000);
    if (zoneIds.length) {
      ctx.live.subscribe(
        'zones',
        { stream: 'readings', filter: { zones: zoneIds }, granularity: 'raw', snapshot: true },
        onReadings,
      );
    }
    renderTiles();
    if (!tiles.keys().length) mount(tilesBox, h('p', { class: 'muted' }, t('sup.tilesEmpty')));
    if (pooled.size) {
      pooledPanel.hidden = false;
      renderPooled();
      followPooled(pooledLoad.grants);
    }
  };
  void start();

  return () => {
    disposed = true;
    ctx.frames.cancel('sup-');
    for (const c of cleanups.reverse()) c();
  };
};

function legend(): HTMLElement {
  const levels: (Severity | 'none')[] = ['none', 'info', 'warning', 'major', 'critical'];
  return h(
    'div',
    { class: 'legend', 'aria-label': t('sup.legend') },
    h('span', { class: 'legend-title' }, t('sup.legend')),
    ...levels.map((l) =>
      h(
        'span',
        { class: 'legend-item' },
        h('span', { class: `legend-swatch zone-${l}`, 'aria-hidden': 'true' }),
        t(`severity.${l}`),
      ),
    ),
  );
}

