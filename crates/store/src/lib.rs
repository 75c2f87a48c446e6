//! Beffroi storage: one [`Store`] trait, three backends passing one conformance suite.
//!
//! - **SQLite** (embedded default): one file under the data directory; times as integer
//!   microseconds; buckets by integer arithmetic.
//! - **PostgreSQL with TimescaleDB**: readings in a hypertable with a compression policy,
//!   continuous aggregates at 1 min / 1 h / 1 day that bucket and governed cell queries read
//!   (see `postgres::rollup`), and a retention policy.
//! - **Plain PostgreSQL** when the `timescaledb` extension is absent: the same results with
//!   `date_bin`, and a warning at start.
//!
//! The registry (tenants, gateways with their certificate fingerprints, revocation times and
//! every signing key they ever had, current or retired, one-time enrollment tokens kept only
//! as hashes — see `identity` —, sensors with kind, unit, location and zone, every move of a
//! sensor — see `placement` —, zones as GeoJSON polygons), quarantine, security events, API tokens and the audit log (per-tenant hash
//! chains and their signed checkpoints, computed by `beffroi_audit`) and the retention
//! policies per tenant and metric class (purged with receipts in the audit log, see
//! `retention`) live in the same database. A batch's
//! signature is stored once, in the `batches` table, never per reading. The pseudonym keys of
//! sharing agreements are stored only sealed under the key-encryption key the store is opened
//! with ([`OpenOptions::kek`], see `sealing`). Migrations are embedded with `sqlx::migrate!`.
//!
//! Every query is scoped by tenant: a caller cannot express a read across tenants.
//! This crate owns SQL and nothing else: no HTTP, no MQTT, no policy decisions.
//!
//! Open a store with [`open`]: `sqlite://path/to/beffroi.db?mode=rwc`, `sqlite::memory:` or
//! `postgres://user@host/db`. The module docs of `sqlite` and `postgres` state the schema and
//! the durability choices.

mod alarms;
mod audit;
mod decode;
mod forward;
mod gateway_state;
mod governance;
mod identity;
mod model;
mod on_conflict;
mod open;
mod outcome;
mod paging;
mod placement;
mod postgres;
mod restore;
mod retention;
mod rows;
mod sealing;
mod seq;
mod series;
mod sqlite;

use beffroi_audit::{AuditEntry, AuditHead, Checkpoint, NewAuditEntry};
use beffroi_policy::{Agreement, AgreementId, Grantee, PartnerId, PseudonymKey};
use beffroi_protocol::{GatewayId, Health, KeyId, MetricName, TenantId, Timestamp};

pub use alarms::*;
pub use audit::AuditFilter;
pub use governance::{AgreementRecord, CellQuery, CellRow, CellUnit, Partner};
pub use model::*;
pub use open::{open, OpenOptions, TimescaleMode};
pub use placement::Placement;
pub use postgres::PostgresStore;
pub use restore::{BatchKey, RestoredAgreement, RestoredGateway, TenantRestore};
pub use retention::{
    governing_class, governing_policy, specificity, PurgeKind, PurgeReceipt, PurgeRequest,
    RetentionPolicy, MAX_RETENTION_DAYS, PURGE_BATCH_ROWS,
};
pub use sealing::KeyEncryptionKey;
pub use sqlite::SqliteStore;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database refused or failed a statement.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The thing to create already exists.
    #[error("{what} {id} already exists")]
    AlreadyExists {
        /// What kind of thing.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The thing referred to does not exist (in this tenant).
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// A stored row does not decode into a valid value (corruption or a foreign writer).
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The database URL names no supported backend.
    #[error("unsupported database URL {0:?}: use sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    /// An argument the store cannot represent (a seq above `i64::MAX`, a non-finite number,
    /// a time out of the database's range, a bucket width ≤ 0, a bad schema name…).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The change conflicts with the record's current state (e.g. acknowledging a cleared
    /// alarm).
    #[error("{what} {id}: {reason}")]
    Conflict {
        /// What kind of thing.
        what: &'static str,
        /// Its id.
        id: String,
        /// Why the change cannot be made.
        reason: String,
    },
    /// The operation is not available on this store (e.g. TimescaleDB required but absent, or
    /// a pseudonym key written or read by a store opened without a key-encryption key).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A pseudonym key is sealed under another key-encryption key than the one this store
    /// was opened with (see `sealing`): the store does not compute pseudonyms it cannot
    /// reproduce.
    #[error(
        "the pseudonym key of agreement {agreement} (epoch {epoch}) is sealed under \
         key-encryption key {sealed_with}, but this store was opened with key-encryption key \
         {opened_with}: every platform node on one database needs the same KEK file"
    )]
    WrongKek {
        /// The agreement, `grantor/id`.
        agreement: String,
        /// The key's epoch.
        epoch: u32,
        /// The id of the KEK that sealed it.
        sealed_with: String,
        /// The id of the store's KEK.
        opened_with: String,
    },
    /// The system's random number generator failed.
    #[error("random number generator: {0}")]
    Random(String),
}

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL without TimescaleDB.
    Postgres,
    /// PostgreSQL with the TimescaleDB extension.
    Timescale,
}

