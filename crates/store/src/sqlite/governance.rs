//! SQLite: partners, sharing agreements, pseudonym keys and the governed cell query (buckets
//! by integer arithmetic, as in `query`).

use beffroi_policy::{Agreement, AgreementId, PartnerId, PseudonymKey};
use beffroi_protocol::{MetricName, TenantId, Timestamp};
use sqlx::{Executor, QueryBuilder, Sqlite};

use super::pseudonym_keys::insert_key_row;
use super::SqliteStore;
use crate::decode::is_unique_violation;
use crate::governance::{
    agreement_columns, agreement_inserted, agreement_not_found, agreement_record_from, cell_from,
    grantee_columns, key_from, metric_from, next_epoch, next_version, partner_from, update_refused,
    AgreementColumns, AgreementsBy, KEY_COLUMNS,
};
use crate::rows::Columns;
use crate::sealing::KeyRow;
use crate::{AgreementRecord, CellQuery, CellRow, CellUnit, Error, Partner, Result};

/// The columns [`agreement_record_from`] reads.
const AGREEMENT_COLUMNS: &str = "document, created_at, updated_at";

impl SqliteStore {
    pub(super) async fn insert_partner(&self, partner: &Partner) -> Result<()> {
        let _w = self.write.lock().await;
        let done = sqlx::query("INSERT INTO partners (id, name, created_at) VALUES (?, ?, ?)")
            .bind(partner.id.as_str())
            .bind(&partner.name)
            .bind(partner.created_at.unix_micros())
            .execute(&self.pool)
            .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(Error::AlreadyExists {
                what: "partner",
                id: partner.id.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn select_partners(&self, id: Option<&PartnerId>) -> Result<Vec<Partner>> {
        let rows = sqlx::query(
            "SELECT id, name, created_at FROM partners WHERE ?1 IS NULL OR id = ?1 ORDER BY id",
        )
        .bind(id.map(PartnerId::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(partner_from).collect()
    }

    pub(super) async fn insert_agreement(
        &self,
        agreement: &Agreement,
        key: Option<&[u8; 32]>,
        at: Timestamp,
    ) -> Result<AgreementRecord> {
        let columns = agreement_columns(agreement, 1)?;
        let _w = self.write.lock().await;
        let mut tx = self.begin_write().await?;
        insert_agreement_row(&mut *tx, &columns, at, at).await?;
        if let Some(key) = key {
            let row = KeyRow::first_of(agreement);
            insert_key_row(&mut tx, self.kek.as_ref(), &row, key, at).await?;
        }
        tx.commit().await?;
        Ok(AgreementRecord {
            agreement: columns.stored,
            created_at: at,
            updated_at: at,
        })
    }

    pub(super) async fn replace_agreement(
        &self,
        agreement: &Agreement,
        expected_version: u32,
        at: Timestamp,
    ) -> Result<AgreementRecord> {
        let columns = agreement_columns(agreement, next_version(expected_version)?)?;
        let _w = self.write.lock().await;
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE agreements SET version = ?, state = ?, grantee = ?, document = ?, \
             updated_at = ? WHERE grantor = ? AND id = ? AND version = ? RETURNING created_at",
        )
        .bind(columns.version)
        .bind(columns.state)
        .bind(&columns.grantee)
        .bind(&columns.document)
        .bind(at.unix_micros())
        .bind(agreement.grantor.as_str())
        .bind(agreement.id.as_str())
        .bind(i64::from(expected_version))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let current: Option<i64> =
                sqlx::query_scalar("SELECT version FROM agreements WHERE grantor = ? AND id = ?")
                    .bind(agreement.grantor.as_str())
                    .bind(agreement.id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(update_refused(
                &agreement.grantor,
                &agreement.id,
                current,
                expected_version,
            ));
        };
        let created_at = row.time("created_at")?;
        tx.commit().await?;
        Ok(AgreementRecord {
            agreement: columns.stored,
            created_at,
            updated_at: at,
        })
    }

    pub(super) async fn select_agreements(
        &self,
        by: AgreementsBy<'_>,
    ) -> Result<Vec<AgreementRecord>> {
        let mut q =
            QueryBuilder::<Sqlite>::new(format!("SELECT {AGREEMENT_COLUMNS} FROM agreements"));
        match by {
            AgreementsBy::One(grantor, id) => {
                q.push(" WHERE grantor = ")
                    .push_bind(grantor.as_str())
                    .push(" AND id = ")
                    .push_bind(id.as_str());
            }
            AgreementsBy::Grantor(grantor) => {
                q.push(" WHERE grantor = ").push_bind(grantor.as_str());
            }
            AgreementsBy::Grantee(grantee) => {
                let [own, public] = grantee_columns(grantee);
                q.push(" WHERE grantee IN (")
                    .push_bind(own)
                    .push(", ")
                    .push_bind(public)
                    .push(")");
            }
            AgreementsBy::All => {}
        }
        q.push(" ORDER BY grantor, id");
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(agreement_record_from).collect()
    }

    pub(super) async fn insert_pseudonym_key(
        &self,
        grantor: &TenantId,
        id: &AgreementId,
        key: &[u8; 32],
        at: Timestamp,
    ) -> Result<u32> {
        let _w = self.write.lock().await;
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT 1 FROM agreements WHERE grantor = ? AND id = ?")
            .bind(grantor.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(agreement_not_found(grantor, id));
        }
        let current: Option<i64> = sqlx::query_scalar(
            "SELECT max(epoch) FROM pseudonym_keys WHERE grantor = ? AND agreement = ?",
        )
        .bind(grantor.as_str())
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let epoch = next_epoch(current)?;
        sqlx::query(
            "UPDATE pseudonym_keys SET retired_at = ? WHERE grantor = ? AND agreement = ? \
             AND retired_at IS NULL",
        )
        .bind(at.unix_micros())
        .bind(grantor.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        let row = KeyRow {
            grantor,
            agreement: id,
            epoch,
        };
        insert_key_row(&mut tx, self.kek.as_ref(), &row, key, at).await?;
        tx.commit().await?;
        Ok(epoch)
    }

    pub(super) async fn select_pseudonym_key(
        &self,
        grantor: &TenantId,
        id: &AgreementId,
    ) -> Result<Option<PseudonymKey>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM pseudonym_keys WHERE grantor = ? AND agreement = ? \
             AND retired_at IS NULL ORDER BY epoch DESC LIMIT 1"
        ))
        .bind(grantor.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|r| key_from(r, self.kek.as_ref(), grantor, id))
            .transpose()
    }

    pub(super) async fn select_series_metrics(&self, tenant: &TenantId) -> Result<Vec<MetricName>> {
        let rows =
            sqlx::query("SELECT DISTINCT metric FROM series WHERE tenant = ? ORDER BY metric")
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(metric_from).collect()
    }

    pub(super) async fn select_cells(&self, query: &CellQuery) -> Result<Vec<CellRow>> {
        query.check()?;
        if query.is_empty() {
            return Ok(Vec::new());
        }
        // Floor division from the grid's origin, as in `select_buckets`.
        let mut q = QueryBuilder::<Sqlite>::new("SELECT r.time - ((((r.time - ");
        q.push_bind(query.offset_us)
            .push(") % ")
            .push_bind(query.bucket_us)
            .push(") + ")
            .push_bind(query.bucket_us)
            .push(") % ")
            .push_bind(query.bucket_us)
            .push(") AS bucket, s.metric, ")
            .push(match query.unit {
                CellUnit::Sensor => "s.sensor",
                CellUnit::Zone => "z.zone",
            })
            .push(
                " AS unit, count(DISTINCT s.sensor) AS sensors, count(r.value_num) AS n, \
                 sum(r.value_num) AS total, min(r.value_num) AS lo, max(r.value_num) AS hi \
                 FROM readings r JOIN series s ON s.id = r.series",
            );
        if query.unit == CellUnit::Zone {
            q.push(" JOIN sensors z ON z.tenant = s.tenant AND z.id = s.sensor");
        }
        q.push(" WHERE r.tenant = (SELECT key FROM tenants WHERE id = ")
            .push_bind(query.tenant.as_str())
            .push(") AND r.time >= ")
            .push_bind(query.from.unix_micros())
            .push(" AND r.time < ")
            .push_bind(query.to.unix_micros())
            .push(" AND r.value_num IS NOT NULL AND s.metric IN (");
        let mut list = q.separated(", ");
        for metric in &query.metrics {
            list.push_bind(metric.as_str());
        }
        q.push(")");
        if let Some(sensors) = &query.sensors {
            q.push(" AND s.sensor IN (");
            let mut list = q.separated(", ");
            for sensor in sensors {
                list.push_bind(sensor.as_str());
            }
            q.push(")");
        }
        if query.unit == CellUnit::Zone {
            q.push(" AND z.zone IS NOT NULL");
        }
        q.push(" GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(cell_from).collect()
    }
}

/// Inserts the agreement rendered in `columns`, created at `created_at` and last changed at
/// `updated_at`; a taken id is [`Error::AlreadyExists`], an unknown grantor
/// [`Error::NotFound`].
pub(super) async fn insert_agreement_row<'c>(
    db: impl Executor<'c, Database = Sqlite>,
    columns: &AgreementColumns,
    created_at: Timestamp,
    updated_at: Timestamp,
) -> Result<()> {
    let agreement = &columns.stored;
    let done = sqlx::query(
        "INSERT INTO agreements (grantor, id, version, state, grantee, document, created_at, \
         updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(agreement.grantor.as_str())
    .bind(agreement.id.as_str())
    .bind(columns.version)
    .bind(columns.state)
    .bind(&columns.grantee)
    .bind(&columns.document)
    .bind(created_at.unix_micros())
    .bind(updated_at.unix_micros())
    .execute(db)
    .await;
    agreement_inserted(done, agreement)
}
