//! The OpenAPI description of what a client session needs besides data: who the token is,
//! the dashboard's settings, the live-view websocket, and the platform operators' events.

use serde_json::{json, Map, Value};

use super::{page_of, param_ref, responses, schema_ref};

/// `/api/v1/me`, `/api/v1/dashboard-config`, `/api/v1/live`, `/api/v1/platform/…`.
pub(super) fn paths() -> Map<String, Value> {
    let paths = json!({
        "/api/v1/me": { "get": {
            "operationId": "me", "summary": "Who the token is: a tenant's (with its role) or the platform's.",
            "responses": responses("The token's scope.", schema_ref("Me"), &["401"]) } },
        "/api/v1/dashboard-config": { "get": {
            "operationId": "dashboardConfig", "security": [],
            "summary": "The dashboard's settings (map tiles), needed before login.",
            "responses": responses("Settings.", schema_ref("DashboardConfig"), &[]) } },
        "/api/v1/live": { "get": {
            "operationId": "live",
            "summary": "Live views: a websocket (RFC 6455) speaking the protocol of docs/live.md.",
            "description": "Authenticate with `Authorization: Bearer` on the upgrade, or with \
                `{\"type\": \"auth\", \"token\": …}` as the first message. Subprotocol \
                `beffroi.live.v1` (optional). Close codes: 1001 shutdown, 4400 protocol error, \
                4401 not authenticated, 4408 too slow.",
            "responses": {
                "101": { "description": "Switching to the websocket protocol." },
                "400": { "$ref": "#/components/responses/BadRequest" },
                "401": { "$ref": "#/components/responses/Unauthorized" } } } },
        "/api/v1/platform/security-events": { "get": {
            "operationId": "listPlatformSecurityEvents",
            "summary": "Platform operators: the security events of no tenant, newest first.",
            "parameters": [ param_ref("limit"), param_ref("offset") ],
            "responses": responses("A page.", page_of("SecurityEvent"), &["400", "401", "403"]) } }
    });
    match paths {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Their schemas.
pub(super) fn schemas() -> Map<String, Value> {
    let schemas = json!({
        "Me": { "type": "object", "required": ["scope", "token_id", "name"],
            "properties": { "scope": { "type": "string", "enum": ["tenant", "partner", "platform"] },
                "tenant": schema_ref("Tenant"), "partner": schema_ref("Partner"),
                "role": { "type": "string", "enum": ["viewer", "operator", "admin"] },
                "token_id": { "type": "string" }, "name": { "type": "string" } } },
        "DashboardConfig": { "type": "object", "required": ["tile_url", "tile_attribution", "version"],
            "properties": { "tile_url": { "type": ["string", "null"],
                    "description": "Raster tile URL template with {z}/{x}/{y}; null: no background map." },
                "tile_attribution": { "type": ["string", "null"] },
                "version": { "type": "string" } } }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