impl Backend {
    /// The stable label (`sqlite`, `postgres`, `timescale`) for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Timescale => "timescale",
        }
    }
}

/// The storage interface used by ingest, the API and the admin commands.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    // ---- registry ----

    /// Creates a tenant.
    async fn create_tenant(&self, id: &TenantId, name: &str) -> Result<Tenant>;
    /// All tenants.
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    /// One tenant.
    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>>;
    /// Registers a gateway by hand, with its key as current key (its tenant must exist; its key
    /// id must be unused).
    async fn register_gateway(&self, gateway: &NewGateway) -> Result<()>;
    /// Sets the fingerprint and expiry of a newly issued certificate.
    async fn set_gateway_certificate(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        fingerprint: &str,
        not_after: Timestamp,
    ) -> Result<()>;
    /// Marks a gateway revoked at `at` (its certificates are refused from now on, and what
    /// its keys sign from `at` on). A second revocation keeps the first time.
    async fn revoke_gateway(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        at: Timestamp,
    ) -> Result<()>;
    /// Revoked gateways, with the fingerprint of their last issued certificate (checked at
    /// every TLS handshake: the gate refuses the gateway whatever certificate it presents).
    async fn revoked_gateways(&self) -> Result<Vec<RevokedGateway>>;
    /// A tenant's gateways with their state.
    async fn list_gateways(&self, tenant: &TenantId) -> Result<Vec<GatewayRecord>>;
    /// One gateway.
    async fn gateway(&self, tenant: &TenantId, id: &GatewayId) -> Result<Option<GatewayRecord>>;
    /// The key registered under `key_id`, whichever gateway owns it, current or retired
    /// (with its `retired_at`), with its gateway's `revoked_at`.
    async fn gateway_key(&self, key_id: &KeyId) -> Result<Option<GatewayKey>>;
    /// Stores a new enrollment token. The tenant must exist ([`Error::NotFound`]); refused
    /// with [`Error::Conflict`] if the gateway exists and is revoked, [`Error::AlreadyExists`]
    /// if a token has its hash.
    async fn create_enrollment_token(&self, token: &EnrollmentToken) -> Result<()>;
    /// Redeems a token atomically: at most one caller ever gets `Bound` for a token (two racing
    /// redeems: one wins). `now` decides expiry. Marks it used only when it returns `Bound`.
    async fn redeem_enrollment_token(&self, token_hash: &str, now: Timestamp) -> Result<Redeemed>;
    /// A tenant's unused, unexpired tokens at `now`, by gateway then creation.
    async fn pending_enrollments(
        &self,
        tenant: &TenantId,
        now: Timestamp,
    ) -> Result<Vec<EnrollmentToken>>;
    /// Enrolls a gateway with a new current signing key at `at`: creates the gateway row if it
    /// does not exist, otherwise (re-enrollment) retires its current keys at `at`; registers the
    /// key; records the certificate fingerprint/expiry. Refused if the gateway is revoked
    /// ([`Error::Conflict`]) or the key id is already registered anywhere
    /// ([`Error::AlreadyExists`]); [`Error::NotFound`] if the tenant does not exist. One
    /// transaction.
    async fn enroll_gateway(&self, gateway: &NewGateway, at: Timestamp) -> Result<()>;
    /// Rotation: registers `key_id`/`public_key` as the gateway's current key and retires the
    /// previous current key at `at`. One transaction. Refused if revoked ([`Error::Conflict`])
    /// or the key id is taken ([`Error::AlreadyExists`]); [`Error::NotFound`] if there is no
    /// such gateway.
    async fn rotate_gateway_key(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        key_id: &KeyId,
        public_key: &[u8; 32],
        at: Timestamp,
    ) -> Result<()>;
    /// Creates or replaces sensors, in one transaction (a registry import).
    async fn upsert_sensors(&self, sensors: &[Sensor]) -> Result<()>;
    /// Creates or replaces a sensor.
    async fn upsert_sensor(&self, sensor: &Sensor) -> Result<()> {
        self.upsert_sensors(std::slice::from_ref(sensor)).await
    }
    /// A tenant's sensors.
    async fn list_sensors(&self, tenant: &TenantId) -> Result<Vec<Sensor>>;
    /// Every placement of `tenant`'s sensors, by sensor then time.
    async fn sensor_placements(&self, tenant: &TenantId) -> Result<Vec<Placement>>;
    /// Creates or replaces a zone.
    async fn upsert_zone(&self, zone: &Zone) -> Result<()>;
    /// A tenant's zones.
    async fn list_zones(&self, tenant: &TenantId) -> Result<Vec<Zone>>;

    // ---- ingest ----

    /// Commits verified batches in one transaction. A batch whose `(tenant, gateway, seq)` is
    /// already stored is not written again and reported [`CommitOutcome::Duplicate`]. Sensors
    /// seen for the first time are registered with kind `unknown`. Outcomes are in input order.
    async fn commit(&self, batches: &[CommitBatch]) -> Result<Vec<CommitOutcome>>;
    /// The signature stored for `(tenant, gateway, seq)`, to tell a re-sent batch from a replay
    /// of a different one under the same seq.
    async fn batch_signature(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        seq: u64,
    ) -> Result<Option<[u8; 64]>>;
    /// What to acknowledge to a gateway: from its committed batches, reported gaps and seqs
    /// settled by quarantine records ([`QuarantineRecord::settles_seq`]).
    async fn seq_state(&self, tenant: &TenantId, gateway: &GatewayId) -> Result<SeqState>;
    /// Records a health report: gateway state (last seen, spool, gaps, version).
    async fn record_health(&self, health: &Health, received_at: Timestamp) -> Result<()>;
    /// Keeps a rejected message. When [`QuarantineRecord::settles_seq`] is set, the same
    /// transaction records the seq as settled (a one-seq range in the `gaps` table, reason
    /// `quarantine-{reason}`) and moves the gateway's ack watermark over it, as
    /// [`Store::record_health`] does for reported gaps; [`Error::Invalid`] if the record has
    /// no tenant, gateway or seq.
    async fn quarantine(&self, record: &QuarantineRecord) -> Result<()>;
    /// Records a security event.
    async fn security_event(&self, event: &SecurityEvent) -> Result<()>;

    // ---- queries ----

    /// Raw readings, oldest first, at most `limit` after `after` (a `limit` of 0 reads 1).
    async fn readings(
        &self,
        filter: &ReadingFilter,
        limit: u32,
        after: Option<ReadingCursor>,
    ) -> Result<ReadingPage>;
    /// Numeric readings aggregated into buckets of `bucket_us` microseconds, aligned on the
    /// Unix epoch, per sensor and metric, ordered by bucket start, sensor, metric.
    async fn buckets(&self, filter: &ReadingFilter, bucket_us: i64) -> Result<Vec<Bucket>>;
    /// A tenant's quarantined messages, newest first.
    async fn list_quarantine(
        &self,
        tenant: &TenantId,
        limit: u32,
        offset: u64,
    ) -> Result<Page<QuarantineRecord>>;
    /// A tenant's security events, or those of no tenant ([`EventScope::Platform`]), newest
    /// first.
    async fn list_security_events(
        &self,
        scope: &EventScope,
        limit: u32,
        offset: u64,
    ) -> Result<Page<SecurityEvent>>;
    /// The latest reading of each of a tenant's series measured at or after `since` (seeds
    /// live views after a restart), in no particular order.
    async fn latest_readings(
        &self,
        tenant: &TenantId,
        since: Timestamp,
    ) -> Result<Vec<StoredReading>>;

    // ---- alarm rules and alarms ----

    /// Creates a rule; [`Error::AlreadyExists`] if its id is taken in its tenant,
    /// [`Error::NotFound`] if the tenant does not exist.
    async fn create_alarm_rule(&self, rule: &AlarmRule) -> Result<()>;
    /// Replaces a rule (keeping its `created_at`); [`Error::NotFound`] if there is none.
    async fn update_alarm_rule(&self, rule: &AlarmRule) -> Result<()>;
    /// Deletes a rule; its alarms are kept. [`Error::NotFound`] if there is none.
    async fn delete_alarm_rule(&self, tenant: &TenantId, id: &RuleId) -> Result<()>;
    /// One rule.
    async fn alarm_rule(&self, tenant: &TenantId, id: &RuleId) -> Result<Option<AlarmRule>>;
    /// A tenant's rules, by id.
    async fn list_alarm_rules(&self, tenant: &TenantId) -> Result<Vec<AlarmRule>>;
    /// Every tenant's rules (the alert engine), by tenant and id.
    async fn all_alarm_rules(&self) -> Result<Vec<AlarmRule>>;
    /// Raises an alarm: opens one, or, when one is already active for the same
    /// `(tenant, rule, subject)`, counts an occurrence on it (`last_at`, `value`, `message`
    /// updated). Atomic, so two nodes raising the same alarm open it once.
    async fn raise_alarm(&self, alarm: &NewAlarm) -> Result<Raised>;
    /// Clears the active alarm of `(tenant, rule, subject)` automatically (its condition
    /// ended), if there is one; returns it cleared.
    async fn resolve_alarm(
        &self,
        tenant: &TenantId,
        rule: &RuleId,
        subject: &AlarmSubject,
        at: Timestamp,
    ) -> Result<Option<Alarm>>;
    /// Acknowledges an open alarm. [`Error::NotFound`] if the tenant has no such alarm,
    /// [`Error::Conflict`] unless it is open.
    async fn acknowledge_alarm(
        &self,
        tenant: &TenantId,
        id: i64,
        action: &AlarmAction,
    ) -> Result<Alarm>;
    /// Clears an active alarm by hand. [`Error::NotFound`] if the tenant has no such alarm,
    /// [`Error::Conflict`] if it is already cleared.
    async fn clear_alarm(&self, tenant: &TenantId, id: i64, action: &AlarmAction) -> Result<Alarm>;
    /// One alarm.
    async fn alarm(&self, tenant: &TenantId, id: i64) -> Result<Option<Alarm>>;
    /// A tenant's alarms, newest opened first.
    async fn list_alarms(
        &self,
        tenant: &TenantId,
        filter: &AlarmFilter,
        limit: u32,
        offset: u64,
    ) -> Result<Page<Alarm>>;
    /// Every tenant's active (open or acknowledged) alarms: what the alert engine resumes
    /// from after a restart.
    async fn active_alarms(&self) -> Result<Vec<Alarm>>;

    // ---- tokens ----

    /// Stores a token (its secret only as a hash).
    async fn create_token(&self, token: &TokenRecord) -> Result<()>;
    /// The token (tenant or platform) whose secret hashes to `secret_sha256`.
    async fn token_by_hash(&self, secret_sha256: &[u8; 32]) -> Result<Option<TokenRecord>>;

    // ---- audit log ----

    /// Appends entries to their tenants' audit chains (see `beffroi_audit`) in one
    /// transaction: in input order, each entry gets its tenant's next seq and is linked to the
    /// stored head. Returns them as stored, in input order, only once committed: the platform
    /// calls this before data leaves and fails the read if it fails. Appends to one tenant
    /// serialize across connections and platform nodes. [`Error::NotFound`] if a tenant does
    /// not exist (nothing is written then).
    async fn append_audit(&self, entries: &[NewAuditEntry]) -> Result<Vec<AuditEntry>>;
    /// A tenant's audit entries matching `filter`, by seq: at most `limit` (a `limit` of 0
    /// reads 1) with a seq above `after_seq`. The next page starts after the last entry's
    /// seq; a page shorter than `limit` is the last. [`Error::Corrupt`] (naming the seq) for a
    /// row that no longer decodes.
    async fn audit_entries(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>>;
    /// The head of a tenant's audit chain; `None` before its first entry.
    async fn audit_head(&self, tenant: &TenantId) -> Result<Option<AuditHead>>;
    /// Stores a signed checkpoint (its signature is not checked here). `false` when the tenant
    /// already has one at that seq, which is kept: several nodes may checkpoint the same head.
    /// [`Error::NotFound`] if the tenant does not exist.
    async fn store_checkpoint(&self, checkpoint: &Checkpoint) -> Result<bool>;
    /// A tenant's checkpoints, by seq.
    async fn audit_checkpoints(&self, tenant: &TenantId) -> Result<Vec<Checkpoint>>;
    /// The tenants whose audit chain has entries, by id (for the periodic checkpointer).
    async fn audit_tenants(&self) -> Result<Vec<TenantId>>;

    // ---- governance ----
    //
    // Sharing agreements, their pseudonym keys, partners, and the governed aggregate query.
    // The store validates and persists; `beffroi_policy::decide` decides. See `governance`.

    /// Creates a partner; [`Error::AlreadyExists`] if its id is taken.
    async fn create_partner(&self, partner: &Partner) -> Result<()>;
    /// Every partner, by id.
    async fn list_partners(&self) -> Result<Vec<Partner>>;
    /// One partner.
    async fn partner(&self, id: &PartnerId) -> Result<Option<Partner>>;
    /// Stores a new agreement at version 1 (whatever its `version` says), with its first
    /// pseudonym key when given (epoch 1, sealed under the store's key-encryption key), in
    /// one transaction. [`Error::Invalid`] if it does not pass `Agreement::validate`,
    /// [`Error::AlreadyExists`] if its grantor already has one with its id,
    /// [`Error::NotFound`] if the grantor does not exist, [`Error::Unsupported`] for a key
    /// when the store has no KEK.
    async fn create_agreement(
        &self,
        agreement: &Agreement,
        key: Option<&[u8; 32]>,
        at: Timestamp,
    ) -> Result<AgreementRecord>;
    /// Replaces an agreement (terms or state) if it is still at `expected_version`; it is
    /// stored at `expected_version + 1`, whatever its `version` says. [`Error::Conflict`] if
    /// it is at another version, [`Error::NotFound`] if there is none, [`Error::Invalid`] if
    /// it does not validate (not checked when its state is `revoked`).
    async fn update_agreement(
        &self,
        agreement: &Agreement,
        expected_version: u32,
        at: Timestamp,
    ) -> Result<AgreementRecord>;
    /// One agreement of a grantor.
    async fn agreement(
        &self,
        grantor: &TenantId,
        id: &AgreementId,
    ) -> Result<Option<AgreementRecord>>;
    /// A grantor's agreements, by id.
    async fn list_agreements(&self, grantor: &TenantId) -> Result<Vec<AgreementRecord>>;
    /// The agreements whose grantee is `grantee` or `public`, of every grantor, by grantor
    /// and id.
    async fn agreements_for(&self, grantee: &Grantee) -> Result<Vec<AgreementRecord>>;
    /// Every agreement of every grantor (what `beffroi_policy::decide` takes), by grantor
    /// and id.
    async fn all_agreements(&self) -> Result<Vec<Agreement>>;
    /// Makes `key` the agreement's current pseudonym key at the next epoch (1 for its first
    /// key), sealed under the store's key-encryption key, and retires the previous one, in
    /// one transaction; returns the new epoch. [`Error::NotFound`] if the agreement does not
    /// exist, [`Error::Unsupported`] if the store has no KEK ([`OpenOptions::kek`]).
    async fn rotate_pseudonym_key(
        &self,
        grantor: &TenantId,
        id: &AgreementId,
        key: &[u8; 32],
        at: Timestamp,
    ) -> Result<u32>;
    /// The agreement's current pseudonym key, if it has one, opened under the store's
    /// key-encryption key: [`Error::WrongKek`] if it was sealed under another one,
    /// [`Error::Corrupt`] if its row was altered or copied from another row,
    /// [`Error::Unsupported`] if the store has no KEK ([`OpenOptions::kek`]).
    async fn pseudonym_key(
        &self,
        grantor: &TenantId,
        id: &AgreementId,
    ) -> Result<Option<PseudonymKey>>;
    /// The metrics a tenant has readings of (from its series dictionary), by name.
    async fn series_metrics(&self, tenant: &TenantId) -> Result<Vec<MetricName>>;
    /// Numeric readings grouped by (bucket, metric, unit) in the database, with the distinct
    /// sensors, count, sum, min and max of each cell, ordered by bucket, metric, unit.
    async fn governed_cells(&self, query: &CellQuery) -> Result<Vec<CellRow>>;

    // ---- retention ----
    //
    // Per tenant and metric class, for raw readings and stored aggregates; purges append
    // their receipts to the audit log in the same transaction. See `retention`.

    /// Creates or replaces the tenant's policy for its class. [`Error::Invalid`] if a
    /// duration is out of range, [`Error::NotFound`] if the tenant does not exist.
    async fn set_retention_policy(&self, policy: &RetentionPolicy) -> Result<()>;
    /// A tenant's policies, by class text.
    async fn retention_policies(&self, tenant: &TenantId) -> Result<Vec<RetentionPolicy>>;
    /// Deletes the tenant's policy for `class`; [`Error::NotFound`] if there is none.
    async fn delete_retention_policy(
        &self,
        tenant: &TenantId,
        class: &beffroi_policy::MetricPattern,
    ) -> Result<()>;
    /// Deletes the tenant's rows of the request's kind older than its bound, for the metrics
    /// its class governs (the class minus the tenant's more specific classes), in batches of
    /// at most `batch_rows` rows, each in its own transaction with an `AuditKind::Purge`
    /// entry appended to the tenant's chain. Returns the sum of the batches. A backend that
    /// stores no aggregates deletes nothing for [`PurgeKind::Aggregate`] and says why in
    /// [`PurgeReceipt::note`]. [`Error::NotFound`] if the tenant does not exist.
    async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReceipt>;

    // ---- reversibility ----
    //
    // `beffroi export` walks a tenant's batches and `beffroi import` restores it into an
    // instance that does not have it. See `restore`.

    /// Creates a tenant with its gateways (their signing keys, current and retired, and
    /// revocation times), sensors, zones, alarm rules, agreements (at their versions, with the
    /// given fresh pseudonym keys) and retention policies exactly as exported (creation times
    /// included), in one transaction. [`Error::AlreadyExists`] if the tenant or a key id of
    /// its gateways exists; [`Error::Invalid`] for a record of another tenant, an invalid
    /// rule, agreement or policy, a gateway whose keys do not hold exactly one current key
    /// (its `key_id`) or with a revocation time but not revoked (nothing is written then).
    async fn restore_tenant(&self, restore: &TenantRestore) -> Result<()>;
    /// Appends exported entries verbatim (seq, time, hashes) to a tenant's chain, in one
    /// transaction, and returns the new head. The first must follow the stored head, each the
    /// one before, and each hash must be the one its content gives: [`Error::Conflict`]
    /// otherwise (nothing written). [`Error::NotFound`] if the tenant does not exist.
    async fn import_audit(&self, tenant: &TenantId, entries: &[AuditEntry]) -> Result<AuditHead>;
    /// The keys of a tenant's committed batches, by gateway then seq: at most `limit` (a
    /// `limit` of 0 reads 1) after `after`.
    async fn batch_keys(
        &self,
        tenant: &TenantId,
        after: Option<&BatchKey>,
        limit: u32,
    ) -> Result<Vec<BatchKey>>;
    /// How many readings a tenant has stored.
    async fn reading_count(&self, tenant: &TenantId) -> Result<u64>;

    // ---- maintenance ----

    /// Applies retention now: deletes raw readings older than `older_than` (Timescale:
    /// `drop_chunks`); returns rows (or chunks) removed. Instance-wide and not receipted in
    /// any audit log: the platform purges with [`Store::purge`], per tenant.
    async fn apply_retention(&self, older_than: Timestamp) -> Result<u64>;
    /// Refreshes continuous aggregates over `[from, to)` (Timescale only; a no-op elsewhere).
    async fn refresh_aggregates(&self, from: Timestamp, to: Timestamp) -> Result<()>;

    // ---- additions (default bodies only so that test doubles keep compiling) ----

    /// One committed batch with its readings in batch order (`idx`), so that it can be
    /// re-encoded deterministically and its stored signature verified again (audit, export).
    async fn batch(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        seq: u64,
    ) -> Result<Option<StoredBatch>> {
        let _ = (tenant, gateway, seq);
        Err(Error::Unsupported("batch lookup".into()))
    }

    /// Benchmark baseline: bulk-loads the batches' readings into the same readings table by
    /// the same path as [`Store::commit`] (PostgreSQL: binary `COPY`; SQLite: multi-row
    /// `INSERT`), in one transaction, **without** any bookkeeping: no `batches` rows, no
    /// duplicate check, no sensor registration, no gateway state. Returns rows written. Not
    /// for production use: rows loaded this way have no batch and no signature.
    async fn bulk_load_baseline(&self, batches: &[CommitBatch]) -> Result<u64> {
        let _ = batches;
        Err(Error::Unsupported("bulk load baseline".into()))
    }

    // ---- cluster ----

    /// Takes or renews the lease `name` for `holder` until `until`: granted when nobody holds
    /// it, when `holder` already does, or when its holder let it run out before `now`. True
    /// when `holder` holds it now. Of the nodes of one deployment, the holder alone runs what
    /// the lease guards (the alert engine); nodes' clocks are assumed to agree within a small
    /// fraction of the lease.
    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let _ = (name, holder, now, until);
        Err(Error::Unsupported("leases".into()))
    }

    /// Gives the lease up if `holder` holds it (a node stopping in order), so that another
    /// node takes it over at once.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let _ = (name, holder);
        Err(Error::Unsupported("leases".into()))
    }

    /// Closes the connection pool (SQLite: checkpoints the WAL). Call once, at shutdown, after
    /// the last commit; later calls fail.
    async fn close(&self) {}
}
