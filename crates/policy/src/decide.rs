//! The decision: one pure function, [`decide()`], for every governed read path.
//!
//! # Rules, in order
//! 1. A malformed request is denied (`invalid_request`).
//! 2. The agreements that concern the request are those of its grantor whose grantee covers
//!    the requester (`public` covers everyone).
//! 3. If one of them that is `active` or `suspended` carries a term this build does not
//!    understand, everything between this grantor and requester is denied (`unknown_term`):
//!    the unknown term may be a restriction or a prohibition we cannot see.
//! 4. Candidates are those agreements (only the named one if the request names one), tried
//!    in `(id, version)` order. A candidate permits only if every one of its terms holds, in
//!    this order: state `active`; valid (see [`Agreement::validate`]); inside its validity
//!    window; purpose listed; action included; scope (request ∩ target) not empty, and no
//!    sensor or tag filter on aggregates with `k > 1`; no prohibition of any concerning
//!    `active`/`suspended` agreement overlaps the effective scope with an included action;
//!    spatial level, bucket grid and functions (aggregates) or fields (raw) allowed; for a
//!    pooling agreement, some of the requested range inside its validity window (only
//!    readings measured then are pooled); some data older than `now − embargo`.
//! 5. The first candidate that permits justifies the permit alone — terms never mix across
//!    agreements. If none does, the denial reported is that of the candidate that failed at
//!    the latest rule (a prohibition first of all), ties to the lowest id; with no candidate
//!    at all, `no_agreement`.

use beffroi_protocol::Timestamp;

use crate::agreement::{Agreement, Prohibition};
use crate::decision::{deny, Decision, Deny, DenyReason, Permit};
use crate::request::{AccessRequest, Read};
use crate::scope::Scope;
use crate::state::State;
use crate::transforms::{Aggregation, Shape, TimeWindow, Transforms};
use crate::window::{BucketSpec, TimeRange};

/// Decides one request against the agreements of the platform (any tenants; the ones that
/// do not concern the request are ignored) at `now`. Pure and deterministic.
pub fn decide(request: &AccessRequest, agreements: &[Agreement], now: Timestamp) -> Decision {
    if let Some(problem) = request.problem() {
        return Decision::Deny(deny(DenyReason::InvalidRequest, problem.to_owned(), None));
    }
    let mut concerning: Vec<&Agreement> = agreements
        .iter()
        .filter(|a| a.grantor == request.grantor && a.grantee.covers(&request.requester))
        .collect();
    concerning.sort_by(|a, b| (&a.id, a.version).cmp(&(&b.id, b.version)));
    let binding = || concerning.iter().filter(|a| a.state.binds_prohibitions());

    if let Some(unknown) = binding().find(|a| a.has_unknown_terms()) {
        return Decision::Deny(deny(
            DenyReason::UnknownTerm,
            format!(
                "agreement {} carries terms this version does not understand; nothing is served between {} and {} until it is fixed",
                unknown.id, request.grantor, request.requester
            ),
            Some(unknown),
        ));
    }
    let prohibitions: Vec<(&Agreement, &Prohibition, Scope)> = binding()
        .flat_map(|a| {
            a.prohibitions
                .iter()
                .map(move |p| (*a, p, Scope::of_target(&p.target)))
        })
        .collect();

    let wanted = request.scope();
    let mut best: Option<Deny> = None;
    for agreement in concerning.iter().filter(|a| {
        request
            .agreement
            .as_ref()
            .is_none_or(|named| *named == a.id)
    }) {
        match evaluate(agreement, request, &wanted, &prohibitions, now) {
            Ok(transforms) => {
                return Decision::Permit(Permit {
                    agreement: agreement.reference(),
                    grantee: agreement.grantee.clone(),
                    transforms,
                })
            }
            Err(denial) => {
                if best.as_ref().is_none_or(|b| denial.reason > b.reason) {
                    best = Some(denial);
                }
            }
        }
    }
    Decision::Deny(best.unwrap_or_else(|| {
        let message = match &request.agreement {
            Some(named) => format!(
                "no agreement {named} from {} covers {}",
                request.grantor, request.requester
            ),
            None => format!(
                "no agreement from {} covers {}",
                request.grantor, request.requester
            ),
        };
        deny(DenyReason::NoAgreement, message, None)
    }))
}

