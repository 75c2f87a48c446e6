//! PostgreSQL: tenants, gateways, sensors, zones.

use beffroi_protocol::{GatewayId, KeyId, SensorId, TenantId, Timestamp, Unit};
use sqlx::types::Json;
use sqlx::{Executor, Postgres};

use super::{ts, us, PostgresStore};
use crate::identity::{attach_keys, gateway_inserted, key_registered, GatewayKeyRow};
use crate::on_conflict::OnConflict;
use crate::outcome::{gateway_found, tenant_created, tenant_found};
use crate::placement::moved;
use crate::rows::{
    gateway_from, gateway_key_from, gateway_key_record_from, placement_from, revoked_gateway_from,
    sensor_from, tenant_from, zone_from,
};
use crate::{
    GatewayKey, GatewayRecord, NewGateway, Placement, Result, RevokedGateway, Sensor, Tenant, Zone,
};

impl PostgresStore {
    pub(super) async fn insert_tenant(&self, id: &TenantId, name: &str) -> Result<Tenant> {
        let tenant = Tenant {
            id: id.clone(),
            name: name.to_owned(),
            created_at: Timestamp::now(),
        };
        insert_tenant_row(&self.pool, &tenant).await?;
        Ok(tenant)
    }

    pub(super) async fn select_tenants(&self, only: Option<&TenantId>) -> Result<Vec<Tenant>> {
        let rows = sqlx::query(&format!(
            "SELECT id, name, {} AS created_at FROM tenants \
             WHERE $1::text IS NULL OR id = $1 ORDER BY id",
            us("created_at")
        ))
        .bind(only.map(TenantId::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tenant_from).collect()
    }

    pub(super) async fn insert_gateway(&self, gateway: &NewGateway) -> Result<()> {
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await?;
        let inserted = insert_gateway_row(&mut *tx, gateway, None, now).await;
        gateway_inserted(inserted, gateway)?;
        let key = GatewayKeyRow {
            key_id: gateway.key_id.clone(),
            public_key: gateway.public_key,
            created_at: now,
            retired_at: None,
        };
        let inserted = insert_gateway_key_row(&mut *tx, &gateway.tenant, &gateway.id, &key).await;
        key_registered(inserted, &gateway.key_id)?;
        Ok(tx.commit().await?)
    }

    pub(super) async fn update_certificate(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        fingerprint: &str,
        not_after: Timestamp,
    ) -> Result<()> {
        let done = sqlx::query(&format!(
            "UPDATE gateways SET cert_fingerprint = $1, cert_not_after = {} \
             WHERE tenant = $3 AND id = $4",
            ts("$2")
        ))
        .bind(fingerprint)
        .bind(not_after.unix_micros())
        .bind(tenant.as_str())
        .bind(gateway.as_str())
        .execute(&self.pool)
        .await?;
        gateway_found(done.rows_affected(), gateway)
    }

    pub(super) async fn update_revoked(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        at: Timestamp,
    ) -> Result<()> {
        let done = sqlx::query(&format!(
            "UPDATE gateways SET revoked = TRUE, revoked_at = coalesce(revoked_at, {}) \
             WHERE tenant = $2 AND id = $3",
            ts("$1")
        ))
        .bind(at.unix_micros())
        .bind(tenant.as_str())
        .bind(gateway.as_str())
        .execute(&self.pool)
        .await?;
        gateway_found(done.rows_affected(), gateway)
    }

    pub(super) async fn select_revoked_gateways(&self) -> Result<Vec<RevokedGateway>> {
        let rows = sqlx::query(&format!(
            "SELECT tenant, id, cert_fingerprint, {} AS revoked_at FROM gateways WHERE revoked \
             ORDER BY tenant, id",
            us("revoked_at")
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(revoked_gateway_from).collect()
    }

    pub(super) async fn select_gateways(
        &self,
        tenant: &TenantId,
        only: Option<&GatewayId>,
    ) -> Result<Vec<GatewayRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT tenant, id, key_id, public_key, cert_fingerprint, {} AS cert_not_after, \
             revoked, {} AS revoked_at, {} AS created_at, {} AS last_seen, last_committed_seq, \
             health, \
             (SELECT count(*) FROM quarantine q WHERE q.tenant = g.tenant AND q.gateway = g.id) \
             AS rejected_batches, \
             (SELECT {} FROM enrollment_tokens e WHERE e.tenant = g.tenant \
              AND e.gateway = g.id AND e.used_at IS NULL AND e.expires_at > {}) \
             AS pending_enrollment FROM gateways g \
             WHERE tenant = $1 AND ($2::text IS NULL OR id = $2) ORDER BY id",
            us("cert_not_after"),
            us("revoked_at"),
            us("created_at"),
            us("last_seen"),
            us("max(e.expires_at)"),
            ts("$3")
        ))
        .bind(tenant.as_str())
        .bind(only.map(GatewayId::as_str))
        .bind(Timestamp::now().unix_micros())
        .fetch_all(&self.pool)
        .await?;
        let mut gateways = rows.iter().map(gateway_from).collect::<Result<Vec<_>>>()?;
        let keys = sqlx::query(&format!(
            "SELECT gateway, key_id, public_key, {} AS created_at, {} AS retired_at \
             FROM gateway_keys WHERE tenant = $1 AND ($2::text IS NULL OR gateway = $2) \
             ORDER BY gateway, gateway_keys.created_at DESC, \
             (gateway_keys.retired_at IS NULL) DESC, key_id",
            us("created_at"),
            us("retired_at")
        ))
        .bind(tenant.as_str())
        .bind(only.map(GatewayId::as_str))
        .fetch_all(&self.pool)
        .await?;
        let keys = keys
            .iter()
            .map(gateway_key_record_from)
            .collect::<Result<_>>()?;
        attach_keys(&mut gateways, keys);
        Ok(gateways)
    }

