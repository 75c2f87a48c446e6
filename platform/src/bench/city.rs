//! The benchmark's city: zones on a grid around a centre, and sensors registered in them with
//! a position inside their zone, so that live views filter by zone the way the dashboard's
//! do (the hub matches a view against the registry, not against the readings).
//!
//! ```text
//! zone i     : cell (i mod cols, i div cols) of a grid of ZONE_SIZE° squares, cols = ⌈√zones⌉
//! sensor n   : the n-th sensor registered in the run (gateway-major) goes to zone n mod zones,
//!              at a point inside that square
//! ```

use beffroi_protocol::{SensorId, TenantId};
use beffroi_store::{Sensor, Store, Zone, ZoneId};

/// South-west corner of the grid (Lyon).
const ORIGIN: (f64, f64) = (4.80, 45.73);
/// Side of a zone, degrees.
const ZONE_SIZE: f64 = 0.01;

/// The zones of a run, in order.
#[derive(Debug, Clone)]
pub(crate) struct City {
    /// Zone ids `zone-01`, `zone-02`, …
    pub zones: Vec<ZoneId>,
}

impl City {
    /// Creates `count` zones for `tenant`.
    pub(crate) async fn create(
        store: &dyn Store,
        tenant: &TenantId,
        count: usize,
    ) -> anyhow::Result<Self> {
        let mut zones = Vec::with_capacity(count);
        for i in 0..count {
            let id = ZoneId::new(format!("zone-{:02}", i + 1))?;
            let (west, south) = corner(i, count);
            let (east, north) = (west + ZONE_SIZE, south + ZONE_SIZE);
            store
                .upsert_zone(&Zone {
                    tenant: tenant.clone(),
                    id: id.clone(),
                    name: format!("Zone {}", i + 1),
                    geometry: serde_json::json!({
                        "type": "Polygon",
                        "coordinates": [[[west, south], [east, south], [east, north],
                                         [west, north], [west, south]]],
                    }),
                })
                .await?;
            zones.push(id);
        }
        Ok(Self { zones })
    }

    /// The zone of the `n`-th sensor of the run.
    pub(crate) fn zone_of(&self, n: usize) -> usize {
        n % self.zones.len().max(1)
    }

    /// Registers the `n`-th sensor of the run in its zone, at a point inside it.
    pub(crate) async fn register(
        &self,
        store: &dyn Store,
        tenant: &TenantId,
        sensor: &SensorId,
        kind: &str,
        n: usize,
    ) -> anyhow::Result<()> {
        let zone = self.zone_of(n);
        let (west, south) = corner(zone, self.zones.len());
        // Spread inside the square, away from its edges.
        let step = (n / self.zones.len().max(1)) as f64;
        let (dx, dy) = ((step * 0.37).fract(), (step * 0.61).fract());
        store
            .upsert_sensor(&Sensor {
                tenant: tenant.clone(),
                id: sensor.clone(),
                kind: kind.to_owned(),
                unit: None,
                lon: Some(west + ZONE_SIZE * (0.1 + 0.8 * dx)),
                lat: Some(south + ZONE_SIZE * (0.1 + 0.8 * dy)),
                zone: Some(self.zones[zone].clone()),
                tags: Vec::new(),
                placed_at: None,
            })
            .await?;
        Ok(())
    }

    /// The `filter` of a live view on zone `i`.
    pub(crate) fn zone_filter(&self, i: usize) -> serde_json::Value {
        serde_json::json!({ "zones": [self.zones[i % self.zones.len().max(1)].as_str()] })
    }
}

/// South-west corner of zone `i` of `count`.
fn corner(i: usize, count: usize) -> (f64, f64) {
    let cols = (count as f64).sqrt().ceil().max(1.0) as usize;
    (
        ORIGIN.0 + (i % cols) as f64 * ZONE_SIZE,
        ORIGIN.1 + (i / cols) as f64 * ZONE_SIZE,
    )
}
