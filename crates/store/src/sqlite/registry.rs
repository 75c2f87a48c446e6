//! SQLite: tenants, gateways, sensors, zones.

use beffroi_protocol::{GatewayId, KeyId, SensorId, TenantId, Timestamp, Unit};
use sqlx::{Executor, Sqlite};

use super::SqliteStore;
use crate::decode::json_text;
use crate::identity::{attach_keys, gateway_inserted, key_registered, GatewayKeyRow};
use crate::on_conflict::OnConflict;
use crate::outcome::{gateway_found, tenant_created, tenant_found};
use crate::placement::moved;
use crate::rows::{
    gateway_from, gateway_key_from, gateway_key_record_from, placement_from, revoked_gateway_from,
    sensor_from, tenant_from, zone_from,
};
use crate::{
    Error, GatewayKey, GatewayRecord, NewGateway, Placement, Result, RevokedGateway, Sensor,
    Tenant, Zone,
};

impl SqliteStore {
    pub(super) async fn insert_tenant(&self, id: &TenantId, name: &str) -> Result<Tenant> {
        let tenant = Tenant {
            id: id.clone(),
            name: name.to_owned(),
            created_at: Timestamp::now(),
        };
        let _w = self.write.lock().await;
        insert_tenant_row(&self.pool, &tenant).await?;
        Ok(tenant)
    }

