//! PostgreSQL: group commit, commit-ack state, health reports, retention, baseline bulk load.
//!
//! One commit is one transaction of a fixed number of statements whatever the number of
//! batches: lock the gateways' rows (sorted), insert the batches with `ON CONFLICT DO NOTHING
//! RETURNING` (what comes back was stored, with its id; the rest are duplicates), `COPY` the
//! stored batches' readings, update the gateways' state from `UNNEST`ed arrays. New series
//! (and their sensors) are created before, outside the transaction (see `series`).

use std::collections::{BTreeMap, HashMap, HashSet};

use beffroi_protocol::{GatewayId, Health, TenantId, Timestamp};
use sqlx::types::Json;
use sqlx::PgConnection;

use super::rollup::{self, LateRange, LATE_AFTER_US};
use super::{copy, timescale, ts, PostgresStore};
use crate::decode::{check_batches, count_to_db, reading_rows, seq_to_db, time_range, unsigned};
use crate::gateway_state::{gap_ranges, HealthState};
use crate::seq::{walk_stored, GapRange, SeqSource, SettledSeq, Watermark, SEQ_CHUNK};
use crate::{Backend, CommitBatch, CommitOutcome, Error, Result, SeqState};

/// What a commit learns about one gateway.
#[derive(Default)]
struct Touched {
    stored: Vec<u64>,
    seen: i64,
}