/// Every term of one agreement against the request: the transforms if all hold, else the
/// first that fails.
fn evaluate(
    agreement: &Agreement,
    request: &AccessRequest,
    wanted_scope: &Scope,
    prohibitions: &[(&Agreement, &Prohibition, Scope)],
    now: Timestamp,
) -> Result<Transforms, Deny> {
    let refuse = |reason, message: String| Err(deny(reason, message, Some(agreement)));
    let id = &agreement.id;
    match agreement.state {
        State::Active => {}
        State::Draft => return refuse(DenyReason::Draft, format!("agreement {id} is a draft")),
        State::Suspended => {
            return refuse(
                DenyReason::Suspended,
                format!("agreement {id} is suspended"),
            )
        }
        State::Revoked => return refuse(DenyReason::Revoked, format!("agreement {id} is revoked")),
    }
    if let Err(err) = agreement.validate() {
        return refuse(
            DenyReason::InvalidAgreement,
            format!("agreement {id}: {err}"),
        );
    }
    if !agreement.is_valid_at(now) {
        return refuse(
            DenyReason::OutsideValidity,
            format!(
                "agreement {id} is valid from {} until {} (exclusive), not at {now}",
                agreement.not_before, agreement.not_after
            ),
        );
    }
    if !agreement.purposes.contains(request.purpose) {
        return refuse(
            DenyReason::WrongPurpose,
            format!(
                "agreement {id} allows purposes [{}], not {}",
                join(agreement.purposes.words()),
                request.purpose
            ),
        );
    }
    let wanted = request.read.action();
    if !agreement.action.includes(wanted) {
        return refuse(
            DenyReason::ActionNotAllowed,
            format!("agreement {id} allows {}, not {wanted}", agreement.action),
        );
    }
    let target = Scope::of_target(&agreement.target);
    let scope = match target.intersect(wanted_scope) {
        Ok(scope) => scope,
        Err(dimension) => {
            return refuse(
                DenyReason::Scope,
                format!("none of the requested {dimension} is in the target of agreement {id}"),
            )
        }
    };
    let aggregate = matches!(request.read, Read::Aggregate { .. });
    if aggregate && agreement.k > 1 && !(request.sensors.is_empty() && request.tags.is_empty()) {
        return refuse(
            DenyReason::Scope,
            format!(
                "agreement {id} has k = {}: aggregates cannot be filtered by sensor or tag (two differently filtered cells would isolate fewer than k sensors); filter by zone",
                agreement.k
            ),
        );
    }
    if let Some((owner, prohibition, _)) = prohibitions
        .iter()
        .find(|(_, p, forbidden)| wanted.includes(p.action) && forbidden.overlaps(&scope))
    {
        return Err(deny(
            DenyReason::Prohibited,
            format!(
                "agreement {} prohibits {} on part of the requested data",
                owner.id, prohibition.action
            ),
            Some(owner),
        ));
    }
    let (shape, whole_buckets) = shape(agreement, request, &target, &scope)?;
    let period = agreement
        .pooling
        .then(|| TimeRange::new(agreement.not_before, agreement.not_after));
    let asked = match period {
        Some(period) => TimeRange::new(
            request.range.from.max(period.from),
            request.range.to.min(period.to),
        ),
        None => request.range,
    };
    if asked.is_empty() {
        return refuse(
            DenyReason::OutsideValidity,
            format!(
                "agreement {id} pools the readings measured from {} until {} (exclusive); none requested is",
                agreement.not_before, agreement.not_after
            ),
        );
    }
    let window = match whole_buckets {
        Some(grid) => TimeWindow {
            from: grid.floor(asked.from),
            until: grid.ceil(asked.to),
            embargo_s: agreement.embargo_s,
            whole_buckets: Some(grid),
        },
        None => TimeWindow {
            from: asked.from,
            until: asked.to,
            embargo_s: agreement.embargo_s,
            whole_buckets: None,
        },
    };
    let Some(range) = window.served(now) else {
        return refuse(
            DenyReason::Embargo,
            format!(
                "agreement {id} serves only data older than {} s{}; nothing requested is",
                agreement.embargo_s,
                if whole_buckets.is_some() {
                    ", in whole buckets"
                } else {
                    ""
                }
            ),
        );
    };
    Ok(Transforms {
        scope,
        range,
        window,
        valid_until: agreement.not_after,
        period,
        pseudonymise: agreement.pseudonymise,
        shape,
    })
}

/// The output shape, and for aggregates the grid whose whole buckets are served.
fn shape(
    agreement: &Agreement,
    request: &AccessRequest,
    target: &Scope,
    scope: &Scope,
) -> Result<(Shape, Option<BucketSpec>), Deny> {
    let refuse = |reason, message: String| Err(deny(reason, message, Some(agreement)));
    let id = &agreement.id;
    match &request.read {
        Read::Raw { fields } => {
            let allowed = agreement.fields.known();
            if let Some(field) = fields.iter().find(|f| !allowed.contains(f)) {
                return refuse(
                    DenyReason::FieldNotAllowed,
                    format!(
                        "agreement {id} allows fields [{}], not {field}",
                        join(agreement.fields.words())
                    ),
                );
            }
            let fields = if fields.is_empty() { allowed } else { fields };
            Ok((
                Shape::Raw {
                    fields: fields.clone(),
                },
                None,
            ))
        }
        Read::Aggregate {
            bucket,
            functions,
            spatial_level,
        } => {
            if !agreement.spatial_level.allows(*spatial_level) {
                return refuse(
                    DenyReason::SpatialLevelNotAllowed,
                    format!(
                        "agreement {id} serves {} level at the finest, not {spatial_level}",
                        agreement.spatial_level
                    ),
                );
            }
            let fine = agreement
                .min_bucket_s
                .map_or(*bucket, BucketSpec::epoch_aligned);
            if !bucket.is_aligned_on(&fine) {
                return refuse(
                    DenyReason::BucketNotAllowed,
                    format!(
                        "agreement {id} allows buckets that are whole multiples of {} s aligned on the epoch, not {} s offset {} s",
                        fine.width_s, bucket.width_s, bucket.offset_s
                    ),
                );
            }
            if let Some(function) = functions
                .iter()
                .find(|f| !agreement.functions.contains(**f))
            {
                return refuse(
                    DenyReason::FunctionNotAllowed,
                    format!(
                        "agreement {id} allows functions [{}], not {function}",
                        join(agreement.functions.words())
                    ),
                );
            }
            let grid = if agreement.k > 1 {
                Scope {
                    metrics: scope.metrics.clone(),
                    ..target.clone()
                }
            } else {
                scope.clone()
            };
            let aggregation = Aggregation {
                bucket: *bucket,
                fine_bucket: fine,
                functions: functions.clone(),
                spatial_level: *spatial_level,
                k: agreement.k,
                grid,
            };
            Ok((Shape::Aggregate(aggregation), Some(*bucket)))
        }
    }
}

fn join<'a>(words: impl Iterator<Item = &'a str>) -> String {
    words.collect::<Vec<_>>().join(", ")
}
