//! The store conformance suite: every case is written once, as `async fn(Arc<dyn Store>)` (or
//! `async fn(Arc<dyn Store>, harness::Database)` for the cases that reach the database beside
//! the store), and runs on SQLite (a temporary file), on PostgreSQL (`TEST_DATABASE_URL`, a
//! fresh schema per test) and on PostgreSQL with TimescaleDB when the server has the extension.
//!
//! Without `TEST_DATABASE_URL` the PostgreSQL runs are skipped with a notice, except when `CI`
//! is set: then they fail, because a missing database in CI is a failure, not a pass.
//!
//! Beside the cases, `migration_files` checks the migration sets themselves (numbering,
//! forward-only, released checksums), without a database.

#[path = "conformance/alarms.rs"]
mod alarms;
#[path = "conformance/audit.rs"]
mod audit;
#[path = "conformance/retention.rs"]
mod class_retention;
#[path = "conformance/fixtures.rs"]
mod fixtures;
#[path = "conformance/governance.rs"]
mod governance;
#[path = "conformance/harness.rs"]
mod harness;
#[path = "conformance/identity.rs"]
mod identity;
#[path = "conformance/ingest.rs"]
mod ingest;
#[path = "conformance/leases.rs"]
mod leases;
#[path = "conformance/migration_files.rs"]
mod migration_files;
#[path = "conformance/pushdown.rs"]
mod pushdown;
#[path = "conformance/query.rs"]
mod query;
#[path = "conformance/records.rs"]
mod records;
#[path = "conformance/registry.rs"]
mod registry;
#[path = "conformance/restore.rs"]
mod restore;
#[path = "conformance/sealing.rs"]
mod sealing;
#[path = "conformance/timescale.rs"]
mod timescale;
#[path = "conformance/upgrade.rs"]
mod upgrade;

