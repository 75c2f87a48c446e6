//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every endpoint, written by hand.
//!
//! A test checks that every route of the router (see [`crate::routes()`]) is described here
//! and that nothing else is.

mod alarms;
mod audit;
mod gateways;
mod governance;
mod pooling;
mod retention;
mod session;

use serde_json::{json, Value};

use crate::json::ApiJson;
use crate::query::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
use crate::routes::readings::{DEFAULT_LIMIT, MAX_BUCKETS, MAX_IDS_PER_PARAM, MAX_LIMIT};

/// The document.
pub async fn openapi() -> ApiJson<Value> {
    ApiJson(document())
}

fn problem_responses(codes: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for code in codes {
        map.insert(
            (*code).to_owned(),
            json!({ "$ref": format!("#/components/responses/{}", response_name(code)) }),
        );
    }
    Value::Object(map)
}

fn response_name(code: &str) -> &'static str {
    match code {
        "400" => "BadRequest",
        "401" => "Unauthorized",
        "403" => "Forbidden",
        "404" => "NotFound",
        "409" => "Conflict",
        "413" => "PayloadTooLarge",
        "415" => "UnsupportedMediaType",
        "503" => "Unavailable",
        _ => "Error",
    }
}

/// A `200` JSON response with `schema`, plus the problem responses `errors`.
fn responses(description: &str, schema: Value, errors: &[&str]) -> Value {
    let mut all = problem_responses(errors);
    if let Value::Object(map) = &mut all {
        map.insert(
            "200".to_owned(),
            json!({ "description": description,
                    "content": { "application/json": { "schema": schema } } }),
        );
        map.insert(
            "default".to_owned(),
            json!({ "$ref": "#/components/responses/Error" }),
        );
    }
    all
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn items_of(name: &str) -> Value {
    json!({ "type": "object", "required": ["items"],
            "properties": { "items": { "type": "array", "items": schema_ref(name) } } })
}

fn page_of(name: &str) -> Value {
    json!({ "type": "object", "required": ["items", "next_offset"],
            "properties": {
                "items": { "type": "array", "items": schema_ref(name) },
                "next_offset": { "type": ["integer", "null"], "minimum": 0 } } })
}

fn param_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

fn id_param(description: &str) -> Value {
    json!({ "name": "id", "in": "path", "required": true, "description": description,
            "schema": schema_ref("Slug") })
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut doc = core_document();
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        paths.extend(alarms::paths());
        paths.extend(audit::paths());
        paths.extend(gateways::paths());
        paths.extend(governance::paths());
        paths.extend(pooling::paths());
        paths.extend(retention::paths());
        paths.extend(session::paths());
    }
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        schemas.extend(alarms::schemas());
        schemas.extend(audit::schemas());
        schemas.extend(gateways::schemas());
        schemas.extend(governance::schemas());
        schemas.extend(pooling::schemas());
        schemas.extend(retention::schemas());
        schemas.extend(session::schemas());
    }
    doc
}

