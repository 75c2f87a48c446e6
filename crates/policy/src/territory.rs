//! Territories: the area of a beneficiary's zone (a commune's boundary), against which a
//! pooling agreement places the operator's sensors ([`crate::Target::territories`]).
//!
//! An [`Area`] is read from the zone's GeoJSON (RFC 7946) `Polygon` or `MultiPolygon` and
//! answers whether a position `(lon, lat)` lies inside it, by the crossing-number rule over
//! every ring of a polygon (so holes are outside). The rule is half-open: a position on an
//! edge shared by two adjoining zones falls in exactly one of them, never both — a sensor on
//! the boundary between two communes is not pooled to both.
//!
//! Positions are compared in plain longitude/latitude, as GeoJSON draws its edges; zones do
//! not cross the antimeridian.

use serde_json::Value;

use crate::ids::ZoneId;

/// One point, `(lon, lat)` in degrees (WGS 84).
pub type Position = (f64, f64);

/// A polygon set: the outer ring and holes of each polygon.
#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    polygons: Vec<Vec<Vec<Position>>>,
}

impl Area {
    /// The area of a GeoJSON `Polygon` or `MultiPolygon` geometry; `None` for anything else
    /// (an area that cannot be read places nothing inside it: fail closed).
    pub fn from_geojson(geometry: &Value) -> Option<Self> {
        let coordinates = geometry.get("coordinates")?;
        let polygons = match geometry.get("type")?.as_str()? {
            "Polygon" => vec![polygon(coordinates)?],
            "MultiPolygon" => coordinates
                .as_array()?
                .iter()
                .map(polygon)
                .collect::<Option<_>>()?,
            _ => return None,
        };
        Some(Self { polygons })
    }

    /// Whether `position` lies inside (holes excluded).
    pub fn contains(&self, position: Position) -> bool {
        self.polygons.iter().any(|rings| {
            rings
                .iter()
                .filter(|ring| crosses_odd(ring, position))
                .count()
                % 2
                == 1
        })
    }
}

/// The areas of the territories a permit names (zones of the requester), to place readings
/// for [`crate::ReadingFacts::territories`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Territories(Vec<(ZoneId, Area)>);

impl Territories {
    /// These zones' areas.
    pub fn new(areas: impl IntoIterator<Item = (ZoneId, Area)>) -> Self {
        Self(areas.into_iter().collect())
    }

    /// Whether there is none (nothing to place).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The zones containing `position`; none when it is unknown.
    pub fn containing(&self, position: Option<Position>) -> Vec<ZoneId> {
        let Some(position) = position else {
            return Vec::new();
        };
        self.0
            .iter()
            .filter(|(_, area)| area.contains(position))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// The rings of one GeoJSON polygon.
fn polygon(value: &Value) -> Option<Vec<Vec<Position>>> {
    value
        .as_array()?
        .iter()
        .map(|ring| {
            ring.as_array()?
                .iter()
                .map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                .collect::<Option<Vec<_>>>()
        })
        .collect()
}

/// Whether a ray from `(x, y)` towards +x crosses `ring` an odd number of times. Edges are
/// half-open in y (`y0 <= y < y1` or the reverse), so a vertex is counted once.
fn crosses_odd(ring: &[Position], (x, y): Position) -> bool {
    let mut inside = false;
    for pair in ring.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if (y0 > y) != (y1 > y) {
            let cross = x0 + (y - y0) / (y1 - y0) * (x1 - x0);
            if x < cross {
                inside = !inside;
            }
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> Value {
        json!([[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]])
    }

    #[test]
    fn polygons_with_holes_and_multipolygons() {
        let mut rings = square(0.0, 0.0, 10.0, 10.0);
        let hole = square(4.0, 4.0, 6.0, 6.0)[0].clone();
        rings.as_array_mut().unwrap().push(hole);
        let area = Area::from_geojson(&json!({"type": "Polygon", "coordinates": rings})).unwrap();
        assert!(area.contains((1.0, 1.0)));
        assert!(!area.contains((5.0, 5.0)), "inside the hole");
        assert!(!area.contains((11.0, 5.0)));
        let multi = json!({"type": "MultiPolygon",
            "coordinates": [square(0.0, 0.0, 1.0, 1.0), square(5.0, 5.0, 6.0, 6.0)]});
        let area = Area::from_geojson(&multi).unwrap();
        assert!(area.contains((0.5, 0.5)) && area.contains((5.5, 5.5)));
        assert!(!area.contains((3.0, 3.0)));
    }

    #[test]
    fn a_point_on_a_shared_boundary_is_in_exactly_one_of_two_adjoining_zones() {
        let west = Area::from_geojson(
            &json!({"type": "Polygon", "coordinates": square(4.80, 45.70, 4.85, 45.80)}),
        )
        .unwrap();
        let east = Area::from_geojson(
            &json!({"type": "Polygon", "coordinates": square(4.85, 45.70, 4.90, 45.80)}),
        )
        .unwrap();
        for y in [45.71, 45.75, 45.79] {
            let on_edge = (4.85, y);
            assert!(
                west.contains(on_edge) != east.contains(on_edge),
                "{on_edge:?}"
            );
        }
    }

    #[test]
    fn anything_but_a_polygon_is_no_area() {
        for bad in [
            json!({"type": "Point", "coordinates": [1.0, 2.0]}),
            json!({"type": "Polygon", "coordinates": [[["a", 0.0]]]}),
            json!({"type": "Polygon"}),
            json!("Polygon"),
        ] {
            assert_eq!(Area::from_geojson(&bad), None, "{bad}");
        }
    }
}
