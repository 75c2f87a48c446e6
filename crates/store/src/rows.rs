//! Model values from result rows, written once for both SQL backends.
//!
//! The backends own their SQL; their `SELECT`s return the same column names, with every time
//! as integer microseconds since the epoch (PostgreSQL converts its `timestamptz` columns in
//! SQL with `postgres::us`). [`Columns`] hides the rest of what differs between the drivers:
//! booleans (SQLite `INTEGER`, PostgreSQL `boolean`) and JSON (SQLite text, PostgreSQL
//! `jsonb`).

use beffroi_policy::PartnerId;
use beffroi_protocol::{
    GatewayId, KeyId, MetricName, Reading, SensorId, TenantId, Timestamp, Unit,
};
use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::types::Json;
use sqlx::Row;

use crate::decode::{
    bytes32, bytes64, corrupt, id, next_offset, opt_id, time, unsigned, value_from_columns,
    PARTNER_ROLE, PLATFORM_ROLE,
};
use crate::gateway_state::HealthState;
use crate::{
    Actor, Alarm, AlarmAction, AlarmRule, AlarmState, Bucket, EnrollmentToken, GatewayKey,
    GatewayKeyRecord, GatewayRecord, Page, Placement, QuarantineReason, QuarantineRecord, Raised,
    ReadingCursor, ReadingPage, Result, RevokedGateway, Role, SecurityEvent, SecurityEventKind,
    Sensor, Severity, StoredBatch, StoredReading, Tenant, TokenRecord, TokenScope, Zone,
};