/// The document's frame and the data endpoints.
fn core_document() -> Value {
    let read_errors = ["400", "401"];
    let filter_params = [
        param_ref("sensor"),
        param_ref("metric"),
        param_ref("zone"),
        param_ref("from"),
        param_ref("to"),
    ];
    let mut raw_params = filter_params.to_vec();
    raw_params.extend([param_ref("readingLimit"), param_ref("cursor")]);
    let mut bucket_params = filter_params.to_vec();
    bucket_params.push(param_ref("bucket"));

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Beffroi API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Multi-tenant IoT trust platform. Every /api/v1 endpoint except this \
                document needs `Authorization: Bearer <token>`; the token's tenant scopes every \
                query. Roles: viewer < operator < admin. Errors are application/problem+json.",
            "license": { "name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later" }
        },
        "security": [ { "bearer": [] } ],
        "paths": {
            "/healthz": { "get": {
                "operationId": "healthz", "summary": "The process is alive.", "security": [],
                "responses": responses("Alive.", schema_ref("Status"), &[]) } },
            "/readyz": { "get": {
                "operationId": "readyz",
                "summary": "Ingest and broker are up and the store answers.", "security": [],
                "responses": responses("Ready.", schema_ref("Status"), &["503"]) } },
            "/metrics": { "get": {
                "operationId": "metrics", "summary": "Prometheus metrics.", "security": [],
                "responses": { "200": { "description": "Prometheus text format 0.0.4.",
                    "content": { "text/plain; version=0.0.4": { "schema": { "type": "string" } } } } } } },
            "/api/v1/openapi.json": { "get": {
                "operationId": "openapi", "summary": "This document.", "security": [],
                "responses": responses("OpenAPI 3.1 document.", json!({ "type": "object" }), &[]) } },
            "/api/v1/tenant": { "get": {
                "operationId": "getTenant", "summary": "The caller's tenant.",
                "responses": responses("The tenant.", schema_ref("Tenant"), &["401", "404"]) } },
            "/api/v1/sensors": { "get": {
                "operationId": "listSensors", "summary": "The caller's sensors.",
                "responses": responses("Sensors.", items_of("Sensor"), &read_errors) } },
            "/api/v1/sensors/{id}": { "put": {
                "operationId": "putSensor", "summary": "Creates or replaces a sensor (admin).",
                "parameters": [ id_param("Sensor id.") ],
                "requestBody": { "required": true,
                    "content": { "application/json": { "schema": schema_ref("SensorBody") } } },
                "responses": responses("The sensor as stored.", schema_ref("Sensor"),
                    &["400", "401", "403", "413", "415"]) } },
            "/api/v1/zones": { "get": {
                "operationId": "listZones", "summary": "The caller's zones.",
                "responses": responses("Zones.", items_of("Zone"), &read_errors) } },
            "/api/v1/zones/{id}": { "put": {
                "operationId": "putZone", "summary": "Creates or replaces a zone (admin).",
                "parameters": [ id_param("Zone id.") ],
                "requestBody": { "required": true,
                    "content": { "application/json": { "schema": schema_ref("ZoneBody") } } },
                "responses": responses("The zone as stored.", schema_ref("Zone"),
                    &["400", "401", "403", "413", "415"]) } },
            "/api/v1/readings": { "get": {
                "operationId": "listReadings",
                "summary": "Raw readings in [from, to), oldest first, keyset-paginated.",
                "description": "Missing `to` is now, missing `from` is `to` - 24 h; the range \
                    spans at most 31 days. Follow `next_cursor` with the same filter.",
                "parameters": raw_params,
                "responses": responses("A page of readings.", schema_ref("ReadingsPage"),
                    &["400", "401", "404"]) } },
            "/api/v1/readings/buckets": { "get": {
                "operationId": "listReadingBuckets",
                "summary": "avg/min/max/count of numeric readings per bucket, sensor and metric.",
                "description": format!("Buckets are aligned on the Unix epoch. Missing `to` is \
                    now, missing `from` is `to` - 24 h; the range spans at most 366 days and \
                    {MAX_BUCKETS} buckets."),
                "parameters": bucket_params,
                "responses": responses("Buckets.", schema_ref("BucketsResponse"),
                    &["400", "401", "404"]) } },
            "/api/v1/quarantine": { "get": {
                "operationId": "listQuarantine",
                "summary": "The caller's quarantined messages, newest first.",
                "parameters": [ param_ref("limit"), param_ref("offset") ],
                "responses": responses("A page.", page_of("QuarantineRecord"), &read_errors) } },
            "/api/v1/security-events": { "get": {
                "operationId": "listSecurityEvents",
                "summary": "The caller's security events, newest first.",
                "parameters": [ param_ref("limit"), param_ref("offset") ],
                "responses": responses("A page.", page_of("SecurityEvent"), &read_errors) } }
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "bfr_<id>_<secret>",
                    "description": "An API token issued by `beffroi token create`." }
            },
            "parameters": {
                "sensor": { "name": "sensor", "in": "query", "style": "form", "explode": true,
                    "description": format!("Only these sensors (repeatable, at most {MAX_IDS_PER_PARAM})."),
                    "schema": { "type": "array", "items": schema_ref("Slug"), "maxItems": MAX_IDS_PER_PARAM } },
                "metric": { "name": "metric", "in": "query", "style": "form", "explode": true,
                    "description": format!("Only these metrics (repeatable, at most {MAX_IDS_PER_PARAM})."),
                    "schema": { "type": "array", "items": schema_ref("MetricName"), "maxItems": MAX_IDS_PER_PARAM } },
                "zone": { "name": "zone", "in": "query",
                    "description": "Only sensors registered in this zone (404 if the tenant has no such zone).",
                    "schema": schema_ref("Slug") },
                "from": { "name": "from", "in": "query", "description": "Start, inclusive (default: to - 24 h).",
                    "schema": { "type": "string", "format": "date-time" } },
                "to": { "name": "to", "in": "query", "description": "End, exclusive (default: now).",
                    "schema": { "type": "string", "format": "date-time" } },
                "readingLimit": { "name": "limit", "in": "query", "description": "Page size.",
                    "schema": { "type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT } },
                "cursor": { "name": "cursor", "in": "query",
                    "description": "`next_cursor` of the previous page (opaque).",
                    "schema": { "type": "string" } },
                "bucket": { "name": "bucket", "in": "query", "description": "Bucket width.",
                    "schema": { "type": "string", "enum": ["1m", "5m", "15m", "1h", "1d"], "default": "1h" } },
                "limit": { "name": "limit", "in": "query", "description": "Page size.",
                    "schema": { "type": "integer", "minimum": 1, "maximum": MAX_PAGE_LIMIT, "default": DEFAULT_PAGE_LIMIT } },
                "offset": { "name": "offset", "in": "query", "description": "Items to skip.",
                    "schema": { "type": "integer", "minimum": 0, "default": 0 } }
            },
            "responses": {
                "BadRequest": problem_response("Bad id, time, parameter, cursor or body."),
                "Unauthorized": problem_response("Missing, malformed or unknown bearer token."),
                "Forbidden": problem_response("The token's role does not allow this."),
                "NotFound": problem_response("No such thing in the caller's tenant."),
                "Conflict": problem_response("The change conflicts with the current state."),
                "PayloadTooLarge": problem_response("The body exceeds 1 MiB."),
                "UnsupportedMediaType": problem_response("The body is not application/json."),
                "Unavailable": problem_response("Not ready, or the request timed out."),
                "Error": problem_response("Any other error.")
            },
            "schemas": schemas()
        }
    })
}

