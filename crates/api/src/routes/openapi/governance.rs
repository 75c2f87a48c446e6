//! The OpenAPI description of data governance: a grantor's sharing agreements (with ODRL
//! export and import, key rotation and previews), partners, and the shared reads of grantees.

use serde_json::{json, Map, Value};

use super::{id_param, items_of, param_ref, responses, schema_ref};

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn grantor_param() -> Value {
    json!({ "name": "grantor", "in": "path", "required": true,
            "description": "The tenant whose data is shared.", "schema": schema_ref("Slug") })
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "description": description, "schema": schema })
}

/// The parameters every shared read takes.
fn common_params() -> Vec<Value> {
    vec![
        json!({ "name": "purpose", "in": "query", "required": true,
                "description": "Why you read; must be allowed by the agreement.",
                "schema": schema_ref("Purpose") }),
        query(
            "agreement",
            "Only this agreement may permit the read.",
            schema_ref("Slug"),
        ),
        json!({ "name": "metric", "in": "query", "style": "form", "explode": true,
                "description": "Metric patterns (`air.pm25`, `air.*`, `*`); default `*`.",
                "schema": { "type": "array", "items": { "type": "string" } } }),
        json!({ "name": "zone", "in": "query", "style": "form", "explode": true,
                "description": "Only these zones of the grantor.",
                "schema": { "type": "array", "items": schema_ref("Slug") } }),
        param_ref("from"),
        param_ref("to"),
    ]
}

fn fields_param() -> Value {
    json!({ "name": "fields", "in": "query", "style": "form", "explode": true,
            "description": "Columns wanted (repeatable or comma-separated); default every column the agreement allows.",
            "schema": { "type": "array", "items": schema_ref("Field") } })
}

fn readings_params() -> Vec<Value> {
    let mut params = common_params();
    params.extend([
        fields_param(),
        param_ref("readingLimit"),
        param_ref("cursor"),
    ]);
    params
}

fn aggregates_params() -> Vec<Value> {
    let mut params = common_params();
    params.extend(cell_params());
    params
}

/// The parameters of aggregates beyond the common ones.
fn cell_params() -> [Value; 3] {
    [
        query("bucket", "Bucket width: seconds or `15m`, `1h`, `1d` (default `1h`); a whole multiple of the agreement's minimum bucket, aligned on the epoch.",
            json!({ "type": "string", "default": "1h" })),
        json!({ "name": "functions", "in": "query", "style": "form", "explode": false,
                "description": "Functions (comma-separated or repeated); default `avg`.",
                "schema": { "type": "array", "items": schema_ref("Function") } }),
        query("level", "Spatial unit of the cells (default `zone`).",
            json!({ "type": "string", "enum": ["zone", "sensor"], "default": "zone" })),
    ]
}

fn export_params() -> Vec<Value> {
    let mut params = common_params();
    params.push(fields_param());
    params.push(query(
        "format",
        "`csv` (RFC 4180, header line; the default) or `senml` (RFC 8428 SenML JSON, raw rows only).",
        json!({ "type": "string", "enum": ["csv", "senml"], "default": "csv" }),
    ));
    params.extend(cell_params());
    params
}

/// The export's 200: a CSV or SenML download.
fn export_responses(errors: &[&str]) -> Value {
    let mut all = responses("The download.", json!({}), errors);
    all["200"] = json!({
        "description": "The download (`Content-Disposition: attachment`). Raw exports stream page by page; a body cut short (no final CSV line break, no closing `]`) was interrupted by an error.",
        "content": {
            "text/csv": { "schema": { "type": "string" } },
            "application/senml+json": { "schema": { "type": "array", "items": { "type": "object" } } }
        }
    });
    all
}

