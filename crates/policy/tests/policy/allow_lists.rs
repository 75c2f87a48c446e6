//! Allow-lists: functions, raw fields, spatial level and action.

use std::collections::BTreeSet;

use beffroi_policy::{
    decide, AccessRequest, BucketSpec, DenyReason, Field, Function, Read, Shape, SpatialLevel,
};

use crate::support::{
    aggregate_agreement, aggregate_request, at, denied, permitted, raw_agreement, raw_request, HOUR,
};

fn aggregate(functions: &[Function], spatial_level: SpatialLevel) -> AccessRequest {
    AccessRequest {
        read: Read::Aggregate {
            bucket: BucketSpec::epoch_aligned(HOUR),
            functions: functions.iter().copied().collect(),
            spatial_level,
        },
        ..aggregate_request()
    }
}

fn raw(fields: &[Field]) -> AccessRequest {
    AccessRequest {
        read: Read::Raw {
            fields: fields.iter().copied().collect(),
        },
        ..raw_request()
    }
}

#[test]
fn functions_outside_the_allow_list_are_refused() {
    let agreements = [aggregate_agreement("air")];
    let permit = permitted(decide(
        &aggregate(&[Function::Avg, Function::Count], SpatialLevel::Zone),
        &agreements,
        at(0),
    ));
    let Shape::Aggregate(aggregation) = permit.transforms.shape else {
        panic!("not an aggregate")
    };
    assert_eq!(
        aggregation.functions,
        [Function::Avg, Function::Count].into()
    );
    for function in [Function::Sum, Function::Min] {
        let decision = decide(
            &aggregate(&[Function::Avg, function], SpatialLevel::Zone),
            &agreements,
            at(0),
        );
        assert_eq!(denied(&decision), DenyReason::FunctionNotAllowed);
    }
}

#[test]
fn fields_outside_the_allow_list_are_refused_and_never_in_transforms() {
    let agreements = [raw_agreement("raw")];
    let allowed: BTreeSet<Field> = [Field::Time, Field::Value, Field::Metric, Field::Sensor].into();

    let permit = permitted(decide(
        &raw(&[Field::Time, Field::Value]),
        &agreements,
        at(0),
    ));
    assert_eq!(
        permit.transforms.shape,
        Shape::Raw {
            fields: [Field::Time, Field::Value].into()
        }
    );
    assert!(permit.transforms.pseudonymise);

    let permit = permitted(decide(&raw(&[]), &agreements, at(0)));
    assert_eq!(permit.transforms.shape, Shape::Raw { fields: allowed });

    for field in [Field::Gateway, Field::Zone, Field::ReceivedAt] {
        let decision = decide(&raw(&[Field::Time, field]), &agreements, at(0));
        assert_eq!(denied(&decision), DenyReason::FieldNotAllowed, "{field}");
    }
}

#[test]
fn raw_rows_need_a_raw_agreement_and_raw_includes_aggregates() {
    let decision = decide(&raw_request(), &[aggregate_agreement("air")], at(0));
    assert_eq!(denied(&decision), DenyReason::ActionNotAllowed);
    let request = aggregate(&[Function::Avg], SpatialLevel::Sensor);
    permitted(decide(&request, &[raw_agreement("raw")], at(0)));
}

#[test]
fn a_finer_spatial_level_than_agreed_is_refused() {
    let decision = decide(
        &aggregate(&[Function::Avg], SpatialLevel::Sensor),
        &[aggregate_agreement("air")],
        at(0),
    );
    assert_eq!(denied(&decision), DenyReason::SpatialLevelNotAllowed);
}