    pub(super) async fn select_gateway_key(&self, key_id: &KeyId) -> Result<Option<GatewayKey>> {
        let row = sqlx::query(&format!(
            "SELECT k.tenant, k.gateway, k.public_key, {} AS retired_at, {} AS revoked_at \
             FROM gateway_keys k JOIN gateways g ON g.tenant = k.tenant AND g.id = k.gateway \
             WHERE k.key_id = $1",
            us("k.retired_at"),
            us("g.revoked_at")
        ))
        .bind(key_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(gateway_key_from).transpose()
    }

    /// Creates or replaces sensors in one transaction (their tenants must exist).
    pub(super) async fn write_sensors(&self, sensors: &[Sensor]) -> Result<()> {
        let mut tenants: Vec<&TenantId> = sensors.iter().map(|s| &s.tenant).collect();
        tenants.sort();
        tenants.dedup();
        for tenant in tenants {
            self.require_tenant(tenant).await?;
        }
        let mut tx = self.pool.begin().await?;
        let now = Timestamp::now();
        for sensor in sensors {
            insert_sensor_row(&mut *tx, sensor, OnConflict::Replace).await?;
            let latest = sqlx::query(
                "SELECT tenant, sensor, since, lat, lon FROM sensor_placements \
                 WHERE tenant = $1 AND sensor = $2 ORDER BY since DESC LIMIT 1",
            )
            .bind(sensor.tenant.as_str())
            .bind(sensor.id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(placement_from)
            .transpose()?;
            if let Some(placement) = moved(latest.as_ref(), sensor, now)? {
                insert_placement_row(&mut *tx, &placement).await?;
            }
        }
        Ok(tx.commit().await?)
    }

    pub(super) async fn select_sensors(&self, tenant: &TenantId) -> Result<Vec<Sensor>> {
        let rows = sqlx::query(
            "SELECT tenant, id, kind, unit, lat, lon, zone, tags, \
             (SELECT max(since) FROM sensor_placements p \
              WHERE p.tenant = s.tenant AND p.sensor = s.id) AS placed_at \
             FROM sensors s WHERE tenant = $1 ORDER BY id",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sensor_from).collect()
    }

    pub(super) async fn select_placements(&self, tenant: &TenantId) -> Result<Vec<Placement>> {
        let rows = sqlx::query(
            "SELECT tenant, sensor, since, lat, lon FROM sensor_placements \
             WHERE tenant = $1 ORDER BY sensor, since",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(placement_from).collect()
    }

    pub(super) async fn write_zone(&self, zone: &Zone) -> Result<()> {
        self.require_tenant(&zone.tenant).await?;
        insert_zone_row(&self.pool, zone, OnConflict::Replace).await
    }

    pub(super) async fn select_zones(&self, tenant: &TenantId) -> Result<Vec<Zone>> {
        let rows = sqlx::query(
            "SELECT tenant, id, name, geometry FROM zones WHERE tenant = $1 ORDER BY id",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(zone_from).collect()
    }

    /// Fails with [`Error::NotFound`] unless the tenant exists.
    async fn require_tenant(&self, tenant: &TenantId) -> Result<()> {
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        tenant_found(exists, tenant)
    }
}

/// Inserts `tenant` as given; a taken id is [`Error::AlreadyExists`].
pub(super) async fn insert_tenant_row<'c>(
    db: impl Executor<'c, Database = Postgres>,
    tenant: &Tenant,
) -> Result<()> {
    let done = sqlx::query(&format!(
        "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, {}) \
         ON CONFLICT DO NOTHING",
        ts("$3")
    ))
    .bind(tenant.id.as_str())
    .bind(&tenant.name)
    .bind(tenant.created_at.unix_micros())
    .execute(db)
    .await?;
    tenant_created(done.rows_affected(), &tenant.id)
}

/// Inserts `gateway`, revoked at `revoked_at` or not, registered at `created_at`, without
/// its key's `gateway_keys` row ([`insert_gateway_key_row`]). The database's error is returned as
/// is: the caller says what a violated constraint means.
pub(super) async fn insert_gateway_row<'c>(
    db: impl Executor<'c, Database = Postgres>,
    gateway: &NewGateway,
    revoked_at: Option<Timestamp>,
    created_at: Timestamp,
) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO gateways (tenant, id, key_id, public_key, cert_fingerprint, \
         cert_not_after, revoked, revoked_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, {}, $7, {}, {})",
        ts("$6"),
        ts("$8"),
        ts("$9")
    ))
    .bind(gateway.tenant.as_str())
    .bind(gateway.id.as_str())
    .bind(gateway.key_id.as_str())
    .bind(&gateway.public_key[..])
    .bind(gateway.cert_fingerprint.as_deref())
    .bind(gateway.cert_not_after.map(Timestamp::unix_micros))
    .bind(revoked_at.is_some())
    .bind(revoked_at.map(Timestamp::unix_micros))
    .bind(created_at.unix_micros())
    .execute(db)
    .await
    .map(drop)
}

