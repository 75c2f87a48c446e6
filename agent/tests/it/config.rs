//! Configuration: the shipped example stays valid, and every mistake names its field.

use std::path::Path;

use beffroi_agent::config::ConfigError;
use beffroi_agent::Config;

const EXAMPLE: &str = include_str!("../../../deploy/agent/agent.toml");

fn error_of(toml: &str) -> String {
    match Config::from_toml(toml, Path::new("/etc/beffroi-agent")) {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(error) => error.to_string(),
    }
}

/// The shipped file with its commented-out example sources enabled: their lines start with a
/// `#` right before the key (explanations and optional keys have `# `).
fn with_examples(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c == '[' || c.is_ascii_lowercase()) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn shipped_example_runs_no_source_until_one_is_chosen() {
    let config = Config::from_toml(EXAMPLE, Path::new("/etc/beffroi-agent")).unwrap();
    assert!(
        config.sources.is_empty(),
        "a fresh gateway sends no example readings"
    );
}

#[test]
fn shipped_example_is_valid() {
    let config =
        Config::from_toml(&with_examples(EXAMPLE), Path::new("/etc/beffroi-agent")).unwrap();
    assert_eq!(config.identity.tenant.as_str(), "lyon");
    assert_eq!(config.sources.len(), 3);
    assert_eq!(config.spool.spool.max_bytes, 256 << 20);
    assert_eq!(
        config.sources[1].name(),
        "jsonl",
        "sources keep their order"
    );
}

#[test]
fn errors_name_the_field() {
    let cases = [
        ("tenant = \"lyon\"", "tenant = \"Lyon!\"", "identity.tenant"),
        (
            "max_readings = 1000",
            "max_readings = 0",
            "batch.max_readings",
        ),
        (
            "max_readings = 1000",
            "max_readings = 5001",
            "batch.max_readings",
        ),
        (
            "keep_alive_s = 30 ",
            "keep_alive_s = 1 ",
            "uplink.keep_alive_s",
        ),
        (
            "backoff_max_ms = 60000",
            "backoff_max_ms = 10",
            "uplink.backoff_max_ms",
        ),
        (
            "max_bytes = \"256 MiB\"",
            "max_bytes = \"12 parsecs\"",
            "max_bytes",
        ),
        ("max_bytes = \"256 MiB\"", "max_bytes = 1000", "spool"),
        (
            "rate_per_s = 10.0",
            "rate_per_s = -1.0",
            "sources[0].rate_per_s",
        ),
        ("interval_s = 30", "interval_s = 0", "health.interval_s"),
        ("port = 8883", "port = 8883\nportt = 1", "portt"),
    ];
    let example = with_examples(EXAMPLE);
    for (from, to, field) in cases {
        assert!(example.contains(from), "example lacks {from:?}");
        let error = error_of(&example.replacen(from, to, 1));
        assert!(error.contains(field), "{to:?}: {error}");
    }
}

/// The example with its `[enrollment]` section uncommented.
fn with_enrollment() -> String {
    let start = EXAMPLE.find("# [enrollment]").unwrap();
    let end = EXAMPLE.find("# Sources:").unwrap();
    let section: String = EXAMPLE[start..end]
        .lines()
        .filter(|line| !line.starts_with("#  "))
        .map(|line| format!("{}\n", line.trim_start_matches("# ")))
        .collect();
    format!("{}{section}{}", &EXAMPLE[..start], &EXAMPLE[end..])
}

#[test]
fn the_enrollment_section_is_valid_and_checked() {
    let config = Config::from_toml(&with_enrollment(), Path::new("/etc/beffroi-agent")).unwrap();
    let enrollment = config.enrollment.unwrap();
    assert_eq!(enrollment.endpoint.host(), "beffroi.example.org");
    assert_eq!(enrollment.rotate_signing_key_after, None);
    assert_eq!(enrollment.retry_max.as_secs(), 300);
    let cases = [
        (
            "url = \"https://beffroi.example.org:8443\"",
            "url = \"http://x\"",
            "enrollment.url",
        ),
        ("renew_at = 0.667", "renew_at = 1.5", "enrollment.renew_at"),
        (
            "retry_max_ms = 300000",
            "retry_max_ms = 10",
            "enrollment.retry_max_ms",
        ),
        (
            "request_timeout_s = 30",
            "request_timeout_s = 0",
            "enrollment.request_timeout_s",
        ),
        ("renew_at = 0.667", "renew_at = 0.667\nrenew = 1", "renew"),
    ];
    let text = with_enrollment();
    for (from, to, field) in cases {
        assert!(text.contains(from), "example lacks {from:?}");
        let error = error_of(&text.replacen(from, to, 1));
        assert!(error.contains(field), "{to:?}: {error}");
    }
}

#[test]
fn relative_paths_resolve_from_the_config_directory() {
    let toml = EXAMPLE.replacen(
        "signing_key = \"/var/lib/beffroi-agent/signing.key\"",
        "signing_key = \"keys/signing.key\"",
        1,
    );
    let config = Config::from_toml(&toml, Path::new("/srv/gw")).unwrap();
    assert_eq!(
        config.identity.signing_key,
        Path::new("/srv/gw/keys/signing.key")
    );
}

#[test]
fn a_missing_file_is_a_read_error() {
    let error = Config::load(Path::new("/nonexistent/agent.toml")).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }), "{error}");
}