impl PostgresStore {
    pub(super) async fn commit_batches(
        &self,
        batches: &[CommitBatch],
    ) -> Result<Vec<CommitOutcome>> {
        check_batches(batches)?;
        let mut outcomes = vec![CommitOutcome::Duplicate; batches.len()];
        if batches.is_empty() {
            return Ok(outcomes);
        }
        copy::check_times(batches)?;
        let mut series = self.series.map(batches);
        self.resolve_series(&mut series).await?;

        // First occurrence of each key in the call; later ones are duplicates whatever happens.
        let mut first = HashSet::new();
        let candidates: Vec<usize> = (0..batches.len())
            .filter(|&i| {
                let b = &batches[i];
                first.insert((b.tenant.as_str(), b.gateway.as_str(), b.seq))
            })
            .collect();
        let mut touched: BTreeMap<(&str, &str), Touched> = BTreeMap::new();
        for b in batches {
            let t = touched
                .entry((b.tenant.as_str(), b.gateway.as_str()))
                .or_insert(Touched {
                    stored: Vec::new(),
                    seen: i64::MIN,
                });
            t.seen = t.seen.max(b.received_at.unix_micros());
        }

        let mut tx = self.pool.begin().await?;
        let (lock_t, lock_g): (Vec<&str>, Vec<&str>) = touched.keys().copied().unzip();
        let locked: Vec<(String, String, i64, Option<i64>, i64)> = sqlx::query_as(
            "SELECT tenant, id, ack_contiguous, last_committed_seq, gap_max FROM gateways \
             WHERE (tenant, id) IN (SELECT * FROM UNNEST($1::text[], $2::text[])) \
             ORDER BY tenant, id FOR UPDATE",
        )
        .bind(&lock_t)
        .bind(&lock_g)
        .fetch_all(&mut *tx)
        .await?;

        let mut cols = BatchColumns::default();
        for &i in &candidates {
            cols.push(&batches[i])?;
        }
        let stored: Vec<(String, String, i64, i64)> = sqlx::query_as(&format!(
            "INSERT INTO batches (tenant, gateway, seq, key_id, signature, received_at, \
             committed_at, readings, first_time, last_time) \
             SELECT t, g, s, k, sig, {}, now(), n, {}, {} FROM UNNEST($1::text[], $2::text[], \
             $3::int8[], $4::text[], $5::bytea[], $6::int8[], $7::int4[], $8::int8[], \
             $9::int8[]) AS u(t, g, s, k, sig, r, n, f, l) \
             ON CONFLICT DO NOTHING RETURNING tenant, gateway, seq, id",
            ts("u.r"),
            ts("u.f"),
            ts("u.l")
        ))
        .bind(&cols.tenant)
        .bind(&cols.gateway)
        .bind(&cols.seq)
        .bind(&cols.key_id)
        .bind(&cols.signature)
        .bind(&cols.received_at)
        .bind(&cols.readings)
        .bind(&cols.first_time)
        .bind(&cols.last_time)
        .fetch_all(&mut *tx)
        .await?;
        let stored: HashMap<(String, String, i64), i64> = stored
            .into_iter()
            .map(|(t, g, s, id)| ((t, g, s), id))
            .collect();
        let mut batch_ids = vec![None; batches.len()];
        for &i in &candidates {
            let b = &batches[i];
            let key = (
                b.tenant.to_string(),
                b.gateway.to_string(),
                seq_to_db(b.seq)?,
            );
            if let Some(&id) = stored.get(&key) {
                outcomes[i] = CommitOutcome::Stored;
                batch_ids[i] = Some(id);
                if let Some(t) = touched.get_mut(&(b.tenant.as_str(), b.gateway.as_str())) {
                    t.stored.push(b.seq);
                }
            }
        }

        let rows = reading_rows(batches, &batch_ids, &series)?;
        if !rows.is_empty() {
            copy::copy_readings(&mut tx, &rows).await?;
        }
        if self.backend == Backend::Timescale {
            let late = late_ranges(batches, &candidates, &cols, &batch_ids);
            rollup::record_late(&mut tx, &late).await?;
        }

        let mut update = GatewayColumns::default();
        // Both are sorted by (tenant, id) bytewise (`COLLATE "C"`): a merge join.
        let mut pending = touched.iter_mut().peekable();
        for (tenant, gateway, contiguous, last, gap_max) in locked {
            while pending
                .peek()
                .is_some_and(|(k, _)| *k < &(tenant.as_str(), gateway.as_str()))
            {
                pending.next();
            }
            let Some((_, t)) = pending.next_if(|(k, _)| k.0 == tenant && k.1 == gateway) else {
                continue;
            };
            t.stored.sort_unstable();
            let last = last.map(|s| unsigned("gateways", s)).transpose()?;
            let before = Watermark {
                contiguous: unsigned("gateways", contiguous)?,
                last_committed: last.unwrap_or(0),
                gap_max: unsigned("gateways", gap_max)?,
            };
            let contiguous = match before.advance_on_commit(&t.stored) {
                Some(c) => c,
                None => {
                    let tenant = TenantId::new(tenant.as_str())
                        .map_err(|e| crate::decode::corrupt("gateways", e.to_string()))?;
                    let gateway = GatewayId::new(gateway.as_str())
                        .map_err(|e| crate::decode::corrupt("gateways", e.to_string()))?;
                    walk_gateway(&mut tx, &tenant, &gateway, before.contiguous)
                        .await?
                        .0
                }
            };
            update.tenant.push(tenant);
            update.gateway.push(gateway);
            update.contiguous.push(seq_to_db(contiguous)?);
            update
                .last
                .push(t.stored.last().map(|&s| seq_to_db(s)).transpose()?);
            update.seen.push(t.seen);
        }
        if !update.tenant.is_empty() {
            sqlx::query(&format!(
                "UPDATE gateways AS g SET ack_contiguous = GREATEST(g.ack_contiguous, u.c), \
                 last_committed_seq = GREATEST(g.last_committed_seq, u.l), \
                 last_seen = GREATEST(g.last_seen, {}) \
                 FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[]) \
                 AS u(t, i, c, l, seen) WHERE g.tenant = u.t AND g.id = u.i",
                ts("u.seen")
            ))
            .bind(&update.tenant)
            .bind(&update.gateway)
            .bind(&update.contiguous)
            .bind(&update.last)
            .bind(&update.seen)
            .execute(&mut *tx)
            .await?;
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
            sqlx::query_scalar("SELECT ack_contiguous FROM gateways WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(gateway.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        let from = unsigned("gateways", watermark.unwrap_or(0))?;
        let (contiguous, above) = walk_gateway(&mut conn, tenant, gateway, from).await?;
        Ok(SeqState { contiguous, above })
    }

    pub(super) async fn write_health(&self, health: &Health, received_at: Timestamp) -> Result<()> {
        let gaps = gap_ranges(health);
        let (tenant, gateway) = (&health.tenant, &health.gateway);
        let seen = received_at.unix_micros();
        let mut tx = self.pool.begin().await?;
        let watermark: Option<i64> = sqlx::query_scalar(&format!(
            "UPDATE gateways SET last_seen = GREATEST(last_seen, {}), health = $2 \
             WHERE tenant = $3 AND id = $4 RETURNING ack_contiguous",
            ts("$1")
        ))
        .bind(seen)
        .bind(Json(HealthState::from_health(health)))
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
        let (mut first, mut last, mut lost_batches, mut lost_readings, mut reasons) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut gap_max = 0;
        for ((f, l), gap) in &gaps {
            first.push(seq_to_db(*f)?);
            last.push(seq_to_db(*l)?);
            lost_batches.push(count_to_db(gap.batches));
            lost_readings.push(count_to_db(gap.readings));
            reasons.push(gap.reason.as_str());
            gap_max = gap_max.max(*l);
        }
        sqlx::query(&format!(
            "INSERT INTO gaps (tenant, gateway, first_seq, last_seq, batches, readings, reason, \
             reported_at) SELECT $1, $2, f, l, b, r, why, {} FROM UNNEST($3::int8[], \
             $4::int8[], $5::int8[], $6::int8[], $7::text[]) AS u(f, l, b, r, why) \
             ON CONFLICT DO NOTHING",
            ts("$8")
        ))
        .bind(tenant.as_str())
        .bind(gateway.as_str())
        .bind(&first)
        .bind(&last)
        .bind(&lost_batches)
        .bind(&lost_readings)
        .bind(&reasons)
        .bind(seen)
        .execute(&mut *tx)
        .await?;
        let from = unsigned("gateways", watermark)?;
        advance_over_gaps(&mut tx, tenant, gateway, from, gap_max).await?;
        Ok(tx.commit().await?)
    }

    pub(super) async fn delete_older(&self, older_than: Timestamp) -> Result<u64> {
        let timescale = self.backend == Backend::Timescale;
        if timescale {
            // Raw readings go, their aggregates stay (see `timescale::keep_aggregates`).
            timescale::refresh_before_purge(&self.pool, older_than, None).await?;
        }
        let mut tx = self.pool.begin().await?;
        let mut removed = 0;
        if timescale {
            timescale::keep_aggregates(&mut tx).await?;
            removed += timescale::drop_chunks(&mut tx, older_than).await?;
        }
        let done = sqlx::query(&format!("DELETE FROM readings WHERE time < {}", ts("$1")))
            .bind(older_than.unix_micros())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed + done.rows_affected())
    }

    pub(super) async fn load_readings_only(&self, batches: &[CommitBatch]) -> Result<u64> {
        check_batches(batches)?;
        copy::check_times(batches)?;
        let mut series = self.series.map(batches);
        self.resolve_series(&mut series).await?;
        // Ids of batches never written: unique, like real ones, without `batches` rows.
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT nextval(pg_get_serial_sequence('batches', 'id')) FROM generate_series(1, $1)",
        )
        .bind(i64::try_from(batches.len()).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let ids: Vec<Option<i64>> = ids.into_iter().map(Some).collect();
        let rows = reading_rows(batches, &ids, &series)?;
        let mut tx = self.pool.begin().await?;
        copy::copy_readings(&mut tx, &rows).await?;
        tx.commit().await?;
        Ok(rows.len() as u64)
    }
}

/// The `batches` columns of a commit, as arrays for `UNNEST`.
#[derive(Default)]
struct BatchColumns<'a> {
    tenant: Vec<&'a str>,
    gateway: Vec<&'a str>,
    seq: Vec<i64>,
    key_id: Vec<&'a str>,
    signature: Vec<&'a [u8]>,
    received_at: Vec<i64>,
    readings: Vec<i32>,
    first_time: Vec<Option<i64>>,
    last_time: Vec<Option<i64>>,
}