/// The typed columns of a result row that the decoders below read.
pub(crate) trait Columns {
    fn text(&self, col: &str) -> Result<&str>;
    fn opt_text(&self, col: &str) -> Result<Option<&str>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn float(&self, col: &str) -> Result<f64>;
    fn opt_float(&self, col: &str) -> Result<Option<f64>>;
    fn bool(&self, col: &str) -> Result<bool>;
    fn opt_bool(&self, col: &str) -> Result<Option<bool>>;
    fn bytes(&self, col: &str) -> Result<&[u8]>;
    fn opt_bytes(&self, col: &str) -> Result<Option<&[u8]>>;
    /// A JSON column of `table`.
    fn json<T: DeserializeOwned>(&self, table: &'static str, col: &str) -> Result<T>;
    /// A nullable JSON column of `table`.
    fn opt_json<T: DeserializeOwned>(&self, table: &'static str, col: &str) -> Result<Option<T>>;

    /// A time column, selected as integer microseconds.
    fn time(&self, col: &str) -> Result<Timestamp> {
        Ok(time(self.int(col)?))
    }
    /// A nullable time column, selected as integer microseconds.
    fn opt_time(&self, col: &str) -> Result<Option<Timestamp>> {
        Ok(self.opt_int(col)?.map(time))
    }
}

/// SQLite keeps JSON as text: a value that does not parse is a corrupt row.
fn parse_json<T: DeserializeOwned>(table: &'static str, col: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| corrupt(table, format!("{col}: {e}")))
}

impl Columns for SqliteRow {
    fn text(&self, col: &str) -> Result<&str> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<&str>> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn float(&self, col: &str) -> Result<f64> {
        Ok(self.try_get(col)?)
    }
    fn opt_float(&self, col: &str) -> Result<Option<f64>> {
        Ok(self.try_get(col)?)
    }
    fn bool(&self, col: &str) -> Result<bool> {
        // An `INTEGER`: sqlx decodes any non-zero value as `true`.
        Ok(self.try_get(col)?)
    }
    fn opt_bool(&self, col: &str) -> Result<Option<bool>> {
        Ok(self.try_get(col)?)
    }
    fn bytes(&self, col: &str) -> Result<&[u8]> {
        Ok(self.try_get(col)?)
    }
    fn opt_bytes(&self, col: &str) -> Result<Option<&[u8]>> {
        Ok(self.try_get(col)?)
    }
    fn json<T: DeserializeOwned>(&self, table: &'static str, col: &str) -> Result<T> {
        parse_json(table, col, self.text(col)?)
    }
    fn opt_json<T: DeserializeOwned>(&self, table: &'static str, col: &str) -> Result<Option<T>> {
        self.opt_text(col)?
            .map(|json| parse_json(table, col, json))
            .transpose()
    }
}

impl Columns for PgRow {
    fn text(&self, col: &str) -> Result<&str> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<&str>> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn float(&self, col: &str) -> Result<f64> {
        Ok(self.try_get(col)?)
    }
    fn opt_float(&self, col: &str) -> Result<Option<f64>> {
        Ok(self.try_get(col)?)
    }
    fn bool(&self, col: &str) -> Result<bool> {
        Ok(self.try_get(col)?)
    }
    fn opt_bool(&self, col: &str) -> Result<Option<bool>> {
        Ok(self.try_get(col)?)
    }
    fn bytes(&self, col: &str) -> Result<&[u8]> {
        Ok(self.try_get(col)?)
    }
    fn opt_bytes(&self, col: &str) -> Result<Option<&[u8]>> {
        Ok(self.try_get(col)?)
    }
    fn json<T: DeserializeOwned>(&self, _table: &'static str, col: &str) -> Result<T> {
        Ok(self.try_get::<Json<T>, _>(col)?.0)
    }
    fn opt_json<T: DeserializeOwned>(&self, _table: &'static str, col: &str) -> Result<Option<T>> {
        Ok(self.try_get::<Option<Json<T>>, _>(col)?.map(|j| j.0))
    }
}

// ---- registry ----

/// `tenants`: `id, name, created_at`.
pub(crate) fn tenant_from(r: &impl Columns) -> Result<Tenant> {
    Ok(Tenant {
        id: id("tenants", r.text("id")?, TenantId::new)?,
        name: r.text("name")?.to_owned(),
        created_at: r.time("created_at")?,
    })
}

/// `gateways`: `tenant, id, key_id, public_key, cert_fingerprint, cert_not_after, revoked,
/// revoked_at, pending_enrollment, created_at, last_seen, last_committed_seq, health,
/// rejected_batches`; without its keys, which [`crate::identity::attach_keys`] adds.
pub(crate) fn gateway_from(r: &impl Columns) -> Result<GatewayRecord> {
    let public_key = bytes32("gateways", r.bytes("public_key")?)?;
    let health: HealthState = r.opt_json("gateways", "health")?.unwrap_or_default();
    let last_committed = r
        .opt_int("last_committed_seq")?
        .map(|s| unsigned("gateways", s))
        .transpose()?;
    Ok(GatewayRecord {
        tenant: id("gateways", r.text("tenant")?, TenantId::new)?,
        id: id("gateways", r.text("id")?, GatewayId::new)?,
        key_id: id("gateways", r.text("key_id")?, KeyId::new)?,
        public_key_hex: hex::encode(public_key),
        cert_fingerprint: r.opt_text("cert_fingerprint")?.map(str::to_owned),
        cert_not_after: r.opt_time("cert_not_after")?,
        rejected_batches: unsigned("quarantine", r.int("rejected_batches")?)?,
        revoked: r.bool("revoked")?,
        revoked_at: r.opt_time("revoked_at")?,
        keys: Vec::new(),
        pending_enrollment: r.opt_time("pending_enrollment")?,
        created_at: r.time("created_at")?,
        state: health.into_state(r.opt_time("last_seen")?, last_committed),
    })
}

/// `gateway_keys`: `gateway, key_id, public_key, created_at, retired_at`, with the gateway.
pub(crate) fn gateway_key_record_from(r: &impl Columns) -> Result<(GatewayId, GatewayKeyRecord)> {
    let public_key = bytes32("gateway_keys", r.bytes("public_key")?)?;
    Ok((
        id("gateway_keys", r.text("gateway")?, GatewayId::new)?,
        GatewayKeyRecord {
            key_id: id("gateway_keys", r.text("key_id")?, KeyId::new)?,
            public_key_hex: hex::encode(public_key),
            created_at: r.time("created_at")?,
            retired_at: r.opt_time("retired_at")?,
        },
    ))
}

/// `gateway_keys` joined with `gateways`: `tenant, gateway, public_key, retired_at,
/// revoked_at`.
pub(crate) fn gateway_key_from(r: &impl Columns) -> Result<GatewayKey> {
    Ok(GatewayKey {
        tenant: id("gateway_keys", r.text("tenant")?, TenantId::new)?,
        gateway: id("gateway_keys", r.text("gateway")?, GatewayId::new)?,
        public_key: bytes32("gateway_keys", r.bytes("public_key")?)?,
        revoked_at: r.opt_time("revoked_at")?,
        retired_at: r.opt_time("retired_at")?,
    })
}

/// `gateways`: `tenant, id, cert_fingerprint, revoked_at` (not NULL).
pub(crate) fn revoked_gateway_from(r: &impl Columns) -> Result<RevokedGateway> {
    Ok(RevokedGateway {
        tenant: id("gateways", r.text("tenant")?, TenantId::new)?,
        gateway: id("gateways", r.text("id")?, GatewayId::new)?,
        cert_fingerprint: r.opt_text("cert_fingerprint")?.map(str::to_owned),
        revoked_at: r.time("revoked_at")?,
    })
}

/// `enrollment_tokens`: `token_hash, tenant, gateway, created_at, expires_at, created_by,
/// used_at`.
pub(crate) fn enrollment_token_from(r: &impl Columns) -> Result<EnrollmentToken> {
    Ok(EnrollmentToken {
        token_hash: r.text("token_hash")?.to_owned(),
        tenant: id("enrollment_tokens", r.text("tenant")?, TenantId::new)?,
        gateway: id("enrollment_tokens", r.text("gateway")?, GatewayId::new)?,
        created_at: r.time("created_at")?,
        expires_at: r.time("expires_at")?,
        created_by: r.text("created_by")?.to_owned(),
        used_at: r.opt_time("used_at")?,
    })
}

/// `sensors`: `tenant, id, kind, unit, lat, lon, zone`.
pub(crate) fn sensor_from(r: &impl Columns) -> Result<Sensor> {
    Ok(Sensor {
        tenant: id("sensors", r.text("tenant")?, TenantId::new)?,
        id: id("sensors", r.text("id")?, SensorId::new)?,
        kind: r.text("kind")?.to_owned(),
        unit: opt_id("sensors", r.opt_text("unit")?, Unit::new)?,
        lat: r.opt_float("lat")?,
        lon: r.opt_float("lon")?,
        zone: opt_id("sensors", r.opt_text("zone")?, SensorId::new)?,
        tags: r.json("sensors", "tags")?,
        placed_at: r.opt_time("placed_at")?,
    })
}

/// `sensor_placements`: `tenant, sensor, since, lat, lon`.
pub(crate) fn placement_from(r: &impl Columns) -> Result<Placement> {
    Ok(Placement {
        tenant: id("sensor_placements", r.text("tenant")?, TenantId::new)?,
        sensor: id("sensor_placements", r.text("sensor")?, SensorId::new)?,
        since: r.time("since")?,
        lat: r.opt_float("lat")?,
        lon: r.opt_float("lon")?,
    })
}

/// `zones`: `tenant, id, name, geometry`.
pub(crate) fn zone_from(r: &impl Columns) -> Result<Zone> {
    Ok(Zone {
        tenant: id("zones", r.text("tenant")?, TenantId::new)?,
        id: id("zones", r.text("id")?, SensorId::new)?,
        name: r.text("name")?.to_owned(),
        geometry: r.json("zones", "geometry")?,
    })
}

// ---- records ----

/// `quarantine`: `tenant, gateway, topic, seq, reason, detail, received_at, payload,
/// settles_seq`.
pub(crate) fn quarantine_from(r: &impl Columns) -> Result<QuarantineRecord> {
    let reason = r.text("reason")?;
    Ok(QuarantineRecord {
        tenant: opt_id("quarantine", r.opt_text("tenant")?, TenantId::new)?,
        gateway: opt_id("quarantine", r.opt_text("gateway")?, GatewayId::new)?,
        topic: r.text("topic")?.to_owned(),
        seq: r
            .opt_int("seq")?
            .map(|s| unsigned("quarantine", s))
            .transpose()?,
        reason: QuarantineReason::parse(reason)
            .ok_or_else(|| corrupt("quarantine", format!("reason {reason:?}")))?,
        detail: r.text("detail")?.to_owned(),
        received_at: r.time("received_at")?,
        payload: r.bytes("payload")?.to_vec(),
        settles_seq: r.bool("settles_seq")?,
    })
}

/// `security_events`: `time, tenant, gateway, address, kind, detail`.
pub(crate) fn security_event_from(r: &impl Columns) -> Result<SecurityEvent> {
    let kind = r.text("kind")?;
    Ok(SecurityEvent {
        time: r.time("time")?,
        tenant: opt_id("security_events", r.opt_text("tenant")?, TenantId::new)?,
        gateway: opt_id("security_events", r.opt_text("gateway")?, GatewayId::new)?,
        address: r.opt_text("address")?.map(str::to_owned),
        kind: SecurityEventKind::parse(kind)
            .ok_or_else(|| corrupt("security_events", format!("kind {kind:?}")))?,
        detail: r.text("detail")?.to_owned(),
    })
}

/// `api_tokens`: `id, tenant, partner, role, name, secret_sha256, created_at`; a platform
/// token has no tenant and the role `platform`, a partner token a partner and the role
/// `partner`.
pub(crate) fn token_from(r: &impl Columns) -> Result<TokenRecord> {
    let role = r.text("role")?;
    let partner = opt_id("api_tokens", r.opt_text("partner")?, PartnerId::new)?;
    let scope = match opt_id("api_tokens", r.opt_text("tenant")?, TenantId::new)? {
        None if role == PLATFORM_ROLE => TokenScope::Platform,
        None if role == PARTNER_ROLE => TokenScope::Partner {
            partner: partner
                .ok_or_else(|| corrupt("api_tokens", "partner role without partner"))?,
        },
        Some(tenant) => TokenScope::Tenant {
            tenant,
            role: Role::parse(role)
                .ok_or_else(|| corrupt("api_tokens", format!("role {role:?}")))?,
        },
        None => {
            return Err(corrupt(
                "api_tokens",
                format!("role {role:?} without tenant"),
            ))
        }
    };
    Ok(TokenRecord {
        id: r.text("id")?.to_owned(),
        scope,
        name: r.text("name")?.to_owned(),
        secret_sha256: bytes32("api_tokens", r.bytes("secret_sha256")?)?,
        created_at: r.time("created_at")?,
    })
}

/// One page of `limit` items from `rows`, fetched at `offset` with one row more than `limit`
/// to tell whether another page exists.
pub(crate) fn page_from<R, T>(
    rows: &[R],
    offset: u64,
    limit: u32,
    decode: impl Fn(&R) -> Result<T>,
) -> Result<Page<T>> {
    Ok(Page {
        items: rows
            .iter()
            .take(limit as usize)
            .map(decode)
            .collect::<Result<_>>()?,
        next_offset: next_offset(offset, limit, rows.len()),
    })
}

// ---- alarm rules and alarms ----

/// A stored severity.
fn severity(table: &'static str, r: &impl Columns) -> Result<Severity> {
    let text = r.text("severity")?;
    Severity::parse(text).ok_or_else(|| corrupt(table, format!("severity {text:?}")))
}

/// `alarm_rules`: `tenant, id, name, severity, enabled, condition, created_at, updated_at`.
pub(crate) fn alarm_rule_from(r: &impl Columns) -> Result<AlarmRule> {
    Ok(AlarmRule {
        tenant: id("alarm_rules", r.text("tenant")?, TenantId::new)?,
        id: id("alarm_rules", r.text("id")?, SensorId::new)?,
        name: r.text("name")?.to_owned(),
        severity: severity("alarm_rules", r)?,
        enabled: r.bool("enabled")?,
        condition: r.json("alarm_rules", "condition")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// The column names of one alarm action (acknowledgement or clearance).
struct ActionNames {
    at: &'static str,
    by_token: &'static str,
    by_name: &'static str,
    comment: &'static str,
}

const ACKNOWLEDGED: ActionNames = ActionNames {
    at: "acknowledged_at",
    by_token: "acknowledged_by_token",
    by_name: "acknowledged_by_name",
    comment: "acknowledged_comment",
};

const CLEARED: ActionNames = ActionNames {
    at: "cleared_at",
    by_token: "cleared_by_token",
    by_name: "cleared_by_name",
    comment: "cleared_comment",
};

/// An alarm action, `None` when its time is NULL (not acknowledged, not cleared).
fn action_from(r: &impl Columns, cols: &ActionNames) -> Result<Option<AlarmAction>> {
    let Some(at) = r.opt_time(cols.at)? else {
        return Ok(None);
    };
    let by = match (r.opt_text(cols.by_token)?, r.opt_text(cols.by_name)?) {
        (Some(token_id), Some(name)) => Some(Actor {
            token_id: token_id.to_owned(),
            name: name.to_owned(),
        }),
        (None, None) => None,
        _ => {
            return Err(corrupt(
                "alarms",
                format!(
                    "{} and {} must both be set or both NULL",
                    cols.by_token, cols.by_name
                ),
            ))
        }
    };
    Ok(Some(AlarmAction {
        at,
        by,
        comment: r.opt_text(cols.comment)?.map(str::to_owned),
    }))
}

/// `alarms`: `id, tenant, rule, rule_name, severity, subject, zone, state, message, value,
/// opened_at, last_at, occurrences, acknowledged_at, acknowledged_by_token,
/// acknowledged_by_name, acknowledged_comment, cleared_at, cleared_by_token, cleared_by_name,
/// cleared_comment, updated_at`.
pub(crate) fn alarm_from(r: &impl Columns) -> Result<Alarm> {
    let state = r.text("state")?;
    Ok(Alarm {
        id: r.int("id")?,
        tenant: id("alarms", r.text("tenant")?, TenantId::new)?,
        rule: id("alarms", r.text("rule")?, SensorId::new)?,
        rule_name: r.text("rule_name")?.to_owned(),
        severity: severity("alarms", r)?,
        subject: r.json("alarms", "subject")?,
        zone: opt_id("alarms", r.opt_text("zone")?, SensorId::new)?,
        state: AlarmState::parse(state)
            .ok_or_else(|| corrupt("alarms", format!("state {state:?}")))?,
        message: r.text("message")?.to_owned(),
        value: r.opt_float("value")?,
        opened_at: r.time("opened_at")?,
        last_at: r.time("last_at")?,
        occurrences: unsigned("alarms", r.int("occurrences")?)?,
        acknowledged: action_from(r, &ACKNOWLEDGED)?,
        cleared: action_from(r, &CLEARED)?,
        updated_at: r.time("updated_at")?,
    })
}

/// The alarm a raising upsert returned: it opened when it has counted one occurrence (an
/// active alarm that counts another goes from n ≥ 1 to n + 1 ≥ 2).
pub(crate) fn raised_from(r: &impl Columns) -> Result<Raised> {
    let alarm = alarm_from(r)?;
    Ok(Raised {
        opened: alarm.occurrences == 1,
        alarm,
    })
}

// ---- readings ----

/// `readings`: `id, time_us, gateway, seq, sensor, metric, unit, value_num, value_bool,
/// value_text`.
pub(crate) fn reading_from(r: &impl Columns) -> Result<StoredReading> {
    Ok(StoredReading {
        gateway: id("readings", r.text("gateway")?, GatewayId::new)?,
        seq: unsigned("readings", r.int("seq")?)?,
        sensor: id("readings", r.text("sensor")?, SensorId::new)?,
        metric: id("readings", r.text("metric")?, MetricName::new)?,
        unit: id("readings", r.text("unit")?, Unit::new)?,
        time: r.time("time_us")?,
        value: value_from_columns(
            r.opt_float("value_num")?,
            r.opt_bool("value_bool")?,
            r.opt_text("value_text")?.map(str::to_owned),
        )?,
    })
}

/// A page of at most `limit` readings from `rows` (fetched with one row more than `limit`).
pub(crate) fn reading_page_from(rows: &[impl Columns], limit: u32) -> Result<ReadingPage> {
    let more = rows.len() > limit as usize;
    let mut readings = Vec::with_capacity(rows.len().min(limit as usize));
    let mut last = None;
    for row in rows.iter().take(limit as usize) {
        readings.push(reading_from(row)?);
        last = Some(ReadingCursor {
            time_us: row.int("time_us")?,
            id: row.int("id")?,
        });
    }
    Ok(ReadingPage {
        readings,
        next: if more { last } else { None },
    })
}

/// Bucket aggregates: `bucket, sensor, metric, total, lo, hi, n`.
pub(crate) fn bucket_from(r: &impl Columns) -> Result<Bucket> {
    let n = unsigned("readings", r.int("n")?)?;
    Ok(Bucket {
        start: r.time("bucket")?,
        sensor: id("readings", r.text("sensor")?, SensorId::new)?,
        metric: id("readings", r.text("metric")?, MetricName::new)?,
        avg: r.float("total")? / n as f64,
        min: r.float("lo")?,
        max: r.float("hi")?,
        count: n,
    })
}

/// `batches`: `key_id, signature, received_at`, with the batch's `readings` rows in `idx`
/// order (as [`reading_from`] reads them).
pub(crate) fn batch_from<R: Columns>(
    r: &R,
    tenant: &TenantId,
    gateway: &GatewayId,
    seq: u64,
    readings: &[R],
) -> Result<StoredBatch> {
    let readings = readings
        .iter()
        .map(|row| {
            let s = reading_from(row)?;
            Ok(Reading {
                sensor: s.sensor,
                metric: s.metric,
                unit: s.unit,
                time: s.time,
                value: s.value,
            })
        })
        .collect::<Result<_>>()?;
    Ok(StoredBatch {
        tenant: tenant.clone(),
        gateway: gateway.clone(),
        seq,
        key_id: id("batches", r.text("key_id")?, KeyId::new)?,
        signature: bytes64("batches", r.bytes("signature")?)?,
        received_at: r.time("received_at")?,
        readings,
    })
}
