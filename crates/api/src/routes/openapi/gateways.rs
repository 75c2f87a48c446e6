//! The OpenAPI description of gateways: listing, creation (enrollment tokens), pending
//! enrollments and revocation.

use serde_json::{json, Map, Value};

use super::{id_param, items_of, responses, schema_ref};

/// `/api/v1/gateways…`.
pub(super) fn paths() -> Map<String, Value> {
    let mut created = responses(
        "unused",
        json!({}),
        &["400", "401", "403", "409", "413", "415"],
    );
    if let Value::Object(map) = &mut created {
        map.remove("200");
        map.insert(
            "201".into(),
            json!({ "description": "The one-time enrollment token, shown once.",
            "content": { "application/json": { "schema": schema_ref("EnrollmentTokenCreated") } } }),
        );
    }
    let paths = json!({
        "/api/v1/gateways": {
            "get": { "operationId": "listGateways", "summary": "The caller's gateways and their state.",
                "responses": responses("Gateways.", items_of("Gateway"), &["400", "401"]) },
            "post": { "operationId": "createGateway",
                "summary": "Creates a gateway's one-time enrollment token (admin).",
                "description": "For an existing, unrevoked gateway the token prepares its \
                    re-enrollment (its keys are retired when the token is redeemed); a revoked \
                    gateway is refused (409). Recorded in the audit log (`gateway_change`, \
                    `create_token`).",
                "requestBody": { "required": true,
                    "content": { "application/json": { "schema": schema_ref("GatewayCreateBody") } } },
                "responses": created } },
        "/api/v1/gateways/enrollments": { "get": {
            "operationId": "listPendingEnrollments",
            "summary": "The caller's unused, unexpired enrollment tokens (never the token).",
            "responses": responses("Pending enrollments.", items_of("PendingEnrollment"), &["401"]) } },
        "/api/v1/gateways/{id}": { "get": {
            "operationId": "getGateway", "summary": "One gateway and its state.",
            "parameters": [ id_param("Gateway id.") ],
            "responses": responses("The gateway.", schema_ref("Gateway"), &["400", "401", "404"]) } },
        "/api/v1/gateways/{id}/revoke": { "post": {
            "operationId": "revokeGateway",
            "summary": "Revokes a gateway (admin): its live connections are cut at once, its \
                reconnections refused, what it signs from now on quarantined.",
            "parameters": [ id_param("Gateway id.") ],
            "responses": responses("The gateway, revoked.", schema_ref("Gateway"),
                &["400", "401", "403", "404"]) } },
    });
    match paths {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The gateway schemas.
pub(super) fn schemas() -> Map<String, Value> {
    let time = json!({ "type": "string", "format": "date-time" });
    let schemas = json!({
        "Gateway": { "type": "object",
            "required": ["tenant", "id", "key_id", "public_key_hex", "revoked", "created_at", "state"],
            "properties": { "tenant": schema_ref("Slug"), "id": schema_ref("Slug"),
                "key_id": { "type": "string", "description": "The current signing key." },
                "public_key_hex": { "type": "string" },
                "cert_fingerprint": { "type": ["string", "null"] },
                "cert_not_after": { "type": ["string", "null"], "format": "date-time" },
                "rejected_batches": { "type": "integer", "description": "Messages from it quarantined, all time." },
                "revoked": { "type": "boolean" },
                "revoked_at": { "type": ["string", "null"], "format": "date-time" },
                "keys": { "type": "array", "items": schema_ref("GatewayKey"),
                    "description": "Every signing key it registered, newest first." },
                "pending_enrollment": { "type": ["string", "null"], "format": "date-time",
                    "description": "Expiry of an unused enrollment token for it, if any." },
                "created_at": time, "state": schema_ref("GatewayState") } },
        "GatewayKey": { "type": "object", "required": ["key_id", "public_key_hex", "created_at"],
            "properties": { "key_id": { "type": "string" }, "public_key_hex": { "type": "string" },
                "created_at": time,
                "retired_at": { "type": ["string", "null"], "format": "date-time" } } },
        "GatewayCreateBody": { "type": "object", "required": ["id"], "additionalProperties": false,
            "properties": { "id": schema_ref("Slug"),
                "ttl_s": { "type": "integer", "minimum": 1, "maximum": 2_592_000,
                    "description": "Token lifetime (default: the platform's enroll.token_ttl_s)." } } },
        "EnrollmentTokenCreated": { "type": "object", "required": ["token", "expires_at", "gateway"],
            "properties": {
                "token": { "type": "string", "pattern": "^bfe1\\.[A-Za-z0-9_-]{43}\\.[0-9a-f]{64}$",
                    "description": "For `beffroi-agent enroll --token`; shown once." },
                "expires_at": time, "gateway": schema_ref("Slug"),
                "enroll_url": { "type": "string", "format": "uri",
                    "description": "The enrollment endpoint (`enroll.public_url`), when configured." } } },
        "PendingEnrollment": { "type": "object",
            "required": ["gateway", "created_at", "expires_at", "created_by"],
            "properties": { "gateway": schema_ref("Slug"), "created_at": time,
                "expires_at": time, "created_by": { "type": "string" } } },
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
