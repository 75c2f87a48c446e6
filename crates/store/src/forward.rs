//! The `impl Store` of both SQL backends, written once.
//!
//! Each backend does the work in inherent methods of the same names and signatures
//! (`insert_*`, `select_*`, `write_*`… in its `registry`, `records`, `ingest`, `query`,
//! `alarm_rules`, `alarms`, `audit`, `governance` and `restore` modules), plus `backend_kind`
//! and `refresh`;
//! [`forward_store!`] maps the [`crate::Store`] methods onto them. One `#[async_trait]` impl
//! must be a single block, so this cannot be split over the backends' modules.

/// Implements [`crate::Store`] for `$store` by forwarding to its inherent methods.
macro_rules! forward_store {
    ($store:ty) => {
        const _: () = {
            use beffroi_audit::{AuditEntry, AuditHead, Checkpoint, NewAuditEntry};
            use beffroi_protocol::{GatewayId, Health, KeyId, TenantId, Timestamp};

            use beffroi_policy::{Agreement, AgreementId, Grantee, PartnerId, PseudonymKey};
            use beffroi_protocol::MetricName;
            use $crate::governance::AgreementsBy;
            use $crate::outcome::AlarmChange;
            use $crate::{AgreementRecord, CellQuery, CellRow, Partner};
            use $crate::{
                Alarm, AlarmAction, AlarmFilter, AlarmRule, AlarmSubject, AuditFilter, Backend,
                Bucket, CommitBatch, CommitOutcome, EnrollmentToken, EventScope, GatewayKey,
                GatewayRecord, NewAlarm, NewGateway, Page, QuarantineRecord, Raised, ReadingCursor,
                ReadingFilter, ReadingPage, Redeemed, Result, RevokedGateway, RuleId,
                SecurityEvent, Sensor, SeqState, Store, StoredBatch, StoredReading, Tenant,
                TokenRecord, Zone,
            };
            use $crate::{PurgeReceipt, PurgeRequest, RetentionPolicy};

            #[async_trait::async_trait]
            impl Store for $store {
                fn backend(&self) -> Backend {
                    self.backend_kind()
                }

                async fn create_tenant(&self, id: &TenantId, name: &str) -> Result<Tenant> {
                    self.insert_tenant(id, name).await
                }
                async fn list_tenants(&self) -> Result<Vec<Tenant>> {
                    self.select_tenants(None).await
                }
                async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
                    Ok(self.select_tenants(Some(id)).await?.pop())
                }
                async fn register_gateway(&self, gateway: &NewGateway) -> Result<()> {
                    self.insert_gateway(gateway).await
                }
                async fn set_gateway_certificate(
                    &self,
                    tenant: &TenantId,
                    gateway: &GatewayId,
                    fingerprint: &str,
                    not_after: Timestamp,
                ) -> Result<()> {
                    self.update_certificate(tenant, gateway, fingerprint, not_after)
                        .await
                }
                async fn revoke_gateway(
                    &self,
                    tenant: &TenantId,
                    gateway: &GatewayId,
                    at: Timestamp,
                ) -> Result<()> {
                    self.update_revoked(tenant, gateway, at).await
                }
                async fn revoked_gateways(&self) -> Result<Vec<RevokedGateway>> {
                    self.select_revoked_gateways().await
                }
                async fn list_gateways(&self, tenant: &TenantId) -> Result<Vec<GatewayRecord>> {
                    self.select_gateways(tenant, None).await
                }
                async fn gateway(
                    &self,
                    tenant: &TenantId,
                    id: &GatewayId,
                ) -> Result<Option<GatewayRecord>> {
                    Ok(self.select_gateways(tenant, Some(id)).await?.pop())
                }
                async fn gateway_key(&self, key_id: &KeyId) -> Result<Option<GatewayKey>> {
                    self.select_gateway_key(key_id).await
                }
                async fn create_enrollment_token(&self, token: &EnrollmentToken) -> Result<()> {
                    self.insert_enrollment_token(token).await
                }
                async fn redeem_enrollment_token(
                    &self,
                    token_hash: &str,
                    now: Timestamp,
                ) -> Result<Redeemed> {
                    self.update_redeemed(token_hash, now).await
                }
                async fn pending_enrollments(
                    &self,
                    tenant: &TenantId,
                    now: Timestamp,
                ) -> Result<Vec<EnrollmentToken>> {
                    self.select_pending_enrollments(tenant, now).await
                }
                async fn enroll_gateway(&self, gateway: &NewGateway, at: Timestamp) -> Result<()> {
                    self.write_enrollment(gateway, at).await
                }
                async fn rotate_gateway_key(
                    &self,
                    tenant: &TenantId,
                    gateway: &GatewayId,
                    key_id: &KeyId,
                    public_key: &[u8; 32],
                    at: Timestamp,
                ) -> Result<()> {
                    self.write_key_rotation(tenant, gateway, key_id, public_key, at)
                        .await
                }
                async fn upsert_sensors(&self, sensors: &[Sensor]) -> Result<()> {
                    self.write_sensors(sensors).await
                }
                async fn list_sensors(&self, tenant: &TenantId) -> Result<Vec<Sensor>> {
                    self.select_sensors(tenant).await
                }
                async fn sensor_placements(
                    &self,
                    tenant: &TenantId,
                ) -> Result<Vec<$crate::Placement>> {
                    self.select_placements(tenant).await
                }
                async fn upsert_zone(&self, zone: &Zone) -> Result<()> {
                    self.write_zone(zone).await
                }
                async fn list_zones(&self, tenant: &TenantId) -> Result<Vec<Zone>> {
                    self.select_zones(tenant).await
                }

                async fn commit(&self, batches: &[CommitBatch]) -> Result<Vec<CommitOutcome>> {
                    self.commit_batches(batches).await
                }
                async fn batch_signature(
                    &self,
                    tenant: &TenantId,
                    gateway: &GatewayId,
                    seq: u64,
                ) -> Result<Option<[u8; 64]>> {
                    Ok(self
                        .select_batch(tenant, gateway, seq, false)
                        .await?
                        .map(|b| b.signature))
                }
                async fn seq_state(
                    &self,
                    tenant: &TenantId,
                    gateway: &GatewayId,
                ) -> Result<SeqState> {
                    self.select_seq_state(tenant, gateway).await
                }
                async fn record_health(
                    &self,
                    health: &Health,
                    received_at: Timestamp,
                ) -> Result<()> {
                    self.write_health(health, received_at).await
                }
                async fn quarantine(&self, record: &QuarantineRecord) -> Result<()> {
                    self.insert_quarantine(record).await
                }
                async fn security_event(&self, event: &SecurityEvent) -> Result<()> {
                    self.insert_security_event(event).await
                }

                async fn readings(
                    &self,
                    filter: &ReadingFilter,
                    limit: u32,
                    after: Option<ReadingCursor>,
                ) -> Result<ReadingPage> {
                    self.select_readings(filter, limit, after).await
                }
                async fn buckets(
                    &self,
                    filter: &ReadingFilter,
                    bucket_us: i64,
                ) -> Result<Vec<Bucket>> {
                    self.select_buckets(filter, bucket_us).await
                }
                async fn list_quarantine(
                    &self,
                    tenant: &TenantId,
                    limit: u32,
                    offset: u64,
                ) -> Result<Page<QuarantineRecord>> {
                    self.select_quarantine(tenant, limit, offset).await
                }
                async fn list_security_events(
                    &self,
                    scope: &EventScope,
                    limit: u32,
                    offset: u64,
                ) -> Result<Page<SecurityEvent>> {
                    self.select_security_events(scope, limit, offset).await
                }
                async fn latest_readings(
                    &self,
                    tenant: &TenantId,
                    since: Timestamp,
                ) -> Result<Vec<StoredReading>> {
                    self.select_latest(tenant, since).await
                }

                async fn create_alarm_rule(&self, rule: &AlarmRule) -> Result<()> {
                    self.insert_alarm_rule(rule).await
                }
                async fn update_alarm_rule(&self, rule: &AlarmRule) -> Result<()> {
                    self.replace_alarm_rule(rule).await
                }
                async fn delete_alarm_rule(&self, tenant: &TenantId, id: &RuleId) -> Result<()> {
                    self.remove_alarm_rule(tenant, id).await
                }
                async fn alarm_rule(
                    &self,
                    tenant: &TenantId,
                    id: &RuleId,
                ) -> Result<Option<AlarmRule>> {
                    Ok(self.select_alarm_rules(Some(tenant), Some(id)).await?.pop())
                }
                async fn list_alarm_rules(&self, tenant: &TenantId) -> Result<Vec<AlarmRule>> {
                    self.select_alarm_rules(Some(tenant), None).await
                }
                async fn all_alarm_rules(&self) -> Result<Vec<AlarmRule>> {
                    self.select_alarm_rules(None, None).await
                }
                async fn raise_alarm(&self, alarm: &NewAlarm) -> Result<Raised> {
                    self.upsert_alarm(alarm).await
                }
                async fn resolve_alarm(
                    &self,
                    tenant: &TenantId,
                    rule: &RuleId,
                    subject: &AlarmSubject,
                    at: Timestamp,
                ) -> Result<Option<Alarm>> {
                    self.clear_by_subject(tenant, rule, subject, at).await
                }
                async fn acknowledge_alarm(
                    &self,
                    tenant: &TenantId,
                    id: i64,
                    action: &AlarmAction,
                ) -> Result<Alarm> {
                    self.change_alarm(tenant, id, action, AlarmChange::Acknowledge)
                        .await
                }
                async fn clear_alarm(
                    &self,
                    tenant: &TenantId,
                    id: i64,
                    action: &AlarmAction,
                ) -> Result<Alarm> {
                    self.change_alarm(tenant, id, action, AlarmChange::Clear)
                        .await
                }
                async fn alarm(&self, tenant: &TenantId, id: i64) -> Result<Option<Alarm>> {
                    self.select_alarm(tenant, id).await
                }
                async fn list_alarms(
                    &self,
                    tenant: &TenantId,
                    filter: &AlarmFilter,
                    limit: u32,
                    offset: u64,
                ) -> Result<Page<Alarm>> {
                    self.select_alarms(tenant, filter, limit, offset).await
                }
                async fn active_alarms(&self) -> Result<Vec<Alarm>> {
                    self.select_active_alarms().await
                }

                async fn create_token(&self, token: &TokenRecord) -> Result<()> {
                    self.insert_token(token).await
                }
                async fn token_by_hash(
                    &self,
                    secret_sha256: &[u8; 32],
                ) -> Result<Option<TokenRecord>> {
                    self.select_token(secret_sha256).await
                }

                async fn append_audit(&self, entries: &[NewAuditEntry]) -> Result<Vec<AuditEntry>> {
                    self.insert_audit(entries).await
                }
                async fn audit_entries(
                    &self,
                    tenant: &TenantId,
                    filter: &AuditFilter,
                    after_seq: u64,
                    limit: u32,
                ) -> Result<Vec<AuditEntry>> {
                    self.select_audit_entries(tenant, filter, after_seq, limit)
                        .await
                }
                async fn audit_head(&self, tenant: &TenantId) -> Result<Option<AuditHead>> {
                    self.select_audit_head(tenant).await
                }
                async fn store_checkpoint(&self, checkpoint: &Checkpoint) -> Result<bool> {
                    self.insert_checkpoint(checkpoint).await
                }
                async fn audit_checkpoints(&self, tenant: &TenantId) -> Result<Vec<Checkpoint>> {
                    self.select_checkpoints(tenant).await
                }
                async fn audit_tenants(&self) -> Result<Vec<TenantId>> {
                    self.select_audit_tenants().await
                }

                async fn create_partner(&self, partner: &Partner) -> Result<()> {
                    self.insert_partner(partner).await
                }
                async fn list_partners(&self) -> Result<Vec<Partner>> {
                    self.select_partners(None).await
                }
                async fn partner(&self, id: &PartnerId) -> Result<Option<Partner>> {
                    Ok(self.select_partners(Some(id)).await?.pop())
                }
                async fn create_agreement(
                    &self,
                    agreement: &Agreement,
                    key: Option<&[u8; 32]>,
                    at: Timestamp,
                ) -> Result<AgreementRecord> {
                    self.insert_agreement(agreement, key, at).await
                }
                async fn update_agreement(
                    &self,
                    agreement: &Agreement,
                    expected_version: u32,
                    at: Timestamp,
                ) -> Result<AgreementRecord> {
                    self.replace_agreement(agreement, expected_version, at)
                        .await
                }
                async fn agreement(
                    &self,
                    grantor: &TenantId,
                    id: &AgreementId,
                ) -> Result<Option<AgreementRecord>> {
                    Ok(self
                        .select_agreements(AgreementsBy::One(grantor, id))
                        .await?
                        .pop())
                }
                async fn list_agreements(
                    &self,
                    grantor: &TenantId,
                ) -> Result<Vec<AgreementRecord>> {
                    self.select_agreements(AgreementsBy::Grantor(grantor)).await
                }
                async fn agreements_for(&self, grantee: &Grantee) -> Result<Vec<AgreementRecord>> {
                    self.select_agreements(AgreementsBy::Grantee(grantee)).await
                }
                async fn all_agreements(&self) -> Result<Vec<Agreement>> {
                    Ok(self
                        .select_agreements(AgreementsBy::All)
                        .await?
                        .into_iter()
                        .map(|record| record.agreement)
                        .collect())
                }
                async fn rotate_pseudonym_key(
                    &self,
                    grantor: &TenantId,
                    id: &AgreementId,
                    key: &[u8; 32],
                    at: Timestamp,
                ) -> Result<u32> {
                    self.insert_pseudonym_key(grantor, id, key, at).await
                }
                async fn pseudonym_key(
                    &self,
                    grantor: &TenantId,
                    id: &AgreementId,
                ) -> Result<Option<PseudonymKey>> {
                    self.select_pseudonym_key(grantor, id).await
                }
                async fn series_metrics(&self, tenant: &TenantId) -> Result<Vec<MetricName>> {
                    self.select_series_metrics(tenant).await
                }
                async fn governed_cells(&self, query: &CellQuery) -> Result<Vec<CellRow>> {
                    self.select_cells(query).await
                }

                async fn set_retention_policy(&self, policy: &RetentionPolicy) -> Result<()> {
                    self.write_retention_policy(policy).await
                }
                async fn retention_policies(
                    &self,
                    tenant: &TenantId,
                ) -> Result<Vec<RetentionPolicy>> {
                    self.select_retention_policies(tenant).await
                }
                async fn delete_retention_policy(
                    &self,
                    tenant: &TenantId,
                    class: &beffroi_policy::MetricPattern,
                ) -> Result<()> {
                    self.remove_retention_policy(tenant, class).await
                }
                async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReceipt> {
                    self.purge_class(request).await
                }

                async fn restore_tenant(&self, restore: &$crate::TenantRestore) -> Result<()> {
                    self.write_restore(restore).await
                }
                async fn import_audit(
                    &self,
                    tenant: &TenantId,
                    entries: &[AuditEntry],
                ) -> Result<AuditHead> {
                    self.write_imported_audit(tenant, entries).await
                }
                async fn batch_keys(
                    &self,
                    tenant: &TenantId,
                    after: Option<&$crate::BatchKey>,
                    limit: u32,
                ) -> Result<Vec<$crate::BatchKey>> {
                    self.select_batch_keys(tenant, after, limit).await
                }
                async fn reading_count(&self, tenant: &TenantId) -> Result<u64> {
                    self.select_reading_count(tenant).await
                }

                async fn apply_retention(&self, older_than: Timestamp) -> Result<u64> {
                    self.delete_older(older_than).await
                }
                async fn refresh_aggregates(&self, from: Timestamp, to: Timestamp) -> Result<()> {
                    self.refresh(from, to).await
                }

                async fn batch(
                    &self,
                    tenant: &TenantId,
                    gateway: &GatewayId,
                    seq: u64,
                ) -> Result<Option<StoredBatch>> {
                    self.select_batch(tenant, gateway, seq, true).await
                }
                async fn bulk_load_baseline(&self, batches: &[CommitBatch]) -> Result<u64> {
                    self.load_readings_only(batches).await
                }
                async fn renew_lease(
                    &self,
                    name: &str,
                    holder: &str,
                    now: Timestamp,
                    until: Timestamp,
                ) -> Result<bool> {
                    self.upsert_lease(name, holder, now, until).await
                }
                async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
                    self.delete_lease(name, holder).await
                }
                async fn close(&self) {
                    self.pool.close().await;
                }
            }
        };
    };
}

pub(crate) use forward_store;
