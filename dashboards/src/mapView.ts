// The supervision map (Leaflet): zones as GeoJSON polygons coloured by severity, sensors as
// clustered markers (supercluster: only the clusters and points of the view are in the DOM),
// on a plain background unless the platform configures a raster tile URL.

import L from 'leaflet';
import 'leaflet/dist/leaflet.css';
import Supercluster, { type ClusterProperties } from 'supercluster';
import type { Feature, FeatureCollection, Point } from 'geojson';

import { zoneStyle } from './alarms';
import type { Registry } from './context';
import { viewBBox, type BBox } from './geo';
import { t } from './i18n';
import type { DashboardConfig, Severity } from './types';

export interface MapViewOptions {
  container: HTMLElement;
  config: DashboardConfig;
  registry: Registry;
  /** After every pan or zoom (not debounced), with the visible bbox. */
  onMove: (view: BBox) => void;
  /** The popup's content; the caller keeps it current in place while it is open. */
  popupContent: (sensorId: string) => HTMLElement;
  sensorSeverity: (sensorId: string) => Severity | undefined;
  onSensorOpen?: (sensorId: string | null) => void;
  /** Whether a sensor is another tenant's, pooled to this one (drawn apart). */
  isPooled?: (sensorId: string) => boolean;
}

interface SensorProps {
  id: string;
}

/** Up to this many zones, their names stay on the map. */
const PERMANENT_LABELS_MAX = 40;

/** Where the map opens when there is nothing to fit (metropolitan France). */
const DEFAULT_CENTER: L.LatLngExpression = [46.6, 2.4];

export class MapView {
  private readonly map: L.Map;
  private readonly zoneLayers = new Map<string, L.Path>();
  private readonly markers: L.LayerGroup;
  private readonly index: Supercluster<SensorProps>;
  private openSensor: string | null = null;
  private popup: L.Popup | null = null;
  readonly hasData: boolean;

  constructor(private readonly opts: MapViewOptions) {
    const { container, config, registry } = opts;
    this.map = L.map(container, {
      zoomControl: true,
      attributionControl: true,
      keyboard: true,
      minZoom: 2,
      maxZoom: 19,
      worldCopyJump: false,
      zoomSnap: 0.5,
    });
    this.map.attributionControl.setPrefix(false);
    if (config.tile_url) {
      L.tileLayer(config.tile_url, {
        attribution: config.tile_attribution ?? '',
        maxZoom: 19,
        crossOrigin: true,
      }).addTo(this.map);
    }

    // Zones.
    const features: Feature[] = registry.zones.map((z) => ({
      type: 'Feature',
      id: z.id,
      properties: { id: z.id, name: z.name },
      geometry: z.geometry,
    }));
    const zoneCollection: FeatureCollection = { type: 'FeatureCollection', features };
    const zonesLayer = L.geoJSON(zoneCollection, {
      style: () => zoneStyle(undefined),
      onEachFeature: (feature, layer) => {
        const id = String((feature.properties as { id: string }).id);
        const name = String((feature.properties as { name: string }).name);
        this.zoneLayers.set(id, layer as L.Path);
        // Names on the map while they stay readable; on hover beyond that.
        layer.bindTooltip(
          name,
          registry.zones.length <= PERMANENT_LABELS_MAX
            ? { permanent: true, direction: 'center', className: 'zone-label' }
            : { sticky: true },
        );
      },
    }).addTo(this.map);

    // Sensors.
    const points: Feature<Point, SensorProps>[] = [];
    for (const s of registry.sensors) {
      if (s.lat === null || s.lon === null) continue;
      points.push({
        type: 'Feature',
        properties: { id: s.id },
        geometry: { type: 'Point', coordinates: [s.lon, s.lat] },
      });
    }
    this.index = new Supercluster<SensorProps>({ radius: 56, maxZoom: 17, minPoints: 3 });
    this.index.load(points);
    this.markers = L.layerGroup().addTo(this.map);

    // Fit.
    let bounds = zonesLayer.getBounds();
    for (const p of points) {
      const [lon, lat] = p.geometry.coordinates as [number, number];
      bounds = bounds.isValid() ? bounds.extend([lat, lon]) : L.latLngBounds([lat, lon], [lat, lon]);
    }
    this.hasData = bounds.isValid();
    if (this.hasData) this.map.fitBounds(bounds.pad(0.05), { maxZoom: 16, animate: false });
    else this.map.setView(DEFAULT_CENTER, 6);

    this.map.on('moveend', () => {
      this.renderMarkers();
      this.opts.onMove(this.viewBBox(0));
    });
    this.map.on('popupclose', (ev: L.PopupEvent) => {
      if (ev.popup === this.popup) {
        this.popup = null;
        this.openSensor = null;
        this.opts.onSensorOpen?.(null);
      }
    });
    this.renderMarkers();
  }

