//! The OpenAPI description of retention policies.

use serde_json::{json, Map, Value};

use super::{items_of, responses, schema_ref};

/// `/api/v1/retention…`.
pub(super) fn paths() -> Map<String, Value> {
    let class = json!({ "name": "class", "in": "path", "required": true,
        "description": "Metric class, URL-encoded: a metric (`air.pm25`), a dotted prefix \
            (`air.*`, sent as `air.%2A`) or `*` (`%2A`).",
        "schema": schema_ref("MetricClass") });
    let write_errors = ["400", "401", "403", "413", "415", "503"];
    let mut deleted = responses("unused", json!({}), &["400", "401", "403", "404", "503"]);
    if let Value::Object(map) = &mut deleted {
        map.remove("200");
        map.insert(
            "204".into(),
            json!({ "description": "Deleted; its metrics follow the next most specific class." }),
        );
    }
    let paths = json!({
        "/api/v1/retention": { "get": {
            "operationId": "listRetention",
            "summary": "The caller's retention policies, by class.",
            "description": "A metric follows the most specific class that matches it: an exact \
                metric, then the longest prefix, then `*`.",
            "responses": responses("Policies.", items_of("RetentionPolicy"), &["401"]) } },
        "/api/v1/retention/{class}": {
            "put": { "operationId": "putRetention",
                "summary": "Creates or replaces the policy of a class (admin); audited first.",
                "parameters": [ class ],
                "requestBody": { "required": true,
                    "content": { "application/json": { "schema": schema_ref("RetentionBody") } } },
                "responses": responses("The policy as stored.", schema_ref("RetentionPolicy"),
                    &write_errors) },
            "delete": { "operationId": "deleteRetention",
                "summary": "Deletes the policy of a class (admin); audited first.",
                "parameters": [ class ], "responses": deleted } }
    });
    match paths {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The schemas of retention policies.
pub(super) fn schemas() -> Map<String, Value> {
    let days = json!({ "type": ["integer", "null"], "minimum": 1,
        "maximum": beffroi_store::MAX_RETENTION_DAYS,
        "description": "Days kept; null: kept (up to the instance-wide retention)." });
    let schemas = json!({
        "MetricClass": { "type": "string",
            "pattern": "^(\\*|[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*(\\.\\*)?)$",
            "maxLength": 66 },
        "RetentionBody": { "type": "object", "additionalProperties": false,
            "properties": { "raw_days": days, "aggregate_days": days } },
        "RetentionPolicy": { "type": "object",
            "required": ["tenant", "class", "raw_days", "aggregate_days", "updated_at"],
            "properties": { "tenant": schema_ref("Slug"), "class": schema_ref("MetricClass"),
                "raw_days": days, "aggregate_days": days,
                "updated_at": { "type": "string", "format": "date-time" } } }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