/// `/api/v1/agreements…`, `/api/v1/partners`, `/api/v1/shared…`.
pub(super) fn paths() -> Map<String, Value> {
    let write_errors = ["400", "401", "403", "404", "409", "413", "415", "503"];
    let agreement_body = json!({ "required": true,
        "content": { "application/json": { "schema": schema_ref("Agreement") } } });
    let id = id_param("Agreement id.");
    let shared_errors = ["400", "401", "403", "404", "409", "503"];
    let public = json!([ {}, { "bearer": [] } ]);
    let with = |first: &Value, rest: Vec<Value>| -> Vec<Value> {
        std::iter::once(first.clone()).chain(rest).collect()
    };
    let preview_readings = with(&id, readings_params());
    let preview_aggregates = with(&id, aggregates_params());
    let shared_readings = with(&grantor_param(), readings_params());
    let shared_aggregates = with(&grantor_param(), aggregates_params());
    let shared_export = with(&grantor_param(), export_params());
    object(json!({
        "/api/v1/agreements": {
            "get": { "operationId": "listAgreements", "summary": "The caller's sharing agreements.",
                "responses": responses("Agreements.", items_of("AgreementRecord"), &["401"]) },
            "post": { "operationId": "createAgreement",
                "summary": "Creates an agreement (admin), at version 1; state draft unless given.",
                "description": "Recorded in the audit log (agreement_change) before it is applied.",
                "requestBody": agreement_body,
                "responses": responses("The agreement as stored (201).", schema_ref("AgreementRecord"), &write_errors) } },
        "/api/v1/agreements/import": { "post": {
            "operationId": "importAgreement",
            "summary": "Imports an ODRL 2.2 policy as exported by …/odrl (admin), as a draft.",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
            "responses": responses("The agreement as stored (201).", schema_ref("AgreementRecord"), &write_errors) } },
        "/api/v1/agreements/{id}": {
            "get": { "operationId": "getAgreement", "summary": "One agreement.",
                "parameters": [ id ],
                "responses": responses("The agreement.", schema_ref("AgreementRecord"), &["400", "401", "404"]) },
            "put": { "operationId": "putAgreement",
                "summary": "Replaces an agreement's terms (admin), if it is still at the version read.",
                "description": "The version read is the If-Match header or the body's `version`; 409 if it moved on. The state is changed with …/state.",
                "parameters": [ id, { "name": "If-Match", "in": "header", "schema": { "type": "string" } } ],
                "requestBody": agreement_body,
                "responses": responses("The agreement at its new version.", schema_ref("AgreementRecord"), &write_errors) } },
        "/api/v1/agreements/{id}/state": { "post": {
            "operationId": "setAgreementState",
            "summary": "Moves an agreement along draft → active ⇄ suspended → revoked (admin).",
            "parameters": [ id ],
            "requestBody": { "required": true, "content": { "application/json": { "schema": {
                "type": "object", "required": ["state"], "additionalProperties": false,
                "properties": { "state": { "type": "string", "enum": ["active", "suspended", "revoked"] },
                    "version": { "type": "integer", "minimum": 1 } } } } } },
            "responses": responses("The agreement at its new version.", schema_ref("AgreementRecord"), &write_errors) } },
        "/api/v1/agreements/{id}/odrl": { "get": {
            "operationId": "exportAgreementOdrl", "summary": "The agreement as an ODRL 2.2 policy (JSON-LD).",
            "parameters": [ id ],
            "responses": { "200": { "description": "ODRL 2.2 JSON-LD.",
                "content": { "application/ld+json": { "schema": { "type": "object" } } } },
                "400": { "$ref": "#/components/responses/BadRequest" },
                "401": { "$ref": "#/components/responses/Unauthorized" },
                "404": { "$ref": "#/components/responses/NotFound" },
                "default": { "$ref": "#/components/responses/Error" } } } },
        "/api/v1/agreements/{id}/keys/rotate": { "post": {
            "operationId": "rotateAgreementKey",
            "summary": "New pseudonym key (admin): every pseudonym of the agreement changes. The key never leaves the server.",
            "parameters": [ id ],
            "responses": responses("The new epoch.", schema_ref("KeyRotation"), &write_errors) } },
        "/api/v1/agreements/{id}/preview/readings": { "get": {
            "operationId": "previewSharedReadings",
            "summary": "Exactly what the grantee gets for this readings query (audited as a preview).",
            "parameters": preview_readings,
            "responses": responses("The grantee's answer.", schema_ref("SharedRows"), &shared_errors) } },
        "/api/v1/agreements/{id}/preview/aggregates": { "get": {
            "operationId": "previewSharedAggregates",
            "summary": "Exactly what the grantee gets for this aggregates query (audited as a preview).",
            "parameters": preview_aggregates,
            "responses": responses("The grantee's answer.", schema_ref("SharedCells"), &shared_errors) } },
        "/api/v1/partners": {
            "get": { "operationId": "listPartners", "summary": "Partners that agreements may name.",
                "responses": responses("Partners.", items_of("Partner"), &["401", "403"]) },
            "post": { "operationId": "createPartner", "summary": "Creates a partner (platform operators).",
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["id", "name"], "additionalProperties": false,
                    "properties": { "id": schema_ref("Slug"), "name": { "type": "string", "maxLength": 200 } } } } } },
                "responses": responses("The partner (201).", schema_ref("Partner"), &["400", "401", "403", "409"]) } },
        "/api/v1/shared": { "get": {
            "operationId": "listSharedAgreements", "security": public,
            "summary": "Agreements granted to the requester (public ones without a token), with their terms.",
            "responses": responses("Agreements.", items_of("AgreementRecord"), &["401", "403"]) } },
        "/api/v1/shared/{grantor}/sensors": { "get": {
            "operationId": "listSharedSensors", "security": public,
            "summary": "The grantor's sensors (or zones, for zone-level agreements) within an agreement's scope.",
            "parameters": [ grantor_param(),
                json!({ "name": "purpose", "in": "query", "required": true, "schema": schema_ref("Purpose") }),
                query("agreement", "Required when several agreements concern you.", schema_ref("Slug")) ],
            "responses": responses("The registry in scope.", schema_ref("SharedRegistry"), &shared_errors) } },
        "/api/v1/shared/{grantor}/readings": { "get": {
            "operationId": "listSharedReadings", "security": public,
            "summary": "Raw rows under an agreement: allowed columns only, pseudonymised sensors when required.",
            "description": "Denied reads are 403 problems whose `reason` is the policy's code (no_agreement, wrong_purpose, outside_validity, field_not_allowed, …). Every read is audited in the grantor's log before data leaves; 503 if it cannot be.",
            "parameters": shared_readings,
            "responses": responses("A page of rows.", schema_ref("SharedRows"), &shared_errors) } },
        "/api/v1/shared/{grantor}/aggregates": { "get": {
            "operationId": "listSharedAggregates", "security": public,
            "summary": "Aggregates under an agreement, after small-cell and complementary suppression.",
            "description": "Suppressed cells are listed with `suppressed: true` and no value.",
            "parameters": shared_aggregates,
            "responses": responses("Cells and totals.", schema_ref("SharedCells"), &shared_errors) } },
        "/api/v1/shared/{grantor}/export": { "get": {
            "operationId": "exportShared", "security": public,
            "summary": "What an agreement grants, as one download: raw rows (CSV or SenML) or aggregate cells (CSV).",
            "description": "Decided and audited like the other shared reads, on the `export` channel; up to 366 days. A raw export streams: an entry in the grantor's log opens it before any byte leaves (503 and nothing sent if it cannot be written), a second one closes it with the rows released, the SHA-256 of the bytes sent and how it ended (`completed`, `disconnected`, `error: …`). `bucket`, `functions` or `level` make it an aggregate export (CSV only: cells, then totals).",
            "parameters": shared_export,
            "responses": export_responses(&shared_errors) } }
    }))
}

