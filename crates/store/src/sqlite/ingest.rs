//! SQLite: group commit, commit-ack state, health reports, retention, baseline bulk load.

use std::collections::{BTreeMap, HashMap, HashSet};

use beffroi_protocol::{GatewayId, Health, TenantId, Timestamp};
use sqlx::{Row, SqliteConnection};

use super::SqliteStore;
use crate::decode::{
    baseline_batch_ids, check_batches, count_to_db, reading_rows, seq_to_db, time_range, unsigned,
    value_columns, ReadingRow,
};
use crate::gateway_state::{gap_ranges, HealthState};
use crate::seq::{walk_stored, GapRange, SeqSource, SettledSeq, Watermark, SEQ_CHUNK};
use crate::{CommitBatch, CommitOutcome, Error, Result, SeqState};

/// Rows per multi-row `INSERT`, largest first: a call's rows are cut greedily into these,
/// so only four statements per table are ever prepared (at most 10 parameters a row, far
/// below SQLite's limit).
const INSERT_CHUNKS: [usize; 4] = [128, 32, 8, 1];

impl SqliteStore {
    pub(super) async fn commit_batches(
        &self,
        batches: &[CommitBatch],
    ) -> Result<Vec<CommitOutcome>> {
        check_batches(batches)?;
        let committed_at = Timestamp::now().unix_micros();
        let mut outcomes = vec![CommitOutcome::Duplicate; batches.len()];
        let mut batch_ids = vec![None; batches.len()];
        let mut series = self.series.map(batches);
        let _w = self.write.lock().await;
        self.resolve_series(&mut series).await?;
        let mut tx = self.begin_write().await?;
        // First occurrence of each key in the call; later ones are duplicates whatever happens.
        let mut first = HashSet::new();
        let candidates: Vec<(usize, &CommitBatch)> = batches
            .iter()
            .enumerate()
            .filter(|(_, b)| first.insert((b.tenant.as_str(), b.gateway.as_str(), b.seq)))
            .collect();
        for chunk in insert_chunks(&candidates) {
            let sql = values_sql(
                "INSERT INTO batches (tenant, gateway, seq, key_id, signature, received_at, \
                 committed_at, readings, first_time, last_time) VALUES ",
                10,
                chunk.len(),
                " ON CONFLICT DO NOTHING RETURNING tenant, gateway, seq, id",
            );
            let mut query = sqlx::query(&sql);
            for (_, batch) in chunk {
                let (first_time, last_time) = time_range(batch);
                query = query
                    .bind(batch.tenant.as_str())
                    .bind(batch.gateway.as_str())
                    .bind(seq_to_db(batch.seq)?)
                    .bind(batch.key_id.as_str())
                    .bind(&batch.signature[..])
                    .bind(batch.received_at.unix_micros())
                    .bind(committed_at)
                    .bind(count_to_db(batch.readings.len() as u64))
                    .bind(first_time)
                    .bind(last_time);
            }
            let stored: HashMap<(String, String, i64), i64> = query
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok(((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?), r.try_get(3)?)))
                .collect::<Result<_, sqlx::Error>>()?;
            for &(i, batch) in chunk {
                let key = (
                    batch.tenant.to_string(),
                    batch.gateway.to_string(),
                    seq_to_db(batch.seq)?,
                );
                if let Some(&id) = stored.get(&key) {
                    outcomes[i] = CommitOutcome::Stored;
                    batch_ids[i] = Some(id);
                }
            }
        }
        insert_readings(&mut tx, &reading_rows(batches, &batch_ids, &series)?).await?;

