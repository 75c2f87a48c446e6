//! The migration sets are forward-only and released migrations never change.
//!
//! Both backends number their migrations 1, 2, 3… with the same names, except the versions
//! only one backend needs ([`ONE_BACKEND_ONLY`]); none is reversible (no `.down.sql`). A
//! released migration keeps its checksum forever: sqlx records it when it applies the file and
//! refuses to open a database whose applied migration has changed (see
//! `upgrade::a_changed_migration_is_refused`), so a fix to a released migration is a new one.

use std::collections::BTreeSet;

use sqlx::migrate::{MigrationType, Migrator};

/// The migrations each store embeds, as it embeds them.
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Versions only one backend has: (version, the backend that has it, why).
const ONE_BACKEND_ONLY: &[(i64, &str, &str)] = &[(
    6,
    "postgres",
    "the backlog of TimescaleDB's continuous aggregates; SQLite has none",
)];

/// Released migrations: (version, SHA-384 on PostgreSQL, on SQLite). Up to 0008, the
/// gateway-identity release.
const RELEASED: &[(i64, &str, Option<&str>)] = &[
    (1, "554c1d68eae44236faab8674a9250d39730e0447e241bd1c6dfb36ac582523a56e8d1504b838c531b2c1619345a54139", Some("d78f27348cbde0ecf8528da6d554d2ffdcb7b6b9d3fe79d97f19a58f41a545db1b4969b07ec05e6d73ef1df8b0d0a3e8")),
    (2, "5bc609004c882809bcc8287805582f8416cdcc8e5dd32e9ea77a6e58b644849f5fd5d60110463949f20cc5b0946c99a1", Some("410d65a39b0c5aad48b3bd40a18ae6cb57f87bfda1ec2eaa344158b0e8c8c89eb1a7abfdbff7549938172cac69c7a992")),
    (3, "14503eadab2eb7d27aa3001272fee198dc4b469e57a64cebd1f07974d586634e370708fe2ed4e0eaeb1c67f5becf84a2", Some("c879ec705e95984da1a7a1775bb8d19ad236df0591607d700568341e49291081202f982c40e1e44303ccc2d1b1afb447")),
    (4, "35e25770ed8fbc664cceee834eb0c9ec5657d65cfe8718aced7fc01c06be75e5a80a002196bc066c66e18689fe6f3549", Some("f43f622f38381d71381ca78703227c7cf51cdc3c31114c56620d5f0573ed565fd412aadf897b7c00e53799044403c3f4")),
    (5, "b41e7318729b2a238761c9beda0a06f0da4d8a5dc31315cae782c02cf5d12188bedc071fbe6e9215b660176da0828227", Some("1f9b5ff239ceaefb6f792cf1d7e15f2d73426ce2b18ff4e00cf2eb4161619600903b790dba7cf909d1622882c5dfa630")),
    (6, "b5594918f236f58ad0d4cc4611f6c860de92d4944787c1826b2f23016b492a0364bb3cddb4b04fcb71472179ab469332", None),
    (7, "11e4a1d96c509aeba76b7399a68c7c9a753739136bdec270c92fc0d3349faa7995bcb4a379d1255fb066bb3a8120d21d", Some("5271d18e4725dc191596e19549b543faea2965d74544dbef034d2ff42c793f32ee8655cf390846b84ef184b230e7492a")),
    (8, "dac776a37a274693992a8a199ef0aa3890b3fae395cf1d3205440932fe4fcec8a1385ce33a6f9a5a300e1d17f66364a1", Some("3d917e9cf81169bd4cf0b0c138025ce4cd1b2272ef08a3f585b5095132907bb9508ef210df0a0ef071cd209be3c6493f")),
];

fn versions(migrator: &Migrator) -> BTreeSet<i64> {
    migrator.iter().map(|m| m.version).collect()
}

fn checksum(migrator: &Migrator, version: i64) -> Option<String> {
    migrator
        .iter()
        .find(|m| m.version == version)
        .map(|m| hex::encode(&m.checksum))
}

#[test]
fn versions_are_consecutive_and_shared_by_both_backends() {
    for (backend, migrator) in [("postgres", &POSTGRES), ("sqlite", &SQLITE)] {
        for m in migrator.iter() {
            assert_eq!(
                m.migration_type,
                MigrationType::Simple,
                "{backend} migration {}: migrations are forward-only, without a down script",
                m.version
            );
        }
    }
    let postgres = versions(&POSTGRES);
    let sqlite = versions(&SQLITE);
    let all: BTreeSet<i64> = postgres.union(&sqlite).copied().collect();
    let last = all.last().copied().unwrap_or_default();
    assert!(last >= 8, "the released migrations are missing: {all:?}");
    let expected: BTreeSet<i64> = (1..=last).collect();
    assert_eq!(
        all, expected,
        "migration versions must follow each other with no gap"
    );
    for version in all {
        let only = ONE_BACKEND_ONLY.iter().find(|(v, _, _)| *v == version);
        let has = (postgres.contains(&version), sqlite.contains(&version));
        match only {
            Some((_, "postgres", _)) => assert_eq!(has, (true, false), "migration {version}"),
            Some((_, backend, _)) => {
                assert_eq!(has, (false, true), "migration {version} ({backend})")
            }
            None => {
                assert_eq!(
                    has,
                    (true, true),
                    "migration {version} must exist on both backends"
                );
                let name = |m: &Migrator| {
                    m.iter()
                        .find(|m| m.version == version)
                        .map(|m| m.description.to_string())
                };
                assert_eq!(name(&POSTGRES), name(&SQLITE), "migration {version}'s name");
            }
        }
    }
}

#[test]
fn released_migrations_never_change() {
    for &(version, postgres, sqlite) in RELEASED {
        for (backend, migrator, expected) in [
            ("postgres", &POSTGRES, Some(postgres)),
            ("sqlite", &SQLITE, sqlite),
        ] {
            assert_eq!(
                checksum(migrator, version).as_deref(),
                expected,
                "{backend} migration {version} was released and has changed: databases that \
                 applied it would refuse to start. Migrations are forward-only: undo the edit \
                 and add a new migration"
            );
        }
    }
}
