//! `Agreement::validate`: every incoherent term named with its path and typed problem.

use beffroi_policy::{Action, Agreement, Field, Problem, SpatialLevel, Target, TermSet};

use crate::support::{aggregate_agreement, at, raw_agreement};

/// The `(path, problem)` pairs reported for `agreement`.
fn problems(agreement: &Agreement) -> Vec<(String, Problem)> {
    match agreement.validate() {
        Ok(()) => Vec::new(),
        Err(err) => err
            .term_errors()
            .iter()
            .map(|e| (e.path.clone(), e.problem.clone()))
            .collect(),
    }
}

fn assert_reports(agreement: &Agreement, path: &str, problem: fn(&Problem) -> bool) {
    let found = problems(agreement);
    assert!(
        found.iter().any(|(p, pr)| p == path && problem(pr)),
        "{path} not reported in {found:?}"
    );
}

#[test]
fn typical_agreements_are_valid() {
    aggregate_agreement("air").validate().unwrap();
    raw_agreement("raw").validate().unwrap();
}

#[test]
fn each_bad_term_is_named() {
    let mut a = aggregate_agreement("air");
    a.min_bucket_s = None;
    assert_reports(&a, "min_bucket_s", |p| matches!(p, Problem::Required(_)));

    let mut a = aggregate_agreement("air");
    a.min_bucket_s = Some(0);
    assert_reports(&a, "min_bucket_s", |p| *p == Problem::Zero);

    let mut a = aggregate_agreement("air");
    a.k = 0;
    assert_reports(&a, "k", |p| *p == Problem::Zero);

    let mut a = aggregate_agreement("air");
    a.functions = TermSet::new();
    assert_reports(&a, "functions", |p| *p == Problem::Empty);

    let mut a = aggregate_agreement("air");
    a.purposes = TermSet::new();
    assert_reports(&a, "purposes", |p| *p == Problem::Empty);

    let mut a = aggregate_agreement("air");
    a.target = Target::default();
    assert_reports(&a, "target.metrics", |p| *p == Problem::Empty);

    let mut a = aggregate_agreement("air");
    a.not_after = a.not_before;
    assert_reports(&a, "not_after", |p| *p == Problem::EmptyWindow);
    a.not_after = at(-31 * 86_400);
    assert_reports(&a, "not_after", |p| *p == Problem::EmptyWindow);

    let mut a = aggregate_agreement("air");
    a.version = 0;
    assert_reports(&a, "version", |p| *p == Problem::Zero);
}

#[test]
fn contradictions_are_named() {
    let mut a = raw_agreement("raw");
    a.spatial_level = SpatialLevel::Zone;
    assert_reports(&a, "spatial_level", |p| {
        matches!(p, Problem::Contradiction(_))
    });

    let mut a = raw_agreement("raw");
    a.k = 3;
    assert_reports(&a, "k", |p| matches!(p, Problem::Contradiction(_)));

    let mut a = raw_agreement("raw");
    a.fields = TermSet::new();
    assert_reports(&a, "fields", |p| matches!(p, Problem::Required(_)));

    let mut a = raw_agreement("raw");
    a.fields.insert(Field::Gateway);
    assert_reports(&a, "fields", |p| matches!(p, Problem::Contradiction(_)));

    let mut a = aggregate_agreement("air");
    a.fields = TermSet::from([Field::Value]);
    assert_reports(&a, "fields", |p| matches!(p, Problem::Contradiction(_)));

    let mut a = aggregate_agreement("air");
    a.spatial_level = SpatialLevel::Sensor;
    assert_reports(&a, "k", |p| matches!(p, Problem::Contradiction(_)));

    let mut a = aggregate_agreement("air");
    a.prohibitions = vec![beffroi_policy::Prohibition {
        action: Action::ReadRaw,
        target: Target {
            tags: [crate::support::tag("school")].into(),
            ..Target::default()
        },
        unknown_terms: Default::default(),
    }];
    assert_reports(&a, "prohibitions[0].target.tags", |p| {
        matches!(p, Problem::Contradiction(_))
    });
    assert_reports(&a, "prohibitions[0].target.metrics", |p| {
        *p == Problem::Empty
    });
}

#[test]
fn all_problems_are_listed_in_one_error_with_paths() {
    let mut a = aggregate_agreement("air");
    a.k = 0;
    a.functions = TermSet::new();
    let message = a.validate().unwrap_err().to_string();
    assert!(
        message.contains("functions: must not be empty")
            && message.contains("k: must be at least 1"),
        "{message}"
    );
}
