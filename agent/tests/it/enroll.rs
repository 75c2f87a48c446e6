//! `beffroi-agent enroll` against a test double of the platform's enrollment API, over real
//! TLS: files and modes, the config it writes, the pin, and the platform's refusals.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use beffroi_agent::enroll::https::HttpsError;
use beffroi_agent::enroll::{
    self, ConfigOutcome, Endpoint, EnrollError, EnrollOptions, EnrollmentToken,
};
use beffroi_agent::keys::{self, KeyError};
use beffroi_agent::Config;

use crate::platform_double::Platform;

pub fn options(platform: &Platform, dir: &Path, token: &str) -> EnrollOptions {
    EnrollOptions {
        endpoint: Endpoint::parse(&platform.url).unwrap(),
        token: token.parse::<EnrollmentToken>().unwrap(),
        config: dir.join("etc/agent.toml"),
        state_dir: dir.join("state"),
        tenant: None,
        gateway: None,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn agent_command(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_beffroi-agent"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn enroll_writes_private_keys_and_a_config_that_runs() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = options(&platform, dir.path(), &platform.token("lyon", "gw-42"));
    let enrolled = enroll::enroll(&options).await.unwrap();
    assert_eq!(
        (enrolled.tenant.as_str(), enrolled.gateway.as_str()),
        ("lyon", "gw-42")
    );
    assert_eq!(enrolled.config_outcome, ConfigOutcome::Created);

    let state = dir.path().join("state");
    assert_eq!(mode(&state), 0o700);
    assert_eq!(
        listing(&state),
        ["ca.crt", "signing.key", "tls.crt", "tls.key"]
    );
    assert_eq!(mode(&state.join("signing.key")), 0o600);
    assert_eq!(mode(&state.join("tls.key")), 0o600);
    let key = keys::load_signing_key(&state.join("signing.key")).unwrap();
    let key_id = beffroi_protocol::key_id_for(&key.verifying_key()).to_string();
    assert_eq!(enrolled.key_id, key_id);
    assert_eq!(platform.current_key("gw-42"), Some(key_id));

    let config = Config::load(&options.config).unwrap();
    assert_eq!(config.identity.tenant.as_str(), "lyon");
    assert_eq!(config.uplink.host, "localhost");
    assert_eq!(config.uplink.private_key, state.join("tls.key"));
    assert_eq!(config.spool.dir, state.join("spool"));
    assert!(config.sources.is_empty());
    let renewal = config.enrollment.unwrap();
    assert_eq!(renewal.endpoint, options.endpoint);
    assert!((renewal.renew_at - 0.667).abs() < 1e-9);

    let text = std::fs::read_to_string(&options.config).unwrap();
    assert!(text.contains("# [[sources]]"), "{text}");
    let output = agent_command(&["check-config", "--config", options.config.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("tenant lyon gateway gw-42"), "{stdout}");
}

#[tokio::test]
async fn enroll_updates_an_existing_config_and_keeps_the_rest() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = options(
        &platform,
        dir.path(),
        &platform.token("lyon", "gw-part-dieu-01"),
    );
    std::fs::create_dir_all(options.config.parent().unwrap()).unwrap();
    let example = include_str!("../../../deploy/agent/agent.toml");
    std::fs::write(&options.config, example).unwrap();
    std::fs::set_permissions(&options.config, std::fs::Permissions::from_mode(0o640)).unwrap();

    let enrolled = enroll::enroll(&options).await.unwrap();
    assert_eq!(enrolled.config_outcome, ConfigOutcome::Updated);
    assert_eq!(mode(&options.config), 0o640, "the file's mode was not kept");
    let text = std::fs::read_to_string(&options.config).unwrap();
    for kept in [
        "# Synthetic city sensors",
        "max_linger_ms = 1000       # longest a reading waits",
        "dir = \"/var/lib/beffroi-agent/spool\"",
        "pm25 = { metric = \"air.pm25\", unit = \"ug/m3\" }",
    ] {
        assert!(text.contains(kept), "lost {kept:?}:\n{text}");
    }
    let config = Config::from_toml(&text, Path::new("/etc/beffroi-agent")).unwrap();
    assert!(config.sources.is_empty(), "the examples stay commented out");
    assert_eq!(config.uplink.host, "localhost");
    assert_eq!(config.uplink.certificate, dir.path().join("state/tls.crt"));
    assert_eq!(
        config.identity.signing_key,
        dir.path().join("state/signing.key")
    );
    assert_eq!(
        config.enrollment.unwrap().endpoint.to_string(),
        platform.url,
        "the [enrollment] url is added"
    );
}

#[tokio::test]
async fn a_config_naming_another_tenant_is_refused_by_the_platform() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = options(&platform, dir.path(), &platform.token("lyon", "gw-1"));
    std::fs::create_dir_all(options.config.parent().unwrap()).unwrap();
    std::fs::write(
        &options.config,
        "[identity]\ntenant = \"grenoble\"\ngateway = \"gw-1\"\n",
    )
    .unwrap();
    let error = enroll::enroll(&options).await.unwrap_err();
    assert!(
        matches!(&error, EnrollError::Platform { status: 403, code, .. } if code == "token_mismatch"),
        "{error}"
    );
    assert!(
        listing(&dir.path().join("state")).is_empty(),
        "staged keys left behind"
    );

    let mut conflicting = options.clone();
    conflicting.tenant = Some("lyon".into());
    let error = enroll::enroll(&conflicting).await.unwrap_err();
    assert!(
        matches!(
            error,
            EnrollError::Conflict {
                field: "tenant",
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_wrong_pin_is_refused_before_anything_is_sent() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = platform.token("lyon", "gw-1");
    let wrong = format!("{}{}", &token[..token.len() - 64], "ab".repeat(32));
    let config = dir.path().join("agent.toml");
    let state = dir.path().join("state");
    let output = tokio::task::spawn_blocking({
        let (url, config, state) = (platform.url.clone(), config.clone(), state.clone());
        move || {
            agent_command(&[
                "enroll",
                "--url",
                &url,
                "--token",
                &wrong,
                "--config",
                config.to_str().unwrap(),
                "--state-dir",
                state.to_str().unwrap(),
            ])
        }
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not match the token's pin"),
        "{stderr}"
    );
    assert!(stderr.contains(&hex::encode(platform.pin)), "{stderr}");
    assert_eq!(platform.requests(), 0, "the platform saw a request");
    assert!(!state.exists() && !config.exists(), "something was written");
}

#[tokio::test]
async fn platform_refusals_are_reported_with_their_code() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = platform.token("lyon", "gw-1");
    enroll::enroll(&options(&platform, dir.path(), &token))
        .await
        .unwrap();

    let expired = platform.expired_token("lyon", "gw-2");
    let unknown = format!("bfe1.{}.{}", "A".repeat(43), hex::encode(platform.pin));
    for (token, status, code) in [
        (&token, 401, "token_used"),
        (&expired, 401, "token_expired"),
        (&unknown, 401, "token_unknown"),
    ] {
        let other = tempfile::tempdir().unwrap();
        let error = enroll::enroll(&options(&platform, other.path(), token))
            .await
            .unwrap_err();
        match &error {
            EnrollError::Platform {
                status: s, code: c, ..
            } => assert_eq!((*s, c.as_str()), (status, code)),
            other => panic!("{code}: {other}"),
        }
        let message = error.to_string();
        assert!(
            message.contains(code) && message.contains(&status.to_string()),
            "{message}"
        );
        assert!(!other.path().join("etc/agent.toml").exists());
    }

    // Through the command: the code on standard error and a failure status.
    let other = tempfile::tempdir().unwrap();
    let token_file = other.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let state: PathBuf = other.path().join("state");
    let url = platform.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        agent_command(&[
            "enroll",
            "--url",
            &url,
            "--token-file",
            token_file.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--config",
            "/nonexistent-dir/agent.toml",
        ])
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("token_used (HTTP 401)"), "{stderr}");
}

#[tokio::test]
async fn key_files_readable_by_others_are_refused() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("tls.key"), "old key").unwrap();
    std::fs::set_permissions(
        state.join("tls.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let error = enroll::enroll(&options(
        &platform,
        dir.path(),
        &platform.token("lyon", "gw-1"),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            EnrollError::Key(KeyError::Permissions { mode: 0o644, .. })
        ),
        "{error}"
    );
    assert_eq!(platform.requests(), 0);
}

#[tokio::test]
async fn a_silent_server_times_out_and_a_huge_answer_is_cut() {
    // Accepts TCP, never speaks TLS.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(&platform, dir.path(), &platform.token("lyon", "gw-1"));
    options.endpoint = Endpoint::parse(&format!("https://localhost:{port}")).unwrap();
    options.connect_timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let error = enroll::enroll(&options).await.unwrap_err();
    assert!(
        matches!(error, EnrollError::Https(HttpsError::Timeout(..))),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    holder.abort();

    platform
        .state
        .oversize_answers
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let options = self::options(&platform, dir.path(), &platform.token("lyon", "gw-1"));
    let error = enroll::enroll(&options).await.unwrap_err();
    assert!(
        matches!(error, EnrollError::Https(HttpsError::AnswerTooLarge)),
        "{error}"
    );
    assert!(listing(&dir.path().join("state")).is_empty());
    assert!(!options.config.exists());
}
