//! PostgreSQL: partners, sharing agreements, pseudonym keys and the governed cell query
//! (`date_bin` from the grid's origin, on plain PostgreSQL and TimescaleDB alike).

use beffroi_policy::{Agreement, AgreementId, PartnerId, PseudonymKey};
use beffroi_protocol::{MetricName, TenantId, Timestamp};
use sqlx::{Executor, Postgres, QueryBuilder};

use super::pseudonym_keys::insert_key_row;
use super::rollup::{Grid, Selection};
use super::{ts, us, PostgresStore};
use crate::decode::is_unique_violation;
use crate::governance::{
    agreement_columns, agreement_inserted, agreement_not_found, agreement_record_from, cell_from,
    grantee_columns, key_from, metric_from, next_epoch, next_version, partner_from, update_refused,
    AgreementColumns, AgreementsBy, KEY_COLUMNS,
};
use crate::rows::Columns;
use crate::sealing::KeyRow;
use crate::{AgreementRecord, CellQuery, CellRow, CellUnit, Error, Partner, Result};

impl PostgresStore {
    pub(super) async fn insert_partner(&self, partner: &Partner) -> Result<()> {
        let done = sqlx::query(&format!(
            "INSERT INTO partners (id, name, created_at) VALUES ($1, $2, {})",
            ts("$3")
        ))
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
        let rows = sqlx::query(&format!(
            "SELECT id, name, {} AS created_at FROM partners \
             WHERE $1::text IS NULL OR id = $1 ORDER BY id",
            us("created_at")
        ))
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
        let mut tx = self.pool.begin().await?;
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
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE agreements SET version = $1, state = $2, grantee = $3, document = $4, \
             updated_at = {} WHERE grantor = $6 AND id = $7 AND version = $8 \
             RETURNING {} AS created_at",
            ts("$5"),
            us("created_at")
        ))
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
                sqlx::query_scalar("SELECT version FROM agreements WHERE grantor = $1 AND id = $2")
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
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT document, {} AS created_at, {} AS updated_at FROM agreements",
            us("created_at"),
            us("updated_at")
        ));
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
        let mut tx = self.pool.begin().await?;
        // Locks the agreement: concurrent rotations of one agreement take turns.
        let exists =
            sqlx::query("SELECT 1 FROM agreements WHERE grantor = $1 AND id = $2 FOR UPDATE")
                .bind(grantor.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(agreement_not_found(grantor, id));
        }
        let current: Option<i64> = sqlx::query_scalar(
            "SELECT max(epoch) FROM pseudonym_keys WHERE grantor = $1 AND agreement = $2",
        )
        .bind(grantor.as_str())
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let epoch = next_epoch(current)?;
        sqlx::query(&format!(
            "UPDATE pseudonym_keys SET retired_at = {} WHERE grantor = $2 AND agreement = $3 \
             AND retired_at IS NULL",
            ts("$1")
        ))
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
            "SELECT {KEY_COLUMNS} FROM pseudonym_keys WHERE grantor = $1 AND agreement = $2 \
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
            sqlx::query("SELECT DISTINCT metric FROM series WHERE tenant = $1 ORDER BY metric")
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
        let selection = Selection {
            tenant: &query.tenant,
            metrics: Some(
                query
                    .metrics
                    .iter()
                    .map(|m| m.as_str().to_owned())
                    .collect(),
            ),
            sensors: query
                .sensors
                .as_ref()
                .map(|s| s.iter().map(|s| s.as_str().to_owned()).collect()),
            zone: None,
        };
        let grid = Grid {
            width_us: query.bucket_us,
            offset_us: query.offset_us,
        };
        let mut q = QueryBuilder::<Postgres>::new("SELECT p.bucket, s.metric, ");
        q.push(match query.unit {
            CellUnit::Sensor => "s.sensor",
            CellUnit::Zone => "z.zone",
        })
        .push(
            " AS unit, count(DISTINCT s.sensor) AS sensors, sum(p.n)::int8 AS n, \
             sum(p.total) AS total, min(p.lo) AS lo, max(p.hi) AS hi FROM ",
        );
        if !self
            .push_partials(&mut q, &selection, grid, (query.from, query.to))
            .await?
        {
            return Ok(Vec::new());
        }
        q.push(" JOIN series s ON s.id = p.series");
        if query.unit == CellUnit::Zone {
            q.push(
                " JOIN sensors z ON z.tenant = s.tenant AND z.id = s.sensor \
                 WHERE z.zone IS NOT NULL",
            );
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
    db: impl Executor<'c, Database = Postgres>,
    columns: &AgreementColumns,
    created_at: Timestamp,
    updated_at: Timestamp,
) -> Result<()> {
    let agreement = &columns.stored;
    let done = sqlx::query(&format!(
        "INSERT INTO agreements (grantor, id, version, state, grantee, document, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, {}, {})",
        ts("$7"),
        ts("$8")
    ))
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
