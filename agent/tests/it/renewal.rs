//! Certificate renewal and signing-key rotation against the platform double, over mutual
//! TLS with the certificate the previous enrollment or renewal issued.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beffroi_agent::batcher::Sealer;
use beffroi_agent::enroll::{self, csr, renewal, EnrollError};
use beffroi_agent::keys;
use beffroi_agent::signer_slot::SignerSlot;
use beffroi_agent::telemetry::{Counter, Telemetry};
use beffroi_agent::uplink::tls;
use beffroi_agent::Config;
use beffroi_protocol::{key_id_for, Opened, Reading, Signer, Timestamp, Topic};
use beffroi_spool::{Spool, SpoolConfig};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::enroll::options;
use crate::platform_double::{Platform, RegisteredKey};

/// Enrolls `gw-1` of `lyon` with certificates of `lifetime`, renewal retries every 50 ms.
async fn enrolled(platform: &Platform, dir: &Path, lifetime: Duration) -> Config {
    platform.set_lifetime(lifetime);
    let options = options(platform, dir, &platform.token("lyon", "gw-1"));
    enroll::enroll(&options).await.unwrap();
    let text = std::fs::read_to_string(&options.config).unwrap();
    let text = text.replacen(
        "[enrollment]\n",
        "[enrollment]\nretry_initial_ms = 50\nretry_max_ms = 200\n",
        1,
    );
    std::fs::write(&options.config, text).unwrap();
    Config::load(&options.config).unwrap()
}

struct Running {
    slot: Arc<SignerSlot>,
    telemetry: Arc<Telemetry>,
    tls: watch::Receiver<Arc<rustls::ClientConfig>>,
    renewal: renewal::Renewal,
}

fn renewal_for(config: &Config) -> Running {
    let key = keys::load_signing_key(&config.identity.signing_key).unwrap();
    let slot = Arc::new(SignerSlot::new(Signer::new(key)));
    let telemetry = Arc::new(Telemetry::default());
    let (updates, tls) = watch::channel(tls::client_config(&config.uplink).unwrap());
    let renewal = renewal::Renewal::new(
        config,
        config.enrollment.clone().unwrap(),
        slot.clone(),
        updates,
        telemetry.clone(),
    );
    Running {
        slot,
        telemetry,
        tls,
        renewal,
    }
}

/// The certificate on disk, after checking that it certifies the key on disk.
fn installed_certificate(config: &Config) -> Vec<u8> {
    let chain = std::fs::read(&config.uplink.certificate).unwrap();
    let key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(&config.uplink.private_key).unwrap())
            .unwrap();
    assert_eq!(
        csr::leaf(&chain).unwrap().public_key,
        key.public_key_raw(),
        "tls.crt and tls.key out of step"
    );
    chain
}

#[tokio::test]
async fn status_warns_when_a_certificate_was_not_renewed_in_time() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = enrolled(&platform, dir.path(), Duration::from_secs(600)).await;
    let leaf = csr::leaf(&installed_certificate(&config)).unwrap();
    // Renewal is due at 2/3 of the lifetime; the warning starts at 5/6 (0.833…).
    for (fraction, overdue) in [
        (0.1, false),
        (0.7, false),
        (0.82, false),
        (0.84, true),
        (0.99, true),
    ] {
        let now = Timestamp::from(leaf.validity.at_fraction(fraction));
        let report = beffroi_agent::status::report::gather(&config, now);
        assert_eq!(
            report.certificate.renewal_overdue, overdue,
            "at {fraction} of the lifetime: {:?}",
            report.certificate
        );
        let text = report.text(now);
        assert_eq!(
            text.contains("WARNING: not renewed at two thirds of its lifetime"),
            overdue,
            "at {fraction} of the lifetime:\n{text}"
        );
    }
}

fn pending_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".new") || name.starts_with(".beffroi-"))
        .collect()
}

#[tokio::test]
async fn renewals_repeat_within_short_lifetimes_and_replace_the_uplink_tls() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = enrolled(&platform, dir.path(), Duration::from_secs(2)).await;
    platform
        .state
        .fail_renewals
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let Running {
        telemetry,
        mut tls,
        renewal,
        ..
    } = renewal_for(&config);
    let stop = CancellationToken::new();
    let task = tokio::spawn(renewal.run(stop.clone()));

    let mut certificates = HashSet::from([installed_certificate(&config)]);
    let mut configs = vec![tls.borrow_and_update().clone()];
    for round in 0..3 {
        tokio::time::timeout(Duration::from_secs(5), tls.changed())
            .await
            .unwrap_or_else(|_| panic!("no renewal {round} within 5 s"))
            .unwrap();
        let config_now = tls.borrow_and_update().clone();
        assert!(
            configs.iter().all(|seen| !Arc::ptr_eq(seen, &config_now)),
            "the uplink got its old TLS configuration again"
        );
        configs.push(config_now);
        assert!(
            certificates.insert(installed_certificate(&config)),
            "renewal {round} left the certificate unchanged"
        );
    }
    stop.cancel();
    task.await.unwrap();
    assert!(telemetry.get(Counter::Renewals) >= 3);
    assert!(
        telemetry.get(Counter::RenewalFailures) >= 1,
        "the 503 was not counted"
    );
    assert!(
        platform
            .state
            .renewals
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 3
    );
    assert!(pending_files(&dir.path().join("state")).is_empty());
}

