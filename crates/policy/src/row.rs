//! One raw reading as a grantee receives it: only the columns its permit allows
//! ([`crate::Shape::Raw`]'s `fields`), the sensor id already pseudonymised when the agreement
//! says so. The REST rows, the live items and the exports all shape rows here, so that a
//! column dropped by an agreement is dropped on every read path.

use std::collections::BTreeSet;

use beffroi_protocol::{GatewayId, MetricName, Timestamp, Unit, Value};
use serde_json::Map;

use crate::ids::ZoneId;
use crate::terms::Field;

/// Every column a read path knows about one reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowSource<'a> {
    /// When it was measured.
    pub time: Timestamp,
    /// The value.
    pub value: &'a Value,
    /// Its unit.
    pub unit: &'a Unit,
    /// Its metric.
    pub metric: &'a MetricName,
    /// The sensor id as the grantee sees it (a pseudonym when the agreement pseudonymises).
    pub sensor: &'a str,
    /// The sensor's zone.
    pub zone: Option<&'a ZoneId>,
    /// The gateway that sent it.
    pub gateway: &'a GatewayId,
    /// Its batch's sequence number, where the read path has it (live values do not).
    pub seq: Option<u64>,
}

/// The JSON object of `source` with only `fields`. A field the read path does not have
/// (`seq` for live values; `received_at`, which the store does not keep per reading) is
/// left out, never sent as a made-up value.
pub fn shared_row(
    source: &RowSource<'_>,
    fields: &BTreeSet<Field>,
) -> Map<String, serde_json::Value> {
    use serde_json::Value as Json;
    let mut row = Map::new();
    for field in fields {
        let value = match field {
            Field::Time => Json::from(source.time.to_string()),
            Field::Value => serde_json::to_value(source.value).unwrap_or(Json::Null),
            Field::Unit => Json::from(source.unit.as_str()),
            Field::Metric => Json::from(source.metric.as_str()),
            Field::Sensor => Json::from(source.sensor),
            Field::Zone => source.zone.map_or(Json::Null, |z| Json::from(z.as_str())),
            Field::Gateway => Json::from(source.gateway.as_str()),
            Field::Seq => match source.seq {
                Some(seq) => Json::from(seq),
                None => continue,
            },
            Field::ReceivedAt => continue,
        };
        row.insert(field.as_str().to_owned(), value);
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allowed_fields_appear() {
        let (unit, metric) = (
            Unit::new("ug/m3").unwrap(),
            MetricName::new("air.pm25").unwrap(),
        );
        let (gateway, zone) = (
            GatewayId::new("gw-1").unwrap(),
            ZoneId::new("centre").unwrap(),
        );
        let value = Value::Number(12.5);
        let source = RowSource {
            time: Timestamp::from_unix_micros(1_700_000_000_000_000),
            value: &value,
            unit: &unit,
            metric: &metric,
            sensor: "p_abc",
            zone: Some(&zone),
            gateway: &gateway,
            seq: None,
        };
        let fields: BTreeSet<Field> = [Field::Sensor, Field::Value, Field::Seq, Field::ReceivedAt]
            .into_iter()
            .collect();
        let row = shared_row(&source, &fields);
        let keys: Vec<&str> = row.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["sensor", "value"],
            "no seq without one, never received_at"
        );
        assert_eq!(row["sensor"], "p_abc");
        assert_eq!(row["value"], 12.5);

        let all: BTreeSet<Field> = [Field::Zone, Field::Gateway, Field::Time, Field::Seq].into();
        let row = shared_row(
            &RowSource {
                seq: Some(7),
                ..source
            },
            &all,
        );
        assert_eq!(row["zone"], "centre");
        assert_eq!(row["gateway"], "gw-1");
        assert_eq!(row["seq"], 7);
        assert_eq!(row["time"], "2023-11-14T22:13:20.000000Z");
    }
}
