//! The OpenAPI description of pooled sensor networks: the operator's usage report.

use serde_json::{json, Map, Value};

use super::{param_ref, responses, schema_ref};

/// `/api/v1/pooling/usage`.
pub(super) fn paths() -> Map<String, Value> {
    let mut ok = responses(
        "The report.",
        schema_ref("PoolingUsage"),
        &["400", "401", "403", "503"],
    );
    ok["200"]["content"]["text/csv"] = json!({ "schema": { "type": "string",
        "description": "beneficiary,agreement,period_from,period_to,sensors,accesses,readings_served,denied" } });
    let paths = json!({
        "/api/v1/pooling/usage": { "get": {
            "operationId": "poolingUsage",
            "summary": "Admin: what the caller's pooled sensors served each beneficiary, per \
                calendar month or day.",
            "description": "Per pooling agreement and period: the sensors pooled, the accesses \
                permitted (REST, exports, live views), the readings they served and the \
                accesses denied, counted from the caller's audit log. Default range: the \
                current month so far; at most 366 days. Recorded like a read of the audit log.",
            "parameters": [ param_ref("from"), param_ref("to"),
                { "name": "period", "in": "query", "description": "How the report is cut.",
                  "schema": { "type": "string", "enum": ["month", "day"], "default": "month" } },
                { "name": "format", "in": "query", "description": "JSON or RFC 4180 CSV.",
                  "schema": { "type": "string", "enum": ["json", "csv"], "default": "json" } } ],
            "responses": ok } }
    });
    match paths {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Its schemas.
pub(super) fn schemas() -> Map<String, Value> {
    let time = json!({ "type": "string", "format": "date-time" });
    let count = json!({ "type": "integer", "minimum": 0 });
    let schemas = json!({
        "PoolingUsage": { "type": "object", "required": ["operator", "from", "to", "items"],
            "properties": { "operator": schema_ref("Slug"), "from": time, "to": time,
                "items": { "type": "array", "items": { "type": "object",
                    "required": ["beneficiary", "agreement", "period_from", "period_to",
                        "sensors", "accesses", "readings_served", "denied"],
                    "properties": { "beneficiary": schema_ref("Slug"),
                        "agreement": schema_ref("Slug"), "period_from": time, "period_to": time,
                        "sensors": count, "accesses": count, "readings_served": count,
                        "denied": count } } } } }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
