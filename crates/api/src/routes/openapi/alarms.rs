//! The OpenAPI description of alarm rules and alarms.

use serde_json::{json, Map, Value};

use super::{items_of, page_of, param_ref, responses, schema_ref};

/// `/api/v1/alarm-rules…` and `/api/v1/alarms…`.
pub(super) fn paths() -> Map<String, Value> {
    let rule_id = json!({ "name": "id", "in": "path", "required": true,
        "description": "Rule id.", "schema": schema_ref("Slug") });
    let alarm_id = json!({ "name": "id", "in": "path", "required": true,
        "description": "Alarm id.", "schema": { "type": "integer" } });
    let rule_body = json!({ "required": true,
        "content": { "application/json": { "schema": schema_ref("RuleBody") } } });
    let action_body = json!({ "required": true,
        "content": { "application/json": { "schema": schema_ref("AlarmActionBody") } } });
    let write_errors = ["400", "401", "403", "404", "409", "413", "415"];
    let mut created = responses("unused", json!({}), &write_errors);
    if let Value::Object(map) = &mut created {
        map.remove("200");
        map.insert(
            "201".into(),
            json!({ "description": "The rule as stored.",
            "content": { "application/json": { "schema": schema_ref("AlarmRule") } } }),
        );
    }
    let mut deleted = responses("unused", json!({}), &["400", "401", "403", "404"]);
    if let Value::Object(map) = &mut deleted {
        map.remove("200");
        map.insert(
            "204".into(),
            json!({ "description": "Deleted; its alarms are kept." }),
        );
    }
    let paths = json!({
        "/api/v1/alarm-rules": {
            "get": { "operationId": "listAlarmRules", "summary": "The caller's alarm rules.",
                "responses": responses("Rules.", items_of("AlarmRule"), &["401"]) },
            "post": { "operationId": "createAlarmRule", "summary": "Creates a rule (admin).",
                "requestBody": rule_body, "responses": created } },
        "/api/v1/alarm-rules/{id}": {
            "get": { "operationId": "getAlarmRule", "summary": "One rule.",
                "parameters": [ rule_id ],
                "responses": responses("The rule.", schema_ref("AlarmRule"), &["400", "401", "404"]) },
            "put": { "operationId": "putAlarmRule",
                "summary": "Replaces a rule (admin); its alarms keep their name.",
                "parameters": [ rule_id ], "requestBody": rule_body,
                "responses": responses("The rule as stored.", schema_ref("AlarmRule"), &write_errors) },
            "delete": { "operationId": "deleteAlarmRule", "summary": "Deletes a rule (admin).",
                "parameters": [ rule_id ], "responses": deleted } },
        "/api/v1/alarms": { "get": {
            "operationId": "listAlarms", "summary": "The caller's alarms, newest opened first.",
            "parameters": [
                { "name": "state", "in": "query", "style": "form", "explode": true,
                  "description": "Only alarms in these states (repeatable).",
                  "schema": { "type": "array", "items": schema_ref("AlarmState") } },
                param_ref("limit"), param_ref("offset") ],
            "responses": responses("A page.", page_of("Alarm"), &["400", "401"]) } },
        "/api/v1/alarms/{id}": { "get": {
            "operationId": "getAlarm", "summary": "One alarm.", "parameters": [ alarm_id ],
            "responses": responses("The alarm.", schema_ref("Alarm"), &["400", "401", "404"]) } },
        "/api/v1/alarms/{id}/acknowledge": { "post": {
            "operationId": "acknowledgeAlarm",
            "summary": "Acknowledges an open alarm (operator); 409 unless it is open.",
            "parameters": [ alarm_id ], "requestBody": action_body,
            "responses": responses("The alarm, acknowledged.", schema_ref("Alarm"), &write_errors) } },
        "/api/v1/alarms/{id}/clear": { "post": {
            "operationId": "clearAlarm",
            "summary": "Clears an active alarm by hand (operator); 409 if already cleared.",
            "parameters": [ alarm_id ], "requestBody": action_body,
            "responses": responses("The alarm, cleared.", schema_ref("Alarm"), &write_errors) } }
    });
    match paths {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The schemas of rules and alarms.
pub(super) fn schemas() -> Map<String, Value> {
    let time = json!({ "type": "string", "format": "date-time" });
    let slugs = json!({ "type": "array", "items": schema_ref("Slug"), "maxItems": 1000 });
    let schemas = json!({
        "Severity": { "type": "string", "enum": ["info", "warning", "major", "critical"] },
        "AlarmState": { "type": "string", "enum": ["open", "acknowledged", "cleared"] },
        "RuleCondition": { "oneOf": [
            { "type": "object", "title": "threshold", "additionalProperties": false,
              "required": ["kind", "metric", "op", "value"],
              "properties": { "kind": { "const": "threshold" }, "metric": schema_ref("MetricName"),
                "zone": schema_ref("Slug"), "sensors": slugs,
                "op": { "type": "string", "enum": ["gt", "ge", "lt", "le"] },
                "value": { "type": "number" },
                "for_s": { "type": "integer", "minimum": 0, "maximum": 604800, "default": 0,
                    "description": "Seconds of measurement time the condition must hold." },
                "pooled": { "allOf": [schema_ref("Purpose")],
                    "description": "Also watch the sensors other tenants pool with this one, \
                        for this purpose: the readings a pooling agreement allows for it \
                        (`zone`: those standing inside the zone's boundary). Each alarm about \
                        one is recorded in its operator's audit log. Absent: own sensors only." } } },
            { "type": "object", "title": "gateway_offline", "additionalProperties": false,
              "required": ["kind", "after_s"],
              "properties": { "kind": { "const": "gateway_offline" },
                "after_s": { "type": "integer", "minimum": 10, "maximum": 604800 },
                "gateways": slugs } },
            { "type": "object", "title": "spool_gap", "additionalProperties": false,
              "required": ["kind"],
              "properties": { "kind": { "const": "spool_gap" },
                "reasons": { "type": "array",
                    "items": { "type": "string", "enum": ["spool-full", "crash-restart"] } } } },
            { "type": "object", "title": "certificate_expiry", "additionalProperties": false,
              "required": ["kind", "before_s"],
              "properties": { "kind": { "const": "certificate_expiry" },
                "before_s": { "type": "integer", "minimum": 1, "maximum": 31536000,
                    "description": "Notice: the alarm opens when the gateway's certificate \
                        expires in less than this (its automatic renewal is failing)." },
                "gateways": slugs } },
            { "type": "object", "title": "security", "additionalProperties": false,
              "required": ["kind"],
              "properties": { "kind": { "const": "security" },
                "events": { "type": "array", "items": { "type": "string", "enum": ["quarantined",
                    "tls_rejected", "revoked_certificate", "client_id_mismatch", "acl_violation",
                    "connection_limit", "protocol_violation", "audit_tampered", "enrollment_refused"] } } } } ],
          "discriminator": { "propertyName": "kind" } },
        "RuleBody": { "type": "object", "additionalProperties": false,
            "required": ["name", "severity", "condition"],
            "properties": { "id": schema_ref("Slug"),
                "name": { "type": "string", "minLength": 1, "maxLength": 100 },
                "severity": schema_ref("Severity"), "enabled": { "type": "boolean", "default": true },
                "condition": schema_ref("RuleCondition") } },
        "AlarmRule": { "type": "object",
            "required": ["tenant", "id", "name", "severity", "enabled", "condition", "created_at", "updated_at"],
            "properties": { "tenant": schema_ref("Slug"), "id": schema_ref("Slug"),
                "name": { "type": "string" }, "severity": schema_ref("Severity"),
                "enabled": { "type": "boolean" }, "condition": schema_ref("RuleCondition"),
                "created_at": time, "updated_at": time } },
        "AlarmSubject": { "type": "object", "required": ["kind"],
            "description": "series {sensor, metric}, pooled {operator, sensor, metric} (a sensor another tenant operates and pools with this one; its id as this tenant sees it), gateway {gateway}, gap {gateway, first_seq, last_seq} or security {gateway?, event}.",
            "properties": { "kind": { "type": "string", "enum": ["series", "pooled", "gateway", "gap", "security"] },
                "operator": schema_ref("Slug"),
                "sensor": { "type": "string", "description": "A sensor id; for a pooled \
                    subject, its pseudonym `p_…` when the agreement pseudonymises." },
                "metric": schema_ref("MetricName"),
                "gateway": schema_ref("Slug"), "first_seq": { "type": "integer" },
                "last_seq": { "type": "integer" }, "event": { "type": "string" } } },
        "AlarmAction": { "type": "object", "required": ["at", "by", "comment"],
            "properties": { "at": time,
                "by": { "oneOf": [ { "type": "null", "description": "Automatic: the condition ended." },
                    { "type": "object", "required": ["token_id", "name"],
                      "properties": { "token_id": { "type": "string" }, "name": { "type": "string" } } } ] },
                "comment": { "type": ["string", "null"] } } },
        "AlarmActionBody": { "type": "object", "additionalProperties": false,
            "properties": { "comment": { "type": ["string", "null"], "maxLength": 1000 } } },
        "Alarm": { "type": "object",
            "required": ["id", "tenant", "rule", "rule_name", "severity", "subject", "zone", "state",
                "message", "value", "opened_at", "last_at", "occurrences", "acknowledged", "cleared", "updated_at"],
            "properties": { "id": { "type": "integer" }, "tenant": schema_ref("Slug"),
                "rule": schema_ref("Slug"), "rule_name": { "type": "string" },
                "severity": schema_ref("Severity"), "subject": schema_ref("AlarmSubject"),
                "zone": { "type": ["string", "null"] }, "state": schema_ref("AlarmState"),
                "message": { "type": "string" }, "value": { "type": ["number", "null"] },
                "opened_at": time, "last_at": time, "occurrences": { "type": "integer" },
                "acknowledged": { "oneOf": [ schema_ref("AlarmAction"), { "type": "null" } ] },
                "cleared": { "oneOf": [ schema_ref("AlarmAction"), { "type": "null" } ] },
                "updated_at": time } }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