/// Declares, for each case, one test per backend. Cases listed after `with_sql:` also get the
/// store's [`harness::Database`] (raw SQL, other nodes); cases listed after `unopened:` get
/// only the database, before any store opened it.
macro_rules! conformance {
    (@tests $runner:ident; $($case:ident => $body:path),* $(,)?) => {$(
        mod $case {
            use crate::harness::{self, Kind};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                harness::$runner(Kind::Sqlite, $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                harness::$runner(Kind::Postgres, $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn timescale() {
                harness::$runner(Kind::Timescale, $body).await;
            }
        }
    )*};
    (with_sql: $($cases:tt)*) => {
        conformance!(@tests run_with_sql; $($cases)*);
    };
    (unopened: $($cases:tt)*) => {
        conformance!(@tests run_unopened; $($cases)*);
    };
    ($($cases:tt)*) => {
        conformance!(@tests run; $($cases)*);
    };
}

conformance! {
    registry_round_trips => crate::registry::round_trips,
    registry_errors => crate::registry::errors,
    registry_sensor_moves => crate::registry::sensor_moves,
    gateway_certificate_and_rejections => crate::registry::gateway_certificate_and_rejections,
    tenant_isolation => crate::query::tenant_isolation,
    commit_and_duplicates => crate::ingest::commit_and_duplicates,
    signature_stored_once => crate::ingest::signature_stored_once,
    seq_state_holes_and_gaps => crate::ingest::seq_state_holes_and_gaps,
    seq_state_beyond_one_chunk => crate::ingest::seq_state_beyond_one_chunk,
    quarantine_settles_seq => crate::ingest::quarantine_settles_seq,
    concurrent_commits => crate::ingest::concurrent_commits,
    health_recording => crate::ingest::health_recording,
    invalid_input_writes_nothing => crate::ingest::invalid_input_writes_nothing,
    bulk_load_baseline => crate::ingest::bulk_load_baseline,
    raw_pagination => crate::query::raw_pagination,
    reading_filters => crate::query::reading_filters,
    raw_pages_by_filter => crate::query::raw_pages_by_filter,
    bucket_aggregates => crate::query::bucket_aggregates,
    retention => crate::query::retention,
    latest_readings => crate::query::latest_readings,
    quarantine_newest_first => crate::records::quarantine_newest_first,
    security_events_newest_first => crate::records::security_events_newest_first,
    tokens_by_hash => crate::records::tokens_by_hash,
    platform_tokens => crate::records::platform_tokens,
    alarm_rules_crud => crate::alarms::rules_crud,
    lease_one_holder_at_a_time => crate::leases::one_holder_at_a_time,
    lease_racing_nodes_get_one => crate::leases::racing_nodes_get_one_lease,
    alarm_raise_counts_occurrences => crate::alarms::raise_counts_occurrences,
    alarm_acknowledge_and_clear => crate::alarms::acknowledge_and_clear,
    alarm_tenant_isolation => crate::alarms::alarm_tenant_isolation,
    alarm_listings => crate::alarms::alarm_listings,
    alarm_concurrent_raises_open_once => crate::alarms::concurrent_raises_open_once,
}

conformance! {
    audit_appends_chain_and_verify => crate::audit::appends_chain_and_verify,
    audit_listing_filters => crate::audit::listing_filters,
    audit_unknown_tenant_writes_nothing => crate::audit::unknown_tenant_writes_nothing,
    audit_tenants_are_isolated => crate::audit::tenants_are_isolated,
}

conformance! {
    enrollment_tokens_redeem_once => crate::identity::tokens_redeem_once,
    enrollment_racing_redeems_bind_once => crate::identity::racing_redeems_bind_once,
    enrollment_and_reenrollment => crate::identity::enrollment_and_reenrollment,
    gateway_key_rotation => crate::identity::key_rotation,
    gateway_revocation_is_final => crate::identity::revocation_is_final,
}

conformance! {
    unopened:
    gateway_identity_migration_keeps_existing_gateways =>
        crate::identity::migration_keeps_existing_gateways,
}

conformance! {
    unopened:
    upgrade_previous_release_reads_back => crate::upgrade::previous_release_reads_back,
    upgrade_a_changed_migration_is_refused => crate::upgrade::a_changed_migration_is_refused,
    upgrade_a_newer_schema_is_refused => crate::upgrade::a_newer_schema_is_refused,
}

conformance! {
    restored_tenant_reads_back => crate::restore::restored_tenant_reads_back,
    imported_audit_continues_the_chain => crate::restore::imported_audit_continues_the_chain,
    batch_keys_and_reading_count => crate::restore::batch_keys_and_reading_count,
}

conformance! {
    with_sql:
    audit_concurrent_appends_serialize => crate::audit::concurrent_appends_serialize,
    audit_tampering_is_detected => crate::audit::tampering_is_detected,
    audit_a_held_head_fails_the_append_in_bounded_time =>
        crate::audit::a_held_head_fails_the_append_in_bounded_time,
}

conformance! {
    with_sql:
    timescale_objects_are_created_and_not_due => crate::timescale::objects_are_created_and_not_due,
    timescale_continuous_aggregates_match_raw => crate::timescale::continuous_aggregates_match_raw,
    timescale_retention_drops_chunks => crate::timescale::retention_drops_chunks,
    timescale_purge_on_compressed_chunks => crate::timescale::purge_on_compressed_chunks,
    timescale_purges_keep_the_aggregates => crate::timescale::purges_keep_the_aggregates,
    timescale_retention_policy_keeps_the_aggregates => crate::timescale::retention_policy_keeps_the_aggregates,
    timescale_aggregates_come_from_the_continuous_aggregates => crate::pushdown::aggregates_come_from_the_continuous_aggregates,
}

conformance! {
    retention_policies_crud => crate::class_retention::policies_crud,
    retention_purge_deletes_exactly_the_class => crate::class_retention::purge_deletes_exactly_the_class,
    retention_purge_runs_in_batches => crate::class_retention::purge_runs_in_batches,
    retention_aggregate_purge => crate::class_retention::aggregate_purge,
}

conformance! {
    governance_agreements_crud => crate::governance::agreements_crud,
    governance_pseudonym_keys_rotate => crate::governance::pseudonym_keys_rotate,
    governance_partners_and_partner_tokens => crate::governance::partners_and_partner_tokens,
    governance_sensor_tags_round_trip => crate::governance::sensor_tags_round_trip,
    governance_cells_match_brute_force => crate::governance::cells_match_brute_force,
}

conformance! {
    with_sql:
    sealing_keys_are_sealed_at_rest => crate::sealing::keys_are_sealed_at_rest,
    sealing_a_wrong_kek_is_refused => crate::sealing::a_wrong_kek_is_refused,
}

conformance! {
    unopened:
    sealing_clear_keys_are_sealed_at_open => crate::sealing::clear_keys_are_sealed_at_open,
}