fn reading(i: u32) -> Reading {
    serde_json::from_value(serde_json::json!({
        "sensor": "s-1",
        "metric": "air.pm25",
        "unit": "ug/m3",
        "time": Timestamp::now().to_string(),
        "value": f64::from(i),
    }))
    .unwrap()
}

#[tokio::test]
async fn rotation_swaps_the_signer_and_spooled_batches_keep_their_signature() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = enrolled(&platform, dir.path(), Duration::from_secs(3600)).await;
    let running = renewal_for(&config);
    let (spool, _) = Spool::open(dir.path().join("spool"), SpoolConfig::default()).unwrap();
    let spool = Arc::new(Mutex::new(spool));
    let sealer = Sealer::new(
        config.identity.tenant.clone(),
        config.identity.gateway.clone(),
        running.slot.clone(),
        spool.clone(),
        Arc::new(Telemetry::default()),
        Arc::new(Notify::new()),
    );
    let old = running.slot.current();
    let before = sealer.seal(vec![reading(1)]).unwrap();

    let new_key = renewal::prepare_rotation(&config.identity.signing_key).unwrap();
    let new_id = key_id_for(&new_key.verifying_key()).to_string();
    let renewed = running.renewal.renew_once().await.unwrap();
    assert_eq!(renewed.rotated_to.as_deref(), Some(new_id.as_str()));
    assert_eq!(running.slot.current().key_id().as_str(), new_id);
    assert_eq!(
        platform.current_key("gw-1").as_deref(),
        Some(new_id.as_str())
    );
    let on_disk = keys::load_signing_key(&config.identity.signing_key).unwrap();
    assert_eq!(key_id_for(&on_disk.verifying_key()).to_string(), new_id);
    assert_eq!(running.telemetry.get(Counter::KeyRotations), 1);
    let after = sealer.seal(vec![reading(2)]).unwrap();

    let topic = Topic::batch(&config.identity.tenant, &config.identity.gateway);
    let spooled = |seq| {
        let envelope = spool.lock().unwrap().read(seq).unwrap().unwrap();
        Opened::parse(&envelope).unwrap()
    };
    let first = spooled(before);
    assert_eq!(first.key_id(), old.key_id());
    first.verify_batch(&topic, &old.verifying_key()).unwrap();
    let second = spooled(after);
    assert_eq!(second.key_id().as_str(), new_id);
    second
        .verify_batch(&topic, &new_key.verifying_key())
        .unwrap();

    let again = running.renewal.renew_once().await.unwrap();
    assert_eq!(again.rotated_to, None, "rotated twice");
    assert_eq!(running.slot.current().key_id().as_str(), new_id);
    assert!(pending_files(&dir.path().join("state")).is_empty());
}

#[tokio::test]
async fn an_interrupted_rotation_installs_the_key_the_platform_registered() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = enrolled(&platform, dir.path(), Duration::from_secs(3600)).await;
    let running = renewal_for(&config);
    let new_key = renewal::prepare_rotation(&config.identity.signing_key).unwrap();
    let new_id = key_id_for(&new_key.verifying_key()).to_string();
    // The platform registered it, but the agent stopped before installing it.
    platform.state.keys.lock().unwrap().push(RegisteredKey {
        key_id: new_id.clone(),
        gateway: "gw-1".into(),
        retired: false,
    });
    let error = running.renewal.renew_once().await.unwrap_err();
    assert!(matches!(error, EnrollError::InterruptedRotation), "{error}");
    assert_eq!(running.slot.current().key_id().as_str(), new_id);
    let renewed = running.renewal.renew_once().await.unwrap();
    assert_eq!(renewed.rotated_to, None);
}

#[tokio::test]
async fn rotate_key_prepares_one_rotation_at_a_time() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    enrolled(&platform, dir.path(), Duration::from_secs(3600)).await;
    let config = dir.path().join("etc/agent.toml");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_beffroi-agent"))
            .args(["rotate-key", "--config", config.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("rotation prepared"));
    let pending = dir.path().join("state/signing.key.new");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&pending).unwrap().permissions()
        ) & 0o777,
        0o600
    );
    let second = run();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already pending"));
}

#[tokio::test]
async fn a_running_agent_renews_its_certificate_by_itself() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = enrolled(&platform, dir.path(), Duration::from_secs(2)).await;
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_beffroi-agent"))
        .args(["run", "--config"])
        .arg(dir.path().join("etc/agent.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut certificates = HashSet::from([installed_certificate(&config)]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while certificates.len() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A renewal may be between its two renames right now: read only a settled pair.
        if !pending_files(&dir.path().join("state")).is_empty() {
            continue;
        }
        if let Ok(chain) = std::fs::read(&config.uplink.certificate) {
            certificates.insert(chain);
        }
    }
    agent.kill().unwrap();
    agent.wait().unwrap();
    assert!(
        certificates.len() >= 3,
        "{} certificates in 8 s",
        certificates.len()
    );
    // Killed at any point, the pair on disk is consistent once recovered (as `run` does).
    renewal::identity_files(&config).tls.recover().unwrap();
    installed_certificate(&config);
    assert!(
        platform
            .state
            .renewals
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 2
    );
}
