//! SQLite: alarms. Raising is one upsert on the partial unique index of active alarms
//! (`alarms_active`); every change moves `updated_at` forward, by at least one microsecond.

use beffroi_protocol::{TenantId, Timestamp};
use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
use crate::decode::{action_columns, check_finite, count_to_db, json_text};
use crate::outcome::{alarm_unchanged, tenant_referenced, AlarmChange};
use crate::rows::{alarm_from, page_from, raised_from};
use crate::{
    Alarm, AlarmAction, AlarmFilter, AlarmSubject, NewAlarm, Page, Raised, Result, RuleId,
};

/// The columns [`alarm_from`] reads.
const ALARM_COLUMNS: &str = "id, tenant, rule, rule_name, severity, subject, zone, state, \
     message, value, opened_at, last_at, occurrences, acknowledged_at, acknowledged_by_token, \
     acknowledged_by_name, acknowledged_comment, cleared_at, cleared_by_token, cleared_by_name, \
     cleared_comment, updated_at";

/// `SET` clause of `change`: binds `?1` at, `?2` token id, `?3` name, `?4` comment, `?5` now.
fn set_change(change: AlarmChange) -> String {
    let (state, c) = (change.state(), change.columns());
    format!(
        "SET state = '{state}', {c}_at = ?1, {c}_by_token = ?2, {c}_by_name = ?3, \
         {c}_comment = ?4, updated_at = max(?5, updated_at + 1)"
    )
}

impl SqliteStore {
    pub(super) async fn upsert_alarm(&self, alarm: &NewAlarm) -> Result<Raised> {
        check_finite("alarm value", alarm.value)?;
        let subject = json_text("alarm subject", &alarm.subject)?;
        let now = Timestamp::now().unix_micros();
        let _w = self.write.lock().await;
        let row = sqlx::query(&format!(
            "INSERT INTO alarms (tenant, rule, rule_name, severity, subject, subject_key, zone, \
             state, message, value, opened_at, last_at, occurrences, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'open', ?8, ?9, ?10, ?10, 1, ?11) \
             ON CONFLICT (tenant, rule, subject_key) WHERE state <> 'cleared' DO UPDATE SET \
             occurrences = alarms.occurrences + 1, last_at = excluded.last_at, \
             value = excluded.value, message = excluded.message, \
             updated_at = max(excluded.updated_at, alarms.updated_at + 1) \
             RETURNING {ALARM_COLUMNS}"
        ))
        .bind(alarm.tenant.as_str())
        .bind(alarm.rule.as_str())
        .bind(&alarm.rule_name)
        .bind(alarm.severity.as_str())
        .bind(subject)
        .bind(alarm.subject.key())
        .bind(alarm.zone.as_ref().map(RuleId::as_str))
        .bind(&alarm.message)
        .bind(alarm.value)
        .bind(alarm.at.unix_micros())
        .bind(now)
        .fetch_one(&self.pool)
        .await;
        raised_from(&tenant_referenced(row, &alarm.tenant)?)
    }

    pub(super) async fn clear_by_subject(
        &self,
        tenant: &TenantId,
        rule: &RuleId,
        subject: &AlarmSubject,
        at: Timestamp,
    ) -> Result<Option<Alarm>> {
        let now = Timestamp::now().unix_micros();
        let _w = self.write.lock().await;
        let row = sqlx::query(&format!(
            "UPDATE alarms {} WHERE tenant = ?6 AND rule = ?7 AND subject_key = ?8 \
             AND state <> 'cleared' RETURNING {ALARM_COLUMNS}",
            set_change(AlarmChange::Clear)
        ))
        .bind(at.unix_micros())
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(now)
        .bind(tenant.as_str())
        .bind(rule.as_str())
        .bind(subject.key())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(alarm_from).transpose()
    }

    /// Acknowledges or clears alarm `id` by hand.
    pub(super) async fn change_alarm(
        &self,
        tenant: &TenantId,
        id: i64,
        action: &AlarmAction,
        change: AlarmChange,
    ) -> Result<Alarm> {
        let (at, token_id, name, comment) = action_columns(action);
        let now = Timestamp::now().unix_micros();
        let _w = self.write.lock().await;
        let row = sqlx::query(&format!(
            "UPDATE alarms {} WHERE tenant = ?6 AND id = ?7 AND {} RETURNING {ALARM_COLUMNS}",
            set_change(change),
            change.applies_to()
        ))
        .bind(at)
        .bind(token_id)
        .bind(name)
        .bind(comment)
        .bind(now)
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => alarm_from(&row),
            None => Err(alarm_unchanged(
                id,
                self.select_alarm(tenant, id).await?.map(|a| a.state),
                change,
            )),
        }
    }

    pub(super) async fn select_alarm(&self, tenant: &TenantId, id: i64) -> Result<Option<Alarm>> {
        let row = sqlx::query(&format!(
            "SELECT {ALARM_COLUMNS} FROM alarms WHERE tenant = ? AND id = ?"
        ))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(alarm_from).transpose()
    }

    pub(super) async fn select_alarms(
        &self,
        tenant: &TenantId,
        filter: &AlarmFilter,
        limit: u32,
        offset: u64,
    ) -> Result<Page<Alarm>> {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {ALARM_COLUMNS} FROM alarms WHERE tenant = "
        ));
        q.push_bind(tenant.as_str());
        if !filter.states.is_empty() {
            q.push(" AND state IN (");
            let mut list = q.separated(", ");
            for state in &filter.states {
                list.push_bind(state.as_str());
            }
            q.push(")");
        }
        q.push(" ORDER BY opened_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1)
            .push(" OFFSET ")
            .push_bind(count_to_db(offset));
        let rows = q.build().fetch_all(&self.pool).await?;
        page_from(&rows, offset, limit, alarm_from)
    }

    pub(super) async fn select_active_alarms(&self) -> Result<Vec<Alarm>> {
        let rows = sqlx::query(&format!(
            "SELECT {ALARM_COLUMNS} FROM alarms WHERE state <> 'cleared' ORDER BY tenant, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alarm_from).collect()
    }
}
