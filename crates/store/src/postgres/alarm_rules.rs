//! PostgreSQL: alarm rules (their condition kept as `jsonb`).

use beffroi_protocol::TenantId;
use sqlx::types::Json;
use sqlx::{Executor, Postgres};

use super::{ts, us, PostgresStore};
use crate::decode::check_rule;
use crate::outcome::{rule_found, rule_inserted};
use crate::rows::alarm_rule_from;
use crate::{AlarmRule, Result, RuleId};

impl PostgresStore {
    pub(super) async fn insert_alarm_rule(&self, rule: &AlarmRule) -> Result<()> {
        check_rule(rule)?;
        let done = insert_rule_row(&self.pool, rule).await;
        rule_inserted(done, rule)
    }

    pub(super) async fn replace_alarm_rule(&self, rule: &AlarmRule) -> Result<()> {
        check_rule(rule)?;
        let done = sqlx::query(&format!(
            "UPDATE alarm_rules SET name = $1, severity = $2, enabled = $3, condition = $4, \
             updated_at = {} WHERE tenant = $6 AND id = $7",
            ts("$5")
        ))
        .bind(&rule.name)
        .bind(rule.severity.as_str())
        .bind(rule.enabled)
        .bind(Json(&rule.condition))
        .bind(rule.updated_at.unix_micros())
        .bind(rule.tenant.as_str())
        .bind(rule.id.as_str())
        .execute(&self.pool)
        .await?;
        rule_found(done.rows_affected(), &rule.id)
    }

    pub(super) async fn remove_alarm_rule(&self, tenant: &TenantId, id: &RuleId) -> Result<()> {
        let done = sqlx::query("DELETE FROM alarm_rules WHERE tenant = $1 AND id = $2")
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
        let rows = sqlx::query(&format!(
            "SELECT tenant, id, name, severity, enabled, condition, {} AS created_at, \
             {} AS updated_at FROM alarm_rules \
             WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR id = $2) \
             ORDER BY tenant, id",
            us("created_at"),
            us("updated_at")
        ))
        .bind(tenant.map(TenantId::as_str))
        .bind(only.map(RuleId::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alarm_rule_from).collect()
    }
}

/// Inserts `rule` at its own times. The database's error is returned as is, for the caller
/// to give it its meaning.
pub(super) async fn insert_rule_row<'c>(
    db: impl Executor<'c, Database = Postgres>,
    rule: &AlarmRule,
) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO alarm_rules (tenant, id, name, severity, enabled, condition, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, {}, {})",
        ts("$7"),
        ts("$8")
    ))
    .bind(rule.tenant.as_str())
    .bind(rule.id.as_str())
    .bind(&rule.name)
    .bind(rule.severity.as_str())
    .bind(rule.enabled)
    .bind(Json(&rule.condition))
    .bind(rule.created_at.unix_micros())
    .bind(rule.updated_at.unix_micros())
    .execute(db)
    .await
    .map(drop)
}
