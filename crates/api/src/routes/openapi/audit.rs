//! The OpenAPI description of the audit log: its listing, verification, checkpoints and the
//! platform's public keys.

use serde_json::{json, Map, Value};

use super::{param_ref, responses, schema_ref};
use crate::query::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};

/// `/api/v1/audit…`.
pub(super) fn paths() -> Map<String, Value> {
    let after_seq = json!({ "name": "after_seq", "in": "query",
        "description": "Only seqs above this (`next_after_seq` of the previous page).",
        "schema": { "type": "integer", "minimum": 0, "default": 0 } });
    let limit = json!({ "name": "limit", "in": "query", "description": "Page size.",
        "schema": { "type": "integer", "minimum": 1, "maximum": MAX_PAGE_LIMIT,
            "default": DEFAULT_PAGE_LIMIT } });
    let paths = json!({
        "/api/v1/audit": { "get": {
            "operationId": "listAudit",
            "summary": "Admin: the caller's audit log, by seq, a page at a time.",
            "description": "Every data access decision and every change of the tenant's \
                configuration, hash-chained. Reading it is itself recorded (an `access_permit` \
                of the tenant's own data) before the answer leaves; 503 \
                `urn:beffroi:problem:audit-unavailable` when that record cannot be written.",
            "parameters": [ after_seq, limit,
                { "name": "kind", "in": "query", "style": "form", "explode": true,
                  "description": "Only these kinds (repeatable).",
                  "schema": { "type": "array", "items": schema_ref("AuditKind") } },
                param_ref("from"), param_ref("to") ],
            "responses": responses("A page.", schema_ref("AuditPage"), &["400", "401", "403", "503"]) } },
        "/api/v1/audit/verify": { "get": {
            "operationId": "verifyAudit",
            "summary": "Admin: the caller's audit log verified on the server (chain, checkpoints, \
                signatures), with who accessed what under which agreement.",
            "description": "`first_bad_seq` is null when the log is intact. Recorded like a \
                read of the log.",
            "parameters": [ { "name": "since_seq", "in": "query",
                "description": "Verify only from the last valid checkpoint at or below this seq.",
                "schema": { "type": "integer", "minimum": 0 } } ],
            "responses": responses("The report.", schema_ref("AuditReport"), &["400", "401", "403", "503"]) } },
        "/api/v1/audit/checkpoints": { "get": {
            "operationId": "listAuditCheckpoints",
            "summary": "The caller's signed checkpoints, by seq.",
            "parameters": [ after_seq, limit ],
            "responses": responses("A page.", schema_ref("CheckpointPage"), &["400", "401"]) } },
        "/api/v1/audit/public-key": { "get": {
            "operationId": "auditPublicKey",
            "summary": "The platform's audit public keys (current and retired), to verify \
                checkpoints offline.",
            "responses": responses("The keys.", schema_ref("AuditPublicKeys"), &["401"]) } }
    });
    match paths {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Their schemas.
pub(super) fn schemas() -> Map<String, Value> {
    let hash = json!({ "type": "string", "pattern": "^[0-9a-f]{64}$" });
    let time = json!({ "type": "string", "format": "date-time" });
    let seq_range = json!({ "type": ["object", "null"], "required": ["first", "last"],
        "properties": { "first": { "type": "integer" }, "last": { "type": "integer" } } });
    let key = json!({ "type": "object", "required": ["key_id", "pem", "hex"],
        "properties": { "key_id": { "type": "string" },
            "pem": { "type": "string", "description": "SubjectPublicKeyInfo PEM." },
            "hex": { "type": "string", "pattern": "^[0-9a-f]{64}$" } } });
    let schemas = json!({
        "AuditKind": { "type": "string", "enum": beffroi_audit::AuditKind::ALL
            .iter().map(|k| k.as_str()).collect::<Vec<_>>() },
        "AuditEntry": { "type": "object",
            "required": ["tenant", "seq", "time", "actor", "kind", "detail", "prev_hash", "hash"],
            "properties": { "tenant": schema_ref("Slug"), "seq": { "type": "integer", "minimum": 1 },
                "time": time,
                "actor": { "type": "string", "description": "`token:…`, `user:…`, `system:…` or `gateway:…`." },
                "kind": schema_ref("AuditKind"),
                "detail": { "type": "object", "description": "Changes: `action`, `object`, `id`, \
                    `outcome` (`requested` or `failed`), `request` or `requested_seq` and \
                    `error`. Accesses: `grantee`, `agreement`, `purpose`, `channel`, `query`, \
                    `rows`, `result_hash`, `reason`." },
                "prev_hash": hash, "hash": hash } },
        "AuditPage": { "type": "object", "required": ["items", "next_after_seq"],
            "properties": { "items": { "type": "array", "items": schema_ref("AuditEntry") },
                "next_after_seq": { "type": ["integer", "null"] } } },
        "AuditCheckpoint": { "type": "object",
            "required": ["tenant", "seq", "head", "time", "key_id", "signature"],
            "properties": { "tenant": schema_ref("Slug"), "seq": { "type": "integer" },
                "head": hash, "time": time, "key_id": { "type": "string" },
                "signature": { "type": "string", "pattern": "^[0-9a-f]{128}$" } } },
        "CheckpointPage": { "type": "object", "required": ["items", "next_after_seq"],
            "properties": { "items": { "type": "array", "items": schema_ref("AuditCheckpoint") },
                "next_after_seq": { "type": ["integer", "null"] } } },
        "AuditReport": { "type": "object",
            "required": ["tenant", "entries", "head", "checkpoints_matched", "problems",
                "first_bad_seq", "accesses", "unreadable"],
            "properties": { "tenant": schema_ref("Slug"), "entries": { "type": "integer" },
                "head": { "type": "object", "properties": { "seq": { "type": "integer" }, "hash": hash } },
                "checkpoints_matched": { "type": "integer" },
                "last_checkpoint": { "type": ["integer", "null"] },
                "not_checkpointed": seq_range,
                "problems": { "type": "array", "items": { "type": "object", "required": ["problem"],
                    "properties": { "problem": { "type": "string", "enum": ["altered",
                        "chain_broken", "missing", "out_of_order", "foreign_tenant",
                        "checkpoint_forged", "checkpoint_foreign", "checkpoint_mismatch",
                        "truncated"] } } } },
                "problems_omitted": { "type": "integer" },
                "first_bad_seq": { "type": ["integer", "null"] },
                "accesses": { "type": "object", "description": "Who accessed what, when, under \
                    which agreement: `groups` of accesses with counts, rows, first and last time." },
                "unreadable": { "type": "array", "items": { "type": "object",
                    "properties": { "seq": { "type": "integer" }, "reason": { "type": "string" } } } } } },
        "AuditPublicKeys": { "type": "object", "required": ["current", "retired"],
            "properties": { "current": key, "retired": { "type": "array", "items": key } } }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