impl<'a> BatchColumns<'a> {
    fn push(&mut self, batch: &'a CommitBatch) -> Result<()> {
        self.tenant.push(batch.tenant.as_str());
        self.gateway.push(batch.gateway.as_str());
        self.seq.push(seq_to_db(batch.seq)?);
        self.key_id.push(batch.key_id.as_str());
        self.signature.push(&batch.signature[..]);
        self.received_at.push(batch.received_at.unix_micros());
        self.readings
            .push(i32::try_from(batch.readings.len()).unwrap_or(i32::MAX));
        let (first, last) = time_range(batch);
        self.first_time.push(first);
        self.last_time.push(last);
        Ok(())
    }
}

/// The stored batches' late readings (older than their receipt by more than
/// [`LATE_AFTER_US`]), as `(tenant, gateway, first, last)`; `cols` holds the `candidates`'
/// time ranges in order.
fn late_ranges<'a>(
    batches: &'a [CommitBatch],
    candidates: &[usize],
    cols: &BatchColumns<'_>,
    batch_ids: &[Option<i64>],
) -> Vec<LateRange<'a>> {
    candidates
        .iter()
        .zip(cols.first_time.iter().zip(&cols.last_time))
        .filter_map(|(&i, times)| {
            let b = &batches[i];
            match (batch_ids[i], times) {
                (Some(_), (Some(first), Some(last)))
                    if *first < b.received_at.unix_micros() - LATE_AFTER_US =>
                {
                    Some((b.tenant.as_str(), b.gateway.as_str(), *first, *last))
                }
                _ => None,
            }
        })
        .collect()
}

