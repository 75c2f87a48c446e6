//! Trust-anchor rollover: replacing the platform's root CA without cutting off a gateway.
//!
//! ```text
//!            published anchors      issuing CA        files in <data_dir>/pki
//! (steady)   old                    old               ca.*, issuing.*
//! begin      old + new              old               + next/ca.*, next/issuing.*, anchors.pem
//!   … wait at least one renewal period (2/3 of pki.certificate_lifetime_s): every agent
//!     renews and receives the new anchor in its answer …
//! complete   new + old              new               ca.*, issuing.* ← next/; old → previous/
//!   … wait one certificate lifetime: every gateway renews under the new root …
//! retire     new                    new               anchors.pem = ca.crt; previous/ kept, unpublished
//! ```
//!
//! The gate and the enrollment endpoint trust every published anchor (`anchors.pem`, else
//! `ca.crt`), and every enrollment and renewal answer carries them, so agents learn the new
//! root before anything depends on it. Each step changes files only: restart every node
//! after it (on `complete`, the gate's certificate is re-issued by the new issuing CA, so
//! enrollment tokens made before it carry a stale pin and must be made again).

use std::path::{Path, PathBuf};

use crate::pki::{io_error, Ca, PkiError};

/// The published anchors during a rollover.
pub const ANCHORS_FILE: &str = "anchors.pem";
/// Where `begin` puts the next root and issuing CA.
const NEXT_DIR: &str = "next";
/// Where `complete` moves the previous root and issuing CA.
const PREVIOUS_DIR: &str = "previous";
/// The CA files, moved together.
const CA_FILES: [&str; 4] = ["ca.crt", "ca.key", "issuing.crt", "issuing.key"];

/// A rollover step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum RolloverStep {
    /// Create the next root and issuing CA and publish the next root beside the current one.
    Begin,
    /// Issue from the next root from now on (both roots stay published).
    Complete,
    /// Stop publishing the previous root.
    Retire,
}

/// Why a step cannot run now.
fn out_of_order(reason: &str) -> PkiError {
    PkiError::Invalid {
        what: "trust-anchor rollover",
        reason: reason.to_owned(),
    }
}