/// Inserts a signing key of the gateway. The database's error is returned as is (a unique
/// violation: the key id is taken, see [`key_registered`]).
pub(super) async fn insert_gateway_key_row<'c>(
    db: impl Executor<'c, Database = Postgres>,
    tenant: &TenantId,
    gateway: &GatewayId,
    key: &GatewayKeyRow,
) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO gateway_keys (key_id, tenant, gateway, public_key, created_at, retired_at) \
         VALUES ($1, $2, $3, $4, {}, {})",
        ts("$5"),
        ts("$6")
    ))
    .bind(key.key_id.as_str())
    .bind(tenant.as_str())
    .bind(gateway.as_str())
    .bind(&key.public_key[..])
    .bind(key.created_at.unix_micros())
    .bind(key.retired_at.map(Timestamp::unix_micros))
    .execute(db)
    .await
    .map(drop)
}

/// Inserts `sensor`; `on_conflict` says what happens to a stored sensor with its id.
pub(super) async fn insert_sensor_row<'c>(
    db: impl Executor<'c, Database = Postgres>,
    sensor: &Sensor,
    on_conflict: OnConflict,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO sensors (tenant, id, kind, unit, lat, lon, zone, tags) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8){}",
        on_conflict.clause(
            "tenant, id",
            &["kind", "unit", "lat", "lon", "zone", "tags"]
        )
    ))
    .bind(sensor.tenant.as_str())
    .bind(sensor.id.as_str())
    .bind(&sensor.kind)
    .bind(sensor.unit.as_ref().map(Unit::as_str))
    .bind(sensor.lat)
    .bind(sensor.lon)
    .bind(sensor.zone.as_ref().map(SensorId::as_str))
    .bind(Json(&sensor.tags))
    .execute(db)
    .await?;
    Ok(())
}

/// Appends one placement of a sensor.
pub(super) async fn insert_placement_row<'c>(
    db: impl Executor<'c, Database = Postgres>,
    placement: &Placement,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sensor_placements (tenant, sensor, since, lat, lon) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(placement.tenant.as_str())
    .bind(placement.sensor.as_str())
    .bind(placement.since.unix_micros())
    .bind(placement.lat)
    .bind(placement.lon)
    .execute(db)
    .await?;
    Ok(())
}

/// Inserts `zone`; `on_conflict` says what happens to a stored zone with its id.
pub(super) async fn insert_zone_row<'c>(
    db: impl Executor<'c, Database = Postgres>,
    zone: &Zone,
    on_conflict: OnConflict,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO zones (tenant, id, name, geometry) VALUES ($1, $2, $3, $4){}",
        on_conflict.clause("tenant, id", &["name", "geometry"])
    ))
    .bind(zone.tenant.as_str())
    .bind(zone.id.as_str())
    .bind(&zone.name)
    .bind(Json(&zone.geometry))
    .execute(db)
    .await?;
    Ok(())
}