/// The gateway state updates of a commit, as arrays for `UNNEST`.
#[derive(Default)]
struct GatewayColumns {
    tenant: Vec<String>,
    gateway: Vec<String>,
    contiguous: Vec<i64>,
    last: Vec<Option<i64>>,
    seen: Vec<i64>,
}

/// Records the seq a quarantine record settles as the one-seq gap `(seq, seq)` and moves the
/// gateway's watermark over it, in the caller's transaction (the gateway's row locked, as a
/// commit locks it). Nothing for an unregistered gateway (it has no state; ingest only settles
/// seqs of registered keys).
pub(super) async fn settle_seq(
    conn: &mut PgConnection,
    settled: SettledSeq<'_>,
    reported_at: i64,
) -> Result<()> {
    let (tenant, gateway) = (settled.tenant, settled.gateway);
    let watermark: Option<i64> = sqlx::query_scalar(
        "SELECT ack_contiguous FROM gateways WHERE tenant = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant.as_str())
    .bind(gateway.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(watermark) = watermark else {
        return Ok(());
    };
    sqlx::query(&format!(
        "INSERT INTO gaps (tenant, gateway, first_seq, last_seq, batches, readings, reason, \
         reported_at) VALUES ($1, $2, $3, $3, 1, 0, $4, {}) ON CONFLICT DO NOTHING",
        ts("$5")
    ))
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
    conn: &mut PgConnection,
    tenant: &TenantId,
    gateway: &GatewayId,
    from: u64,
    gap_max: u64,
) -> Result<()> {
    let (contiguous, _) = walk_gateway(conn, tenant, gateway, from).await?;
    sqlx::query(
        "UPDATE gateways SET gap_max = GREATEST(gap_max, $1), \
         ack_contiguous = GREATEST(ack_contiguous, $2) WHERE tenant = $3 AND id = $4",
    )
    .bind(seq_to_db(gap_max)?)
    .bind(seq_to_db(contiguous)?)
    .bind(tenant.as_str())
    .bind(gateway.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A gateway's seqs and gaps in a PostgreSQL connection.
struct Seqs<'a> {
    conn: &'a mut PgConnection,
    tenant: &'a TenantId,
    gateway: &'a GatewayId,
}

impl SeqSource for Seqs<'_> {
    async fn gaps_above(&mut self, from: u64) -> Result<Vec<GapRange>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT first_seq, last_seq FROM gaps \
             WHERE tenant = $1 AND gateway = $2 AND last_seq > $3",
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
            "SELECT seq FROM batches WHERE tenant = $1 AND gateway = $2 AND seq > $3 \
             ORDER BY seq LIMIT $4",
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
    conn: &mut PgConnection,
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