    pub(super) async fn select_tenants(&self, only: Option<&TenantId>) -> Result<Vec<Tenant>> {
        let rows = sqlx::query(
            "SELECT id, name, created_at FROM tenants WHERE ?1 IS NULL OR id = ?1 ORDER BY id",
        )
        .bind(only.map(TenantId::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tenant_from).collect()
    }

    pub(super) async fn insert_gateway(&self, gateway: &NewGateway) -> Result<()> {
        let _w = self.write.lock().await;
        let mut tx = self.begin_write().await?;
        let tenant: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = ?")
            .bind(gateway.tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if tenant.is_none() {
            return Err(Error::NotFound {
                what: "tenant",
                id: gateway.tenant.to_string(),
            });
        }
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM gateways WHERE tenant = ? AND id = ?")
                .bind(gateway.tenant.as_str())
                .bind(gateway.id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_some() {
            return Err(Error::AlreadyExists {
                what: "gateway",
                id: gateway.id.to_string(),
            });
        }
        let now = Timestamp::now();
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
        let _w = self.write.lock().await;
        let done = sqlx::query(
            "UPDATE gateways SET cert_fingerprint = ?, cert_not_after = ? \
             WHERE tenant = ? AND id = ?",
        )
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
        let _w = self.write.lock().await;
        let done = sqlx::query(
            "UPDATE gateways SET revoked = 1, revoked_at = coalesce(revoked_at, ?) \
             WHERE tenant = ? AND id = ?",
        )
        .bind(at.unix_micros())
        .bind(tenant.as_str())
        .bind(gateway.as_str())
        .execute(&self.pool)
        .await?;
        gateway_found(done.rows_affected(), gateway)
    }

    pub(super) async fn select_revoked_gateways(&self) -> Result<Vec<RevokedGateway>> {
        let rows = sqlx::query(
            "SELECT tenant, id, cert_fingerprint, revoked_at FROM gateways WHERE revoked <> 0 \
             ORDER BY tenant, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(revoked_gateway_from).collect()
    }

    pub(super) async fn select_gateways(
        &self,
        tenant: &TenantId,
        only: Option<&GatewayId>,
    ) -> Result<Vec<GatewayRecord>> {
        let rows = sqlx::query(
            "SELECT tenant, id, key_id, public_key, cert_fingerprint, cert_not_after, revoked, \
             revoked_at, created_at, last_seen, last_committed_seq, health, \
             (SELECT count(*) FROM quarantine q WHERE q.tenant = g.tenant AND q.gateway = g.id) \
             AS rejected_batches, \
             (SELECT max(expires_at) FROM enrollment_tokens e WHERE e.tenant = g.tenant \
              AND e.gateway = g.id AND e.used_at IS NULL AND e.expires_at > ?3) \
             AS pending_enrollment FROM gateways g \
             WHERE tenant = ?1 AND (?2 IS NULL OR id = ?2) ORDER BY id",
        )
        .bind(tenant.as_str())
        .bind(only.map(GatewayId::as_str))
        .bind(Timestamp::now().unix_micros())
        .fetch_all(&self.pool)
        .await?;
        let mut gateways = rows.iter().map(gateway_from).collect::<Result<Vec<_>>>()?;
        let keys = sqlx::query(
            "SELECT gateway, key_id, public_key, created_at, retired_at FROM gateway_keys \
             WHERE tenant = ?1 AND (?2 IS NULL OR gateway = ?2) \
             ORDER BY gateway, created_at DESC, retired_at IS NULL DESC, key_id",
        )
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
        let row = sqlx::query(
            "SELECT k.tenant, k.gateway, k.public_key, k.retired_at, g.revoked_at \
             FROM gateway_keys k JOIN gateways g ON g.tenant = k.tenant AND g.id = k.gateway \
             WHERE k.key_id = ?",
        )
        .bind(key_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(gateway_key_from).transpose()
    }

    /// Creates or replaces sensors in one transaction (their tenants must exist).
    pub(super) async fn write_sensors(&self, sensors: &[Sensor]) -> Result<()> {
        let _w = self.write.lock().await;
        let mut tenants: Vec<&TenantId> = sensors.iter().map(|s| &s.tenant).collect();
        tenants.sort();
        tenants.dedup();
        for tenant in tenants {
            self.require_tenant(tenant).await?;
        }
        let mut tx = self.begin_write().await?;
        let now = Timestamp::now();
        for sensor in sensors {
            insert_sensor_row(&mut *tx, sensor, OnConflict::Replace).await?;
            let latest = sqlx::query(
                "SELECT tenant, sensor, since, lat, lon FROM sensor_placements \
                 WHERE tenant = ? AND sensor = ? ORDER BY since DESC LIMIT 1",
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
             FROM sensors s WHERE tenant = ? ORDER BY id",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sensor_from).collect()
    }

    pub(super) async fn select_placements(&self, tenant: &TenantId) -> Result<Vec<Placement>> {
        let rows = sqlx::query(
            "SELECT tenant, sensor, since, lat, lon FROM sensor_placements \
             WHERE tenant = ? ORDER BY sensor, since",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(placement_from).collect()
    }

    pub(super) async fn write_zone(&self, zone: &Zone) -> Result<()> {
        let _w = self.write.lock().await;
        self.require_tenant(&zone.tenant).await?;
        insert_zone_row(&self.pool, zone, OnConflict::Replace).await
    }

    pub(super) async fn select_zones(&self, tenant: &TenantId) -> Result<Vec<Zone>> {
        let rows = sqlx::query(
            "SELECT tenant, id, name, geometry FROM zones WHERE tenant = ? ORDER BY id",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(zone_from).collect()
    }

    /// Fails with [`Error::NotFound`] unless the tenant exists.
    pub(super) async fn require_tenant(&self, tenant: &TenantId) -> Result<()> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = ?")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        tenant_found(exists, tenant)
    }
}

/// Inserts `tenant` as given; a taken id is [`Error::AlreadyExists`].
pub(super) async fn insert_tenant_row<'c>(
    db: impl Executor<'c, Database = Sqlite>,
    tenant: &Tenant,
) -> Result<()> {
    let done = sqlx::query(
        "INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(tenant.id.as_str())
    .bind(&tenant.name)
    .bind(tenant.created_at.unix_micros())
    .execute(db)
    .await?;
    tenant_created(done.rows_affected(), &tenant.id)
}

/// Inserts `gateway`, revoked at `revoked_at` or not, registered at `created_at`, without
/// its key's `gateway_keys` row ([`insert_gateway_key_row`]). The database's error is returned as
/// is: the caller says which key a unique violation means.
pub(super) async fn insert_gateway_row<'c>(
    db: impl Executor<'c, Database = Sqlite>,
    gateway: &NewGateway,
    revoked_at: Option<Timestamp>,
    created_at: Timestamp,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO gateways (tenant, id, key_id, public_key, cert_fingerprint, \
         cert_not_after, revoked, revoked_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
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
    db: impl Executor<'c, Database = Sqlite>,
    tenant: &TenantId,
    gateway: &GatewayId,
    key: &GatewayKeyRow,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO gateway_keys (key_id, tenant, gateway, public_key, created_at, retired_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
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

/// Inserts `sensor` (its tags as JSON text); `on_conflict` says what happens to a stored
/// sensor with its id.
pub(super) async fn insert_sensor_row<'c>(
    db: impl Executor<'c, Database = Sqlite>,
    sensor: &Sensor,
    on_conflict: OnConflict,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO sensors (tenant, id, kind, unit, lat, lon, zone, tags) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?){}",
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
    .bind(json_text("sensor tags", &sensor.tags)?)
    .execute(db)
    .await?;
    Ok(())
}

/// Appends one placement of a sensor.
pub(super) async fn insert_placement_row<'c>(
    db: impl Executor<'c, Database = Sqlite>,
    placement: &Placement,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sensor_placements (tenant, sensor, since, lat, lon) \
         VALUES (?, ?, ?, ?, ?)",
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

/// Inserts `zone` (its geometry as JSON text); `on_conflict` says what happens to a stored
/// zone with its id.
pub(super) async fn insert_zone_row<'c>(
    db: impl Executor<'c, Database = Sqlite>,
    zone: &Zone,
    on_conflict: OnConflict,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO zones (tenant, id, name, geometry) VALUES (?, ?, ?, ?){}",
        on_conflict.clause("tenant, id", &["name", "geometry"])
    ))
    .bind(zone.tenant.as_str())
    .bind(zone.id.as_str())
    .bind(&zone.name)
    .bind(json_text("zone geometry", &zone.geometry)?)
    .execute(db)
    .await?;
    Ok(())
}