/// Their schemas.
pub(super) fn schemas() -> Map<String, Value> {
    let time = json!({ "type": "string", "format": "date-time" });
    let agreement_ref = json!({ "type": "object", "required": ["id", "version"],
        "properties": { "id": schema_ref("Slug"), "version": { "type": "integer" } } });
    let values = json!({ "type": "object", "properties": {
        "avg": { "type": "number" }, "min": { "type": "number" }, "max": { "type": "number" },
        "count": { "type": "integer" }, "sum": { "type": "number" } } });
    object(json!({
        "Purpose": { "type": "string", "enum": ["public_service", "mobility_planning",
            "environmental_monitoring", "research", "statistics", "open_data", "billing"] },
        "Function": { "type": "string", "enum": ["avg", "min", "max", "count", "sum"] },
        "Field": { "type": "string", "enum": ["time", "value", "unit", "metric", "sensor", "zone",
            "gateway", "seq", "received_at"] },
        "Agreement": { "type": "object",
            "description": "A sharing agreement (native form; see beffroi_policy::Agreement). Unknown members are refused.",
            "required": ["id", "grantee", "not_before", "not_after", "purposes", "action",
                "target", "functions", "k", "spatial_level", "pseudonymise", "embargo_s"],
            "properties": { "id": schema_ref("Slug"), "version": { "type": "integer", "minimum": 1 },
                "grantor": schema_ref("Slug"),
                "grantee": { "type": "string", "description": "public, tenant:<id> or partner:<id>" },
                "state": { "type": "string", "enum": ["draft", "active", "suspended", "revoked"] },
                "not_before": time, "not_after": time,
                "purposes": { "type": "array", "items": schema_ref("Purpose") },
                "action": { "type": "string", "enum": ["read_aggregate", "read_raw"] },
                "target": { "type": "object", "required": ["metrics"], "properties": {
                    "metrics": { "type": "array", "items": { "type": "string" } },
                    "zones": { "type": "array", "items": schema_ref("Slug") },
                    "tags": { "type": "array", "items": schema_ref("Slug") },
                    "sensors": { "type": "array", "items": schema_ref("Slug") },
                    "territories": { "type": "array", "items": schema_ref("Slug"),
                        "description": "Pooling, raw rows or sensor cells: zones of the \
                            beneficiary; a reading is in when its sensor stood inside one when it \
                            was measured (a sensor cell, when it stood inside for its whole \
                            bucket)." } } },
                "pooling": { "type": "boolean", "description": "A pooling agreement: the \
                    grantee (another tenant) uses the sensors as its own, for readings measured \
                    inside the validity window." },
                "min_bucket_s": { "type": "integer", "minimum": 1 },
                "functions": { "type": "array", "items": schema_ref("Function") },
                "k": { "type": "integer", "minimum": 1 },
                "spatial_level": { "type": "string", "enum": ["sensor", "zone"] },
                "pseudonymise": { "type": "boolean" },
                "fields": { "type": "array", "items": schema_ref("Field") },
                "embargo_s": { "type": "integer", "minimum": 0 },
                "prohibitions": { "type": "array", "items": { "type": "object" } } } },
        "AgreementRecord": { "type": "object", "required": ["agreement", "created_at", "updated_at"],
            "properties": { "agreement": schema_ref("Agreement"), "created_at": time, "updated_at": time } },
        "KeyRotation": { "type": "object", "required": ["agreement", "epoch"],
            "properties": { "agreement": schema_ref("Slug"), "epoch": { "type": "integer" } } },
        "Partner": { "type": "object", "required": ["id", "name", "created_at"],
            "properties": { "id": schema_ref("Slug"), "name": { "type": "string" }, "created_at": time } },
        "SharedRows": { "type": "object",
            "required": ["grantor", "agreement", "purpose", "from", "to", "fields", "items", "next_cursor"],
            "properties": { "grantor": schema_ref("Slug"), "agreement": agreement_ref,
                "purpose": schema_ref("Purpose"), "from": time, "to": time,
                "fields": { "type": "array", "items": schema_ref("Field") },
                "items": { "type": "array", "items": { "type": "object",
                    "description": "Only the allowed columns; `sensor` is a pseudonym (p_…) when the agreement pseudonymises." } },
                "next_cursor": { "type": ["string", "null"] } } },
        "SharedCells": { "type": "object",
            "required": ["grantor", "agreement", "purpose", "from", "to", "bucket_s", "level",
                "functions", "k", "cells", "totals", "suppressed"],
            "properties": { "grantor": schema_ref("Slug"), "agreement": agreement_ref,
                "purpose": schema_ref("Purpose"), "from": time, "to": time,
                "bucket_s": { "type": "integer" },
                "level": { "type": "string", "enum": ["sensor", "zone"] },
                "functions": { "type": "array", "items": schema_ref("Function") },
                "k": { "type": "integer" },
                "cells": { "type": "array", "items": { "type": "object",
                    "required": ["metric", "bucket", "unit", "suppressed"],
                    "properties": { "metric": schema_ref("MetricName"), "bucket": time,
                        "unit": { "type": "string" }, "suppressed": { "type": "boolean" },
                        "fine_buckets": { "type": "integer" }, "values": values } } },
                "totals": { "type": "array", "items": { "type": "object",
                    "required": ["metric", "bucket", "fine_buckets", "values"],
                    "properties": { "metric": schema_ref("MetricName"), "bucket": time,
                        "fine_buckets": { "type": "integer" }, "values": values } } },
                "suppressed": { "type": "object", "properties": {
                    "cells": { "type": "integer" }, "totals": { "type": "integer" } } } } },
        "SharedRegistry": { "type": "object", "required": ["grantor", "agreement", "items"],
            "properties": { "grantor": schema_ref("Slug"), "agreement": agreement_ref,
                "items": { "type": "array", "items": { "type": "object", "required": ["level"],
                    "properties": { "level": { "type": "string", "enum": ["sensor", "zone"] },
                        "sensor": { "type": "string" }, "zone": schema_ref("Slug"),
                        "kind": { "type": "string" }, "unit": { "type": "string" },
                        "name": { "type": "string" }, "geometry": schema_ref("Geometry"),
                        "lat": { "type": "number" }, "lon": { "type": "number" } } } } } }
    }))
}