/// Runs `step` on the PKI directory `dir` (the CA named `name` there); returns what to tell
/// the operator.
pub fn run(dir: &Path, name: &str, step: RolloverStep) -> Result<String, PkiError> {
    let (next, previous) = (dir.join(NEXT_DIR), dir.join(PREVIOUS_DIR));
    let anchors = dir.join(ANCHORS_FILE);
    match step {
        RolloverStep::Begin => {
            if next.exists() {
                return Err(out_of_order("a rollover is already begun: complete it"));
            }
            if anchors.exists() {
                return Err(out_of_order(
                    "the previous root is still published: retire it first",
                ));
            }
            // The current CA, created if this is the first start.
            let current = Ca::load_or_create(dir, name)?;
            let staging = dir.join("next.tmp");
            if staging.exists() {
                std::fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
            }
            // A distinct name, so that the two roots are told apart in logs and chains.
            let next_name = format!("{name} {}", time::OffsetDateTime::now_utc().date());
            let upcoming = Ca::load_or_create(&staging, &next_name)?;
            std::fs::rename(&staging, &next).map_err(io_error(&next))?;
            write_anchors(&anchors, &[current.cert_pem(), upcoming.cert_pem()])?;
            Ok(format!(
                "rollover begun: the next root is published beside the current one ({}). \
                 Restart every node, wait at least one renewal period (two thirds of \
                 pki.certificate_lifetime_s), then run `beffroi pki rollover complete`.",
                anchors.display()
            ))
        }
        RolloverStep::Complete => {
            if !next.exists() {
                return Err(out_of_order("no rollover is begun: run `begin` first"));
            }
            let current_root = read(&dir.join("ca.crt"))?;
            std::fs::create_dir_all(&previous).map_err(io_error(&previous))?;
            for file in CA_FILES {
                move_if_present(&dir.join(file), &previous.join(file))?;
            }
            for file in CA_FILES {
                move_if_present(&next.join(file), &dir.join(file))?;
            }
            std::fs::remove_dir(&next).map_err(io_error(&next))?;
            let new_root = read(&dir.join("ca.crt"))?;
            write_anchors(&anchors, &[&new_root, &current_root])?;
            Ok(format!(
                "rollover completed: certificates are issued under the new root, both roots \
                 stay published. Restart every node (the gate certificate is re-issued: make \
                 new enrollment tokens), wait one certificate lifetime, then run `beffroi pki \
                 rollover retire`. The previous CA is in {}.",
                previous.display()
            ))
        }
        RolloverStep::Retire => {
            if next.exists() {
                return Err(out_of_order("a rollover is begun: complete it first"));
            }
            if !anchors.exists() {
                return Err(out_of_order("no previous root is published"));
            }
            std::fs::remove_file(&anchors).map_err(io_error(&anchors))?;
            Ok(format!(
                "previous root retired: only {} is published. Restart every node; \
                 certificates under the previous root are refused from then on.",
                dir.join("ca.crt").display()
            ))
        }
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(io_error(path))
}

fn move_if_present(from: &Path, to: &PathBuf) -> Result<(), PkiError> {
    if from.exists() {
        std::fs::rename(from, to).map_err(io_error(from))?;
    }
    Ok(())
}

fn write_anchors(path: &Path, roots: &[&str]) -> Result<(), PkiError> {
    let text: String = roots
        .iter()
        .map(|pem| format!("{}\n", pem.trim_end()))
        .collect();
    std::fs::write(path, text).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use beffroi_protocol::{GatewayId, TenantId};
    use rcgen::KeyPair;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, UnixTime};
    use std::time::Duration;

    fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    /// A gateway chain issued by `ca` now.
    fn chain(ca: &Ca) -> Vec<CertificateDer<'static>> {
        let key = KeyPair::generate().unwrap();
        let issued = ca
            .issue_gateway(
                &TenantId::new("lyon").unwrap(),
                &GatewayId::new("gw-1").unwrap(),
                &key.public_key_pem(),
                Duration::from_secs(3600),
            )
            .unwrap();
        certs(&issued.cert_pem)
    }

    /// Whether the gate, trusting what `ca` publishes, accepts `chain` as a client.
    fn gate_accepts(ca: &Ca, chain: &[CertificateDer<'static>]) -> bool {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for anchor in certs(ca.cert_pem()) {
            roots.add(anchor).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        verifier
            .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn gateways_of_either_root_are_accepted_until_the_old_one_is_retired() {
        let dir = tempfile::tempdir().unwrap();
        let old = Ca::load_or_create(dir.path(), "test CA").unwrap();
        let old_chain = chain(&old);
        for step in [RolloverStep::Complete, RolloverStep::Retire] {
            assert!(
                run(dir.path(), "test CA", step).is_err(),
                "{step:?} before begin"
            );
        }

        run(dir.path(), "test CA", RolloverStep::Begin).unwrap();
        assert!(run(dir.path(), "test CA", RolloverStep::Begin).is_err());
        let begun = Ca::load_or_create(dir.path(), "test CA").unwrap();
        assert_eq!(certs(begun.cert_pem()).len(), 2);
        // Still issued by the old issuing CA, accepted.
        let still_old = chain(&begun);
        assert_eq!(still_old[1], old_chain[1]);
        assert!(gate_accepts(&begun, &old_chain) && gate_accepts(&begun, &still_old));

        run(dir.path(), "test CA", RolloverStep::Complete).unwrap();
        let completed = Ca::load_or_create(dir.path(), "test CA").unwrap();
        let new_chain = chain(&completed);
        assert_ne!(new_chain[1], old_chain[1]);
        assert_eq!(certs(completed.cert_pem()).len(), 2);
        assert!(gate_accepts(&completed, &old_chain) && gate_accepts(&completed, &new_chain));
        assert!(
            !gate_accepts(&old, &new_chain),
            "the old root alone does not know it"
        );

        run(dir.path(), "test CA", RolloverStep::Retire).unwrap();
        let retired = Ca::load_or_create(dir.path(), "test CA").unwrap();
        assert_eq!(certs(retired.cert_pem()).len(), 1);
        assert!(gate_accepts(&retired, &new_chain));
        assert!(!gate_accepts(&retired, &old_chain));
        assert!(run(dir.path(), "test CA", RolloverStep::Retire).is_err());
        // And the next rollover can begin.
        run(dir.path(), "test CA", RolloverStep::Begin).unwrap();
    }
}