fn problem_response(description: &str) -> Value {
    json!({ "description": description,
            "content": { "application/problem+json": { "schema": schema_ref("Problem") } } })
}

fn schemas() -> Value {
    let time = json!({ "type": "string", "format": "date-time" });
    json!({
        "Problem": { "type": "object", "description": "RFC 9457 problem details.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": { "type": "string", "description": "urn:beffroi:problem:<kind>" },
                "title": { "type": "string" },
                "status": { "type": "integer" },
                "detail": { "type": "string" } } },
        "Status": { "type": "object", "required": ["status"],
            "properties": { "status": { "type": "string" }, "store": { "type": "string" } } },
        "Slug": { "type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$" },
        "MetricName": { "type": "string", "pattern": "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$",
            "maxLength": 64 },
        "Value": { "oneOf": [ { "type": "number" }, { "type": "boolean" },
            { "type": "string", "maxLength": 256 } ] },
        "Tenant": { "type": "object", "required": ["id", "name", "created_at"],
            "properties": { "id": schema_ref("Slug"), "name": { "type": "string" }, "created_at": time } },
        "Gap": { "type": "object",
            "required": ["first_seq", "last_seq", "batches", "readings", "reason"],
            "properties": { "first_seq": { "type": "integer" }, "last_seq": { "type": "integer" },
                "batches": { "type": "integer" }, "readings": { "type": "integer" },
                "reason": { "type": "string", "enum": ["spool-full", "crash-restart"] } } },
        "GatewayState": { "type": "object", "properties": {
            "last_seen": { "type": ["string", "null"], "format": "date-time" },
            "spool_batches": { "type": "integer" }, "spool_bytes": { "type": "integer" },
            "oldest_unacked_age_s": { "type": ["integer", "null"] },
            "batches_dropped": { "type": "integer" }, "readings_dropped": { "type": "integer" },
            "gaps": { "type": "array", "items": schema_ref("Gap") },
            "agent_version": { "type": ["string", "null"] }, "rss_bytes": { "type": "integer" },
            "last_committed_seq": { "type": ["integer", "null"] } } },
        "Sensor": { "type": "object", "required": ["tenant", "id", "kind"],
            "properties": { "tenant": schema_ref("Slug"), "id": schema_ref("Slug"),
                "kind": { "type": "string" }, "unit": { "type": ["string", "null"] },
                "lat": { "type": ["number", "null"] }, "lon": { "type": ["number", "null"] },
                "zone": { "oneOf": [ schema_ref("Slug"), { "type": "null" } ] },
                "tags": { "type": "array", "items": schema_ref("Slug") },
                "placed_at": { "type": "string", "format": "date-time",
                    "description": "Since when it stands at lat/lon (its last move)." } } },
        "SensorBody": { "type": "object", "required": ["kind"], "additionalProperties": false,
            "properties": {
                "kind": { "type": "string", "pattern": "^[a-z0-9_-]{1,32}$" },
                "unit": { "type": ["string", "null"], "maxLength": 32 },
                "lat": { "type": ["number", "null"], "minimum": -90, "maximum": 90 },
                "lon": { "type": ["number", "null"], "minimum": -180, "maximum": 180 },
                "zone": { "oneOf": [ schema_ref("Slug"), { "type": "null" } ] },
                "tags": { "type": "array", "items": schema_ref("Slug"), "maxItems": 32 },
                "placed_at": { "type": ["string", "null"], "format": "date-time",
                    "description": "When a put that changes lat/lon moved it (default now; not \
                        in the future, not before its previous move)." } } },
        "Geometry": { "type": "object", "required": ["type", "coordinates"],
            "description": "GeoJSON Polygon or MultiPolygon: closed rings of at least 4 [lon, lat] positions.",
            "properties": { "type": { "type": "string", "enum": ["Polygon", "MultiPolygon"] },
                "coordinates": { "type": "array" } } },
        "Zone": { "type": "object", "required": ["tenant", "id", "name", "geometry"],
            "properties": { "tenant": schema_ref("Slug"), "id": schema_ref("Slug"),
                "name": { "type": "string" }, "geometry": schema_ref("Geometry") } },
        "ZoneBody": { "type": "object", "required": ["name", "geometry"], "additionalProperties": false,
            "properties": { "name": { "type": "string", "minLength": 1, "maxLength": 200 },
                "geometry": schema_ref("Geometry") } },
        "Reading": { "type": "object",
            "required": ["gateway", "seq", "sensor", "metric", "unit", "time", "value"],
            "properties": { "gateway": schema_ref("Slug"), "seq": { "type": "integer" },
                "sensor": schema_ref("Slug"), "metric": schema_ref("MetricName"),
                "unit": { "type": "string" }, "time": time, "value": schema_ref("Value") } },
        "ReadingsPage": { "type": "object", "required": ["from", "to", "items", "next_cursor"],
            "properties": { "from": time, "to": time,
                "items": { "type": "array", "items": schema_ref("Reading") },
                "next_cursor": { "type": ["string", "null"] } } },
        "Bucket": { "type": "object",
            "required": ["start", "sensor", "metric", "avg", "min", "max", "count"],
            "properties": { "start": time, "sensor": schema_ref("Slug"),
                "metric": schema_ref("MetricName"), "avg": { "type": "number" },
                "min": { "type": "number" }, "max": { "type": "number" },
                "count": { "type": "integer" } } },
        "BucketsResponse": { "type": "object", "required": ["from", "to", "bucket", "items"],
            "properties": { "from": time, "to": time,
                "bucket": { "type": "string", "enum": ["1m", "5m", "15m", "1h", "1d"] },
                "items": { "type": "array", "items": schema_ref("Bucket") } } },
        "QuarantineRecord": { "type": "object",
            "required": ["topic", "reason", "detail", "received_at"],
            "properties": { "tenant": { "type": ["string", "null"] },
                "gateway": { "type": ["string", "null"] }, "topic": { "type": "string" },
                "seq": { "type": ["integer", "null"] },
                "reason": { "type": "string", "enum": ["bad_signature", "unknown_key", "revoked",
                    "retired_key", "replay", "stale", "future", "malformed", "acl"] },
                "detail": { "type": "string" }, "received_at": time,
                "settles_seq": { "type": "boolean",
                    "description": "The batch was authentic and its seq is acknowledged although not stored" } } },
        "SecurityEvent": { "type": "object", "required": ["time", "kind", "detail"],
            "properties": { "time": time, "tenant": { "type": ["string", "null"] },
                "gateway": { "type": ["string", "null"] }, "address": { "type": ["string", "null"] },
                "kind": { "type": "string", "enum": ["quarantined", "tls_rejected",
                    "revoked_certificate", "client_id_mismatch", "acl_violation",
                    "connection_limit", "protocol_violation", "audit_tampered", "enrollment_refused"] },
                "detail": { "type": "string" } } }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths object");
        let routes = crate::routes();
        for (method, path) in &routes {
            let op = &paths.get(*path).unwrap_or_else(|| panic!("{path} missing"))
                [method.as_str().to_lowercase()];
            assert!(op.is_object(), "{method} {path} missing");
        }
        let documented: usize = paths
            .values()
            .map(|p| p.as_object().map_or(0, |o| o.len()))
            .sum();
        assert_eq!(documented, routes.len());
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "dangling {r}");
        }
    }

    /// Every operation behind a token documents 401, and every operation that takes a
    /// parameter or a body documents 400: the answers any client can provoke (Schemathesis
    /// found `/api/v1/agreements/{id}/odrl` without them, issue #11).
    #[test]
    fn every_operation_documents_the_errors_it_can_answer() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths object");
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("path item") {
                let responses = &op["responses"];
                let secured = op.get("security").unwrap_or(&doc["security"]);
                if secured.as_array().is_some_and(|s| !s.is_empty()) {
                    assert!(responses.get("401").is_some(), "{method} {path}: no 401");
                }
                let takes_input = path.contains('{')
                    || op.get("requestBody").is_some()
                    || op["parameters"].as_array().is_some_and(|p| !p.is_empty());
                if takes_input {
                    assert!(responses.get("400").is_some(), "{method} {path}: no 400");
                }
            }
        }
    }

    fn collect_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(s)) => out.push(s.clone()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
