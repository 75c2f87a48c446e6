//! The demo's pooled sensor network (docs/pooling.md): the neighbouring commune draws its
//! boundary over the east of the demo city (the Part-Dieu zone), and the demo tenant pools
//! every sensor standing inside it to the commune, raw and live, for a year. Signed in with
//! the commune's token, the dashboard's Supervision page shows those sensors as pooled, and
//! the commune's own alarm rule watches their PM2.5.

use std::sync::Arc;
use std::time::Duration;

use beffroi_api::audit::{audited, Change};
use beffroi_audit::AuditKind;
use beffroi_policy::{
    Action, Agreement, AgreementId, Field, Function, Grantee, Purpose, SpatialLevel, State, Target,
    TermSet, UnknownTerms,
};
use beffroi_protocol::{MetricName, TenantId, Timestamp};
use beffroi_store::{AlarmRule, Comparison, RuleCondition, RuleId, Severity, Store, Zone, ZoneId};

use super::CENTRE;
use crate::admin;

/// The commune's zone the pooling places sensors in.
const BOUNDARY: &str = "commune";

/// Draws the neighbour's boundary and records the operator's pooling agreement with it.
pub(super) async fn pool_with_neighbour(
    store: &Arc<dyn Store>,
    operator: &TenantId,
    neighbour: &TenantId,
    neighbour_name: &str,
) -> anyhow::Result<()> {
    let (lon, lat) = (CENTRE.0 + 0.017, CENTRE.1 - 0.005);
    let (east, north) = (lon + 0.026, lat + 0.022);
    store
        .upsert_zone(&Zone {
            tenant: neighbour.clone(),
            id: ZoneId::new(BOUNDARY)?,
            name: neighbour_name.to_owned(),
            geometry: serde_json::json!({
                "type": "Polygon",
                "coordinates": [[[lon, lat], [east, lat], [east, north], [lon, north], [lon, lat]]],
            }),
        })
        .await?;
    let now = Timestamp::now();
    let day = Duration::from_secs(86_400);
    let mut target = Target::of_metrics(["*".parse()?]);
    target.territories = [ZoneId::new(BOUNDARY)?].into();
    let agreement = Agreement {
        id: AgreementId::new(format!("pool-{neighbour}"))?,
        version: 1,
        grantor: operator.clone(),
        grantee: Grantee::Tenant(neighbour.clone()),
        state: State::Active,
        not_before: now.saturating_sub(day),
        not_after: now.saturating_add(day * 365),
        purposes: TermSet::from([Purpose::EnvironmentalMonitoring, Purpose::PublicService]),
        action: Action::ReadRaw,
        target,
        min_bucket_s: None,
        functions: TermSet::from([Function::Avg]),
        k: 1,
        spatial_level: SpatialLevel::Sensor,
        pseudonymise: false,
        fields: TermSet::from([
            Field::Time,
            Field::Value,
            Field::Unit,
            Field::Metric,
            Field::Sensor,
        ]),
        embargo_s: 0,
        prohibitions: Vec::new(),
        pooling: true,
        unknown_terms: UnknownTerms::new(),
    };
    let change = Change::new(
        operator.clone(),
        admin::local_operator(),
        AuditKind::AgreementChange,
        "create",
        "agreement",
        agreement.id.as_str(),
    )
    .with_request(&agreement);
    audited(store.as_ref(), &[change], async {
        store.create_agreement(&agreement, None, now).await
    })
    .await?;
    store
        .create_alarm_rule(&AlarmRule {
            tenant: neighbour.clone(),
            id: RuleId::new("pm25-pooled")?,
            name:
                "PM2.5 above 15 µg/m³ (WHO 24-h guideline) for 1 min in the commune, pooled sensors"
                    .into(),
            severity: Severity::Warning,
            enabled: true,
            condition: RuleCondition::Threshold {
                metric: MetricName::new("air.pm25")?,
                zone: Some(ZoneId::new(BOUNDARY)?),
                sensors: Vec::new(),
                op: Comparison::Gt,
                value: 15.0,
                for_s: 60,
                pooled: Some(Purpose::EnvironmentalMonitoring),
            },
            created_at: now,
            updated_at: now,
        })
        .await?;
    Ok(())
}
