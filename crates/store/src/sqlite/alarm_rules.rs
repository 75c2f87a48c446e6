//! SQLite: alarm rules (their condition kept as JSON text).

use beffroi_protocol::TenantId;
use sqlx::{Executor, Sqlite};

use super::SqliteStore;
use crate::decode::{check_rule, json_text};
use crate::outcome::{rule_found, rule_inserted};
use crate::rows::alarm_rule_from;
use crate::{AlarmRule, Result, RuleId};

impl SqliteStore {
    pub(super) async fn insert_alarm_rule(&self, rule: &AlarmRule) -> Result<()> {
        check_rule(rule)?;
        let condition = json_text("alarm rule condition", &rule.condition)?;
        let _w = self.write.lock().await;
        let done = insert_rule_row(&self.pool, rule, &condition).await;
        rule_inserted(done, rule)
    }

    pub(super) async fn replace_alarm_rule(&self, rule: &AlarmRule) -> Result<()> {
        check_rule(rule)?;
        let condition = json_text("alarm rule condition", &rule.condition)?;
        let _w = self.write.lock().await;
        let done = sqlx::query(
            "UPDATE alarm_rules SET name = ?, severity = ?, enabled = ?, condition = ?, \
             updated_at = ? WHERE tenant = ? AND id = ?",
        )
        .bind(&rule.name)
        .bind(rule.severity.as_str())
        .bind(rule.enabled)
        .bind(condition)
        .bind(rule.updated_at.unix_micros())
        .bind(rule.tenant.as_str())
        .bind(rule.id.as_str())
        .execute(&self.pool)
        .await?;
        rule_found(done.rows_affected(), &rule.id)
    }

    pub(super) async fn remove_alarm_rule(&self, tenant: &TenantId, id: &RuleId) -> Result<()> {
        let _w = self.write.lock().await;
        let done = sqlx::query("DELETE FROM alarm_rules WHERE tenant = ? AND id = ?")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        rule_found(done.rows_affected(), id)
    }

    /// Rules of one tenant (or all), optionally only one, by tenant and id.
    pub(super) async fn select_alarm_rules(
        &self,
        tenant: Option<&TenantId>,
        only: Option<&RuleId>,
    ) -> Result<Vec<AlarmRule>> {
        let rows = sqlx::query(
            "SELECT tenant, id, name, severity, enabled, condition, created_at, updated_at \
             FROM alarm_rules WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR id = ?2) \
             ORDER BY tenant, id",
        )
        .bind(tenant.map(TenantId::as_str))
        .bind(only.map(RuleId::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alarm_rule_from).collect()
    }
}

/// Inserts `rule` at its own times, with its `condition` rendered as JSON text. The
/// database's error is returned as is, for the caller to give it its meaning.
pub(super) async fn insert_rule_row<'c>(
    db: impl Executor<'c, Database = Sqlite>,
    rule: &AlarmRule,
    condition: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO alarm_rules (tenant, id, name, severity, enabled, condition, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(rule.tenant.as_str())
    .bind(rule.id.as_str())
    .bind(&rule.name)
    .bind(rule.severity.as_str())
    .bind(rule.enabled)
    .bind(condition)
    .bind(rule.created_at.unix_micros())
    .bind(rule.updated_at.unix_micros())
    .execute(db)
    .await
    .map(drop)
}