        let mut per_gateway: BTreeMap<(&TenantId, &GatewayId), (Vec<u64>, i64)> = BTreeMap::new();
        for (batch, outcome) in batches.iter().zip(&outcomes) {
            let entry = per_gateway
                .entry((&batch.tenant, &batch.gateway))
                .or_insert((Vec::new(), i64::MIN));
            if *outcome == CommitOutcome::Stored {
                entry.0.push(batch.seq);
            }
            entry.1 = entry.1.max(batch.received_at.unix_micros());
        }
        for ((tenant, gateway), (mut seqs, seen)) in per_gateway {
            seqs.sort_unstable();
            advance_gateway(&mut tx, tenant, gateway, &seqs, seen).await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    pub(super) async fn select_seq_state(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
    ) -> Result<SeqState> {
        let mut conn = self.pool.acquire().await?;
        let watermark: Option<i64> =
            sqlx::query_scalar("SELECT ack_contiguous FROM gateways WHERE tenant = ? AND id = ?")
                .bind(tenant.as_str())
                .bind(gateway.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        let from = unsigned("gateways", watermark.unwrap_or(0))?;
        let (contiguous, above) = walk_gateway(&mut conn, tenant, gateway, from).await?;
        Ok(SeqState { contiguous, above })
    }

    pub(super) async fn write_health(&self, health: &Health, received_at: Timestamp) -> Result<()> {
        let state = serde_json::to_string(&HealthState::from_health(health)).map_err(|e| {
            Error::Invalid {
                what: "health",
                reason: e.to_string(),
            }
        })?;
        let gaps = gap_ranges(health);
        let (tenant, gateway) = (&health.tenant, &health.gateway);
        let seen = received_at.unix_micros();
        let _w = self.write.lock().await;
        let mut tx = self.begin_write().await?;
        let watermark: Option<i64> = sqlx::query_scalar(
            "UPDATE gateways SET last_seen = max(coalesce(last_seen, ?1), ?1), health = ?2 \
             WHERE tenant = ?3 AND id = ?4 RETURNING ack_contiguous",
        )
        .bind(seen)
        .bind(state)
        .bind(tenant.as_str())
        .bind(gateway.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(watermark) = watermark else {
            return Err(Error::NotFound {
                what: "gateway",
                id: gateway.to_string(),
            });
        };
        if gaps.is_empty() {
            return Ok(tx.commit().await?);
        }
        let mut gap_max = 0;
        for ((first, last), gap) in &gaps {
            sqlx::query(
                "INSERT INTO gaps (tenant, gateway, first_seq, last_seq, batches, readings, \
                 reason, reported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(tenant.as_str())
            .bind(gateway.as_str())
            .bind(seq_to_db(*first)?)
            .bind(seq_to_db(*last)?)
            .bind(count_to_db(gap.batches))
            .bind(count_to_db(gap.readings))
            .bind(gap.reason.as_str())
            .bind(seen)
            .execute(&mut *tx)
            .await?;
            gap_max = gap_max.max(*last);
        }
        let from = unsigned("gateways", watermark)?;
        advance_over_gaps(&mut tx, tenant, gateway, from, gap_max).await?;
        Ok(tx.commit().await?)
    }

    pub(super) async fn delete_older(&self, older_than: Timestamp) -> Result<u64> {
        let _w = self.write.lock().await;
        // Tenant by tenant, through the (tenant, time) index.
        let done = sqlx::query(
            "DELETE FROM readings WHERE tenant IN (SELECT key FROM tenants) AND time < ?",
        )
        .bind(older_than.unix_micros())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn load_readings_only(&self, batches: &[CommitBatch]) -> Result<u64> {
        check_batches(batches)?;
        let mut series = self.series.map(batches);
        let _w = self.write.lock().await;
        self.resolve_series(&mut series).await?;
        let lowest: Option<i64> = sqlx::query_scalar("SELECT min(id) FROM readings")
            .fetch_one(&self.pool)
            .await?;
        let ids = baseline_batch_ids(lowest, batches.len());
        let rows = reading_rows(batches, &ids, &series)?;
        let mut tx = self.begin_write().await?;
        insert_readings(&mut tx, &rows).await?;
        tx.commit().await?;
        Ok(rows.len() as u64)
    }
}

/// Multi-row `INSERT`s of `rows`, in the caller's transaction.
async fn insert_readings(conn: &mut SqliteConnection, rows: &[ReadingRow<'_>]) -> Result<()> {
    for chunk in insert_chunks(rows) {
        let sql = values_sql(
            "INSERT INTO readings (id, time, tenant, series, value_num, value_bool, value_text) \
             VALUES ",
            7,
            chunk.len(),
            "",
        );
        let mut query = sqlx::query(&sql);
        for row in chunk {
            let (num, boolean, text) = value_columns(&row.reading.value)?;
            query = query
                .bind(row.id)
                .bind(row.reading.time.unix_micros())
                .bind(row.keys.tenant)
                .bind(row.keys.series)
                .bind(num)
                .bind(boolean)
                .bind(text);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `rows` cut greedily into chunks of the sizes in [`INSERT_CHUNKS`].
fn insert_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let n = INSERT_CHUNKS.into_iter().find(|&c| c <= rows.len())?;
        let (chunk, tail) = rows.split_at(n);
        rows = tail;
        Some(chunk)
    })
}

/// `{head}(?,…),(?,…)…{tail}`: `rows` tuples of `columns` parameters.
fn values_sql(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let tuple = format!("({})", vec!["?"; columns].join(","));
    format!("{head}{}{tail}", vec![tuple; rows].join(","))
}

/// Records the seq a quarantine record settles as the one-seq gap `(seq, seq)` and moves the
/// gateway's watermark over it, in the caller's transaction. Nothing for an unregistered
/// gateway (it has no state; ingest only settles seqs of registered keys).
pub(super) async fn settle_seq(
    conn: &mut SqliteConnection,
    settled: SettledSeq<'_>,
    reported_at: i64,
) -> Result<()> {
    let (tenant, gateway) = (settled.tenant, settled.gateway);
    let watermark: Option<i64> =
        sqlx::query_scalar("SELECT ack_contiguous FROM gateways WHERE tenant = ? AND id = ?")
            .bind(tenant.as_str())
            .bind(gateway.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    let Some(watermark) = watermark else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO gaps (tenant, gateway, first_seq, last_seq, batches, readings, reason, \
         reported_at) VALUES (?1, ?2, ?3, ?3, 1, 0, ?4, ?5) ON CONFLICT DO NOTHING",
    )
    .bind(tenant.as_str())
    .bind(gateway.as_str())
    .bind(seq_to_db(settled.seq)?)
    .bind(settled.gap_reason())
    .bind(reported_at)
    .execute(&mut *conn)
    .await?;
    let from = unsigned("gateways", watermark)?;
    advance_over_gaps(conn, tenant, gateway, from, settled.seq).await
}

/// Moves a gateway's watermark from `from` over its batches and gaps after gaps up to
/// `gap_max` were recorded, in the caller's transaction.
async fn advance_over_gaps(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    gateway: &GatewayId,
    from: u64,
    gap_max: u64,
) -> Result<()> {
    let (contiguous, _) = walk_gateway(conn, tenant, gateway, from).await?;
    sqlx::query(
        "UPDATE gateways SET gap_max = max(gap_max, ?), ack_contiguous = max(ack_contiguous, ?) \
         WHERE tenant = ? AND id = ?",
    )
    .bind(seq_to_db(gap_max)?)
    .bind(seq_to_db(contiguous)?)
    .bind(tenant.as_str())
    .bind(gateway.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves a gateway's watermark and state after a commit stored `seqs` (ascending) from it.
async fn advance_gateway(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    gateway: &GatewayId,
    seqs: &[u64],
    seen: i64,
) -> Result<()> {
    let row = sqlx::query(
        "SELECT ack_contiguous, last_committed_seq, gap_max FROM gateways \
         WHERE tenant = ? AND id = ?",
    )
    .bind(tenant.as_str())
    .bind(gateway.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    // Ingest verified the batch with a registered key; an unregistered gateway has no state.
    let Some(row) = row else { return Ok(()) };
    let last: Option<i64> = row.try_get("last_committed_seq")?;
    let last = last.map(|s| unsigned("gateways", s)).transpose()?;
    let before = Watermark {
        contiguous: unsigned("gateways", row.try_get("ack_contiguous")?)?,
        last_committed: last.unwrap_or(0),
        gap_max: unsigned("gateways", row.try_get("gap_max")?)?,
    };
    let contiguous = match before.advance_on_commit(seqs) {
        Some(contiguous) => contiguous,
        None => {
            walk_gateway(conn, tenant, gateway, before.contiguous)
                .await?
                .0
        }
    };
    let last = last.max(seqs.last().copied());
    sqlx::query(
        "UPDATE gateways SET ack_contiguous = max(ack_contiguous, ?1), last_committed_seq = ?2, \
         last_seen = max(coalesce(last_seen, ?3), ?3) WHERE tenant = ?4 AND id = ?5",
    )
    .bind(seq_to_db(contiguous)?)
    .bind(last.map(seq_to_db).transpose()?)
    .bind(seen)
    .bind(tenant.as_str())
    .bind(gateway.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A gateway's seqs and gaps in an SQLite connection.
struct Seqs<'a> {
    conn: &'a mut SqliteConnection,
    tenant: &'a TenantId,
    gateway: &'a GatewayId,
}

impl SeqSource for Seqs<'_> {
    async fn gaps_above(&mut self, from: u64) -> Result<Vec<GapRange>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT first_seq, last_seq FROM gaps \
             WHERE tenant = ? AND gateway = ? AND last_seq > ?",
        )
        .bind(self.tenant.as_str())
        .bind(self.gateway.as_str())
        .bind(seq_to_db(from)?)
        .fetch_all(&mut *self.conn)
        .await?;
        rows.into_iter()
            .map(|(f, l)| Ok((unsigned("gaps", f)?, unsigned("gaps", l)?)))
            .collect()
    }

    async fn seqs_above(&mut self, after: u64) -> Result<Vec<u64>> {
        let seqs: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM batches WHERE tenant = ? AND gateway = ? AND seq > ? \
             ORDER BY seq LIMIT ?",
        )
        .bind(self.tenant.as_str())
        .bind(self.gateway.as_str())
        .bind(seq_to_db(after)?)
        .bind(SEQ_CHUNK as i64)
        .fetch_all(&mut *self.conn)
        .await?;
        seqs.into_iter().map(|s| unsigned("batches", s)).collect()
    }
}

/// [`walk_stored`] for one gateway.
async fn walk_gateway(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    gateway: &GatewayId,
    from: u64,
) -> Result<(u64, Vec<u64>)> {
    walk_stored(
        &mut Seqs {
            conn,
            tenant,
            gateway,
        },
        from,
    )
    .await
}
