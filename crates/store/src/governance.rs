//! Data governance in the store, shared by both backends: the records of partners, sharing
//! agreements and pseudonym keys, the governed cell query, and their row decoders.
//!
//! Tables (`0004_governance.sql`):
//! - `partners` (`id` primary key);
//! - `agreements`, primary key `(grantor, id)`: the current version of each agreement, its
//!   native JSON in `document` (`beffroi_policy::Agreement`), `state` and `grantee` copied
//!   out of it for listings. An update names the version it read (optimistic concurrency):
//!   the row moves to the next version only if it is still at that one;
//! - `pseudonym_keys`, primary key `(grantor, agreement, epoch)`: the HMAC keys of
//!   pseudonymising agreements, the current one without `retired_at`, sealed under the
//!   store's key-encryption key (see `sealing`).
//!
//! The store validates an agreement before writing it (except to revoke it: revoking must
//! always be possible) but decides nothing: access decisions are `beffroi_policy::decide`'s.
//! Key bytes leave the store only inside a [`PseudonymKey`], which never prints them.

use beffroi_policy::{Agreement, AgreementId, Grantee, PartnerId, PseudonymKey, State};
use beffroi_protocol::{MetricName, SensorId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::decode::{bytes32, corrupt, id, is_unique_violation, unsigned};
use crate::outcome::tenant_referenced;
use crate::rows::Columns;
use crate::sealing::{open_key, seal, wrong_kek, KeyRow, Sealed, StoredKey};
use crate::{Error, KeyEncryptionKey, Result};

/// A partner: an organisation that is not a tenant of this platform and may be granted data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    /// Its id.
    pub id: PartnerId,
    /// Display name ("Laboratoire Air Rhône").
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A stored agreement at its current version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgreementRecord {
    /// The agreement (its `version` is the stored one).
    pub agreement: Agreement,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// The spatial unit cells are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellUnit {
    /// One cell per sensor.
    Sensor,
    /// One cell per zone of the sensors (sensors without a zone are left out).
    Zone,
}

/// A governed aggregate query: per fine bucket, metric and unit, the statistics the
/// small-cell suppression needs, computed by the database.
#[derive(Debug, Clone, PartialEq)]
pub struct CellQuery {
    /// The grantor whose readings are aggregated.
    pub tenant: TenantId,
    /// Only these metrics (an empty list selects nothing).
    pub metrics: Vec<MetricName>,
    /// `None`: every sensor of the tenant; `Some`: only these (an empty list selects
    /// nothing).
    pub sensors: Option<Vec<SensorId>>,
    /// From this time, inclusive.
    pub from: Timestamp,
    /// To this time, exclusive.
    pub to: Timestamp,
    /// Bucket width in microseconds (> 0).
    pub bucket_us: i64,
    /// Offset of the bucket grid from the Unix epoch, in microseconds (`0..bucket_us`).
    pub offset_us: i64,
    /// Grouping unit.
    pub unit: CellUnit,
}

impl CellQuery {
    /// Whether the query can select nothing (then no SQL runs).
    pub(crate) fn is_empty(&self) -> bool {
        self.metrics.is_empty()
            || self.sensors.as_ref().is_some_and(Vec::is_empty)
            || self.from >= self.to
    }

    /// Refuses a grid the arithmetic cannot use.
    pub(crate) fn check(&self) -> Result<()> {
        if self.bucket_us <= 0 || !(0..self.bucket_us).contains(&self.offset_us) {
            return Err(Error::Invalid {
                what: "cell bucket",
                reason: format!(
                    "width {} µs, offset {} µs: the width must be positive and the offset in \
                     0..width",
                    self.bucket_us, self.offset_us
                ),
            });
        }
        Ok(())
    }
}

/// One cell: the numeric readings of one metric in one bucket and unit.
#[derive(Debug, Clone, PartialEq)]
pub struct CellRow {
    /// Start of the bucket.
    pub bucket: Timestamp,
    /// The metric.
    pub metric: MetricName,
    /// The sensor or zone id.
    pub unit: SensorId,
    /// Distinct sensors with a value in the cell.
    pub sensors: u32,
    /// Number of values.
    pub count: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// Which agreements a backend selects.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AgreementsBy<'a> {
    /// One agreement of a grantor.
    One(&'a TenantId, &'a AgreementId),
    /// A grantor's.
    Grantor(&'a TenantId),
    /// Those concerning a grantee (its own and the public ones).
    Grantee(&'a Grantee),
    /// Every one.
    All,
}

/// An agreement ready to be written: its JSON document and the columns copied out of it.
pub(crate) struct AgreementColumns {
    /// The agreement as stored (at its new version).
    pub(crate) stored: Agreement,
    pub(crate) version: i64,
    pub(crate) state: &'static str,
    pub(crate) grantee: String,
    pub(crate) document: String,
}

/// Checks `agreement` and renders it at `version` for writing. Revoking is always allowed;
/// any other write must be a valid agreement.
pub(crate) fn agreement_columns(agreement: &Agreement, version: u32) -> Result<AgreementColumns> {
    if agreement.state != State::Revoked {
        agreement.validate().map_err(|e| Error::Invalid {
            what: "agreement",
            reason: e.to_string(),
        })?;
    }
    let mut stored = agreement.clone();
    stored.version = version;
    let document = serde_json::to_string(&stored).map_err(|e| Error::Invalid {
        what: "agreement",
        reason: e.to_string(),
    })?;
    Ok(AgreementColumns {
        stored,
        version: i64::from(version),
        state: agreement.state.as_str(),
        grantee: agreement.grantee.to_string(),
        document,
    })
}

/// The version after `expected`, refusing the end of the range.
pub(crate) fn next_version(expected: u32) -> Result<u32> {
    expected.checked_add(1).ok_or_else(|| Error::Invalid {
        what: "agreement version",
        reason: format!("{expected} is the last version"),
    })
}

/// The error of an update that touched no row: the agreement is gone, or at another version.
pub(crate) fn update_refused(
    grantor: &TenantId,
    id: &AgreementId,
    current: Option<i64>,
    expected: u32,
) -> Error {
    match current {
        None => agreement_not_found(grantor, id),
        Some(version) => Error::Conflict {
            what: "agreement",
            id: format!("{grantor}/{id}"),
            reason: format!("it is at version {version}, not {expected}: read it again and retry"),
        },
    }
}

/// The outcome of inserting `agreement`: a taken id is [`Error::AlreadyExists`], an unknown
/// grantor [`Error::NotFound`].
pub(crate) fn agreement_inserted<T>(
    done: Result<T, sqlx::Error>,
    agreement: &Agreement,
) -> Result<()> {
    match done {
        Err(e) if is_unique_violation(&e) => Err(Error::AlreadyExists {
            what: "agreement",
            id: format!("{}/{}", agreement.grantor, agreement.id),
        }),
        done => tenant_referenced(done, &agreement.grantor).map(drop),
    }
}

/// [`Error::NotFound`] for an agreement.
pub(crate) fn agreement_not_found(grantor: &TenantId, id: &AgreementId) -> Error {
    Error::NotFound {
        what: "agreement",
        id: format!("{grantor}/{id}"),
    }
}

/// The `grantee` column values an agreement concerning `grantee` may have: its own, and
/// `public` (which covers everyone).
pub(crate) fn grantee_columns(grantee: &Grantee) -> [String; 2] {
    [grantee.to_string(), Grantee::Public.to_string()]
}

/// `agreements`: `document, created_at, updated_at`.
pub(crate) fn agreement_record_from(r: &impl Columns) -> Result<AgreementRecord> {
    Ok(AgreementRecord {
        agreement: agreement_from(r)?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// `agreements`: `document`.
pub(crate) fn agreement_from(r: &impl Columns) -> Result<Agreement> {
    serde_json::from_str(r.text("document")?)
        .map_err(|e| corrupt("agreements", format!("document: {e}")))
}

/// `partners`: `id, name, created_at`.
pub(crate) fn partner_from(r: &impl Columns) -> Result<Partner> {
    Ok(Partner {
        id: id("partners", r.text("id")?, PartnerId::new)?,
        name: r.text("name")?.to_owned(),
        created_at: r.time("created_at")?,
    })
}

/// The columns [`key_from`] reads.
pub(crate) const KEY_COLUMNS: &str = "epoch, key, kek_id, nonce";

/// `pseudonym_keys`: [`KEY_COLUMNS`], of the agreement `id` of `grantor`, opened under `kek`
/// (see `sealing`).
pub(crate) fn key_from(
    r: &impl Columns,
    kek: Option<&KeyEncryptionKey>,
    grantor: &TenantId,
    id: &AgreementId,
) -> Result<PseudonymKey> {
    let row = KeyRow {
        grantor,
        agreement: id,
        epoch: epoch_from(r)?,
    };
    let key = open_key(kek, &row, stored_key_from(r)?)?;
    Ok(PseudonymKey::new(key, row.epoch))
}

/// The identity of a `pseudonym_keys` row, owned.
pub(crate) struct KeyRowIds {
    grantor: TenantId,
    agreement: AgreementId,
    epoch: u32,
}

impl KeyRowIds {
    /// The row identity a sealed key is bound to.
    pub(crate) fn row(&self) -> KeyRow<'_> {
        KeyRow {
            grantor: &self.grantor,
            agreement: &self.agreement,
            epoch: self.epoch,
        }
    }
}

/// `pseudonym_keys`: `grantor, agreement, epoch`.
pub(crate) fn key_row_from(r: &impl Columns) -> Result<KeyRowIds> {
    Ok(KeyRowIds {
        grantor: id("pseudonym_keys", r.text("grantor")?, TenantId::new)?,
        agreement: id("pseudonym_keys", r.text("agreement")?, AgreementId::new)?,
        epoch: epoch_from(r)?,
    })
}

/// The first of the keys sealed under another KEK than `kek` (`grantor, agreement, epoch,
/// kek_id, n`, `n` counting them), logged as a warning: their agreements' pseudonyms fail
/// ([`Error::WrongKek`]) until this node gets the KEK they were sealed with or their keys are
/// rotated (which seals the new ones under `kek`, the way back from a lost KEK).
pub(crate) fn warn_foreign_keys(r: &impl Columns, kek: &KeyEncryptionKey) -> Result<()> {
    let ids = key_row_from(r)?;
    let error = wrong_kek(&ids.row(), r.text("kek_id")?, kek);
    tracing::warn!(
        keys = r.int("n")?,
        "{error} (the first of the keys sealed under another KEK; keys in clear are left for \
         a store with the database's KEK to seal)"
    );
    Ok(())
}

/// A key still in clear (`grantor, agreement, epoch, key` of a row without `kek_id`), sealed
/// under `kek` for its row.
pub(crate) fn seal_clear_key(
    r: &impl Columns,
    kek: &KeyEncryptionKey,
) -> Result<(KeyRowIds, Sealed)> {
    let ids = key_row_from(r)?;
    let key = bytes32("pseudonym_keys", r.bytes("key")?)?;
    let sealed = seal(Some(kek), &ids.row(), &key)?;
    Ok((ids, sealed))
}

/// `pseudonym_keys`: `epoch`.
pub(crate) fn epoch_from(r: &impl Columns) -> Result<u32> {
    u32::try_from(r.int("epoch")?).map_err(|_| corrupt("pseudonym_keys", "epoch out of range"))
}

/// `pseudonym_keys`: `key, kek_id, nonce`, as the row holds its key.
pub(crate) fn stored_key_from(r: &impl Columns) -> Result<StoredKey<'_>> {
    let key = r.bytes("key")?;
    Ok(match (r.opt_text("kek_id")?, r.opt_bytes("nonce")?) {
        (None, None) => StoredKey::Clear(key),
        (Some(kek_id), Some(nonce)) => StoredKey::Sealed {
            kek_id,
            nonce,
            ciphertext: key,
        },
        _ => return Err(corrupt("pseudonym_keys", "kek_id and nonce go together")),
    })
}

/// The epoch after `current` (1 for the first key).
pub(crate) fn next_epoch(current: Option<i64>) -> Result<u32> {
    let current = u32::try_from(current.unwrap_or(0))
        .map_err(|_| corrupt("pseudonym_keys", "epoch out of range"))?;
    current.checked_add(1).ok_or_else(|| Error::Invalid {
        what: "pseudonym key epoch",
        reason: "no epoch after the last one".into(),
    })
}

/// A metric name column.
pub(crate) fn metric_from(r: &impl Columns) -> Result<MetricName> {
    id("series", r.text("metric")?, MetricName::new)
}

/// A governed cell: `bucket, metric, unit, sensors, n, total, lo, hi`.
pub(crate) fn cell_from(r: &impl Columns) -> Result<CellRow> {
    let sensors = unsigned("readings", r.int("sensors")?)?;
    Ok(CellRow {
        bucket: r.time("bucket")?,
        metric: metric_from(r)?,
        unit: id("sensors", r.text("unit")?, SensorId::new)?,
        sensors: u32::try_from(sensors).unwrap_or(u32::MAX),
        count: unsigned("readings", r.int("n")?)?,
        sum: r.float("total")?,
        min: r.float("lo")?,
        max: r.float("hi")?,
    })
}
