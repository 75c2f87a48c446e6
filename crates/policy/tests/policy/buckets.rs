//! Buckets: whole multiples of the minimum bucket, aligned on it from the epoch.

use beffroi_policy::{
    decide, AccessRequest, BucketSpec, DenyReason, Function, Read, Shape, SpatialLevel,
};

use crate::support::{
    aggregate_agreement, aggregate_request, at, denied, permitted, raw_agreement, HOUR,
};

fn with_bucket(width_s: u32, offset_s: u32) -> AccessRequest {
    AccessRequest {
        read: Read::Aggregate {
            bucket: BucketSpec { width_s, offset_s },
            functions: [Function::Avg].into(),
            spatial_level: SpatialLevel::Zone,
        },
        ..aggregate_request()
    }
}

#[test]
fn an_hourly_agreement_serves_whole_aligned_hours_only() {
    let hourly = [aggregate_agreement("air")];
    for (width, offset) in [
        (HOUR, 0),
        (2 * HOUR, 0),
        (2 * HOUR, HOUR),
        (24 * HOUR, 23 * HOUR),
    ] {
        let permit = permitted(decide(&with_bucket(width, offset), &hourly, at(0)));
        let Shape::Aggregate(aggregation) = permit.transforms.shape else {
            panic!("not an aggregate")
        };
        assert_eq!(
            aggregation.bucket,
            BucketSpec {
                width_s: width,
                offset_s: offset
            }
        );
        assert_eq!(aggregation.fine_bucket, BucketSpec::epoch_aligned(HOUR));
    }
    for (width, offset) in [
        (HOUR / 2, 0),
        (HOUR * 3 / 2, 0),
        (HOUR, HOUR / 2),
        (2 * HOUR, 60),
    ] {
        let decision = decide(&with_bucket(width, offset), &hourly, at(0));
        assert_eq!(
            denied(&decision),
            DenyReason::BucketNotAllowed,
            "{width} {offset}"
        );
    }
}

#[test]
fn a_malformed_bucket_is_an_invalid_request() {
    let hourly = [aggregate_agreement("air")];
    for (width, offset) in [(0, 0), (HOUR, HOUR)] {
        let decision = decide(&with_bucket(width, offset), &hourly, at(0));
        assert_eq!(denied(&decision), DenyReason::InvalidRequest);
    }
}

#[test]
fn a_raw_agreement_without_minimum_bucket_aggregates_at_any_grid() {
    let raw = [raw_agreement("raw")];
    for (width, offset) in [(1, 0), (90, 30), (HOUR, 0)] {
        let mut request = with_bucket(width, offset);
        if let Read::Aggregate { spatial_level, .. } = &mut request.read {
            *spatial_level = SpatialLevel::Sensor;
        }
        let permit = permitted(decide(&request, &raw, at(0)));
        let Shape::Aggregate(aggregation) = permit.transforms.shape else {
            panic!("not an aggregate")
        };
        assert_eq!(aggregation.fine_bucket, aggregation.bucket);
        assert_eq!(aggregation.k, 1);
    }
}