  /** The visible area as a live bbox, padded by `pad` of its size on each side. */
  viewBBox(pad: number): BBox {
    const b = this.map.getBounds();
    return viewBBox(b.getWest(), b.getSouth(), b.getEast(), b.getNorth(), pad);
  }

  setZoneSeverities(worst: ReadonlyMap<string, Severity>): void {
    for (const [id, layer] of this.zoneLayers) layer.setStyle(zoneStyle(worst.get(id)));
  }

  /** Redraws the clusters and points of the view (after a pan, a zoom or an alarm change). */
  renderMarkers(): void {
    const b = this.map.getBounds();
    const zoom = Math.round(this.map.getZoom());
    const bbox = viewBBox(b.getWest(), b.getSouth(), b.getEast(), b.getNorth(), 0.1);
    const items = this.index.getClusters(bbox, zoom);
    const layers: L.Layer[] = [];
    for (const item of items) {
      const [lon, lat] = item.geometry.coordinates as [number, number];
      const props = item.properties as Partial<ClusterProperties> & Partial<SensorProps>;
      if (props.cluster && props.cluster_id !== undefined) {
        const count = props.point_count ?? 0;
        const size = count < 10 ? 30 : count < 100 ? 36 : count < 1000 ? 44 : 52;
        const clusterId = props.cluster_id;
        const marker = L.marker([lat, lon], {
          icon: L.divIcon({
            className: 'cluster-icon',
            html: `<span data-testid="cluster-marker" data-count="${count}">${String(props.point_count_abbreviated ?? count)}</span>`,
            iconSize: [size, size],
          }),
          keyboard: true,
          title: t('sup.cluster', { n: count }),
          alt: t('sup.cluster', { n: count }),
          riseOnHover: true,
        });
        onActivate(marker, () => {
          const z = Math.min(this.index.getClusterExpansionZoom(clusterId), 19);
          this.map.flyTo([lat, lon], z, { duration: 0.4 });
        });
        layers.push(marker);
      } else if (props.id) {
        layers.push(this.sensorMarker(props.id, lat, lon));
      }
    }
    this.markers.clearLayers();
    for (const l of layers) this.markers.addLayer(l);
  }

  private sensorMarker(id: string, lat: number, lon: number): L.Marker {
    const severity = this.opts.sensorSeverity(id);
    const pooled = this.opts.isPooled?.(id) ?? false;
    const marker = L.marker([lat, lon], {
      icon: L.divIcon({
        className: `sensor-icon${severity ? ` sev-${severity}` : ''}${pooled ? ' pooled' : ''}`,
        html: '<span></span>',
        iconSize: [18, 18],
      }),
      keyboard: true,
      title: t('sup.sensorMarker', { id }),
      alt: t('sup.sensorMarker', { id }),
    });
    marker.on('add', () => {
      const el = marker.getElement();
      if (el) {
        el.dataset['testid'] = 'sensor-marker';
        el.dataset['sensor'] = id;
        if (pooled) el.dataset['pooled'] = 'true';
      }
    });
    onActivate(marker, () => this.openPopup(id, lat, lon));
    return marker;
  }

  private openPopup(id: string, lat: number, lon: number): void {
    this.openSensor = id;
    this.popup = L.popup({ maxWidth: 320, autoPanPadding: [24, 24] })
      .setLatLng([lat, lon])
      .setContent(this.opts.popupContent(id))
      .openOn(this.map);
    this.opts.onSensorOpen?.(id);
    // Move focus into the popup so keyboard users can reach its link.
    const link = this.popup.getElement()?.querySelector<HTMLElement>('a, button');
    link?.focus({ preventScroll: true });
  }

  /** Lays the open popup out again after its content changed in place. */
  updatePopupLayout(): void {
    this.popup?.update();
  }

  get openSensorId(): string | null {
    return this.openSensor;
  }

  invalidateSize(): void {
    this.map.invalidateSize();
  }

  destroy(): void {
    this.map.off();
    this.map.remove();
  }
}

/** Runs `fn` when the marker is clicked, or activated with Enter or Space while focused. */
function onActivate(marker: L.Marker, fn: () => void): void {
  marker.on('click', fn);
  marker.on('keydown', (ev: L.LeafletKeyboardEvent) => {
    const key = ev.originalEvent.key;
    if (key === 'Enter' || key === ' ') {
      ev.originalEvent.preventDefault();
      fn();
    }
  });
}
