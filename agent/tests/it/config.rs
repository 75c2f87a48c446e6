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

#[test]
fn shipped_example_is_valid() {
    let config = Config::from_toml(EXAMPLE, Path::new("/etc/beffroi-agent")).unwrap();
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
    for (from, to, field) in cases {
        assert!(EXAMPLE.contains(from), "example lacks {from:?}");
        let error = error_of(&EXAMPLE.replacen(from, to, 1));
        assert!(error.contains(field), "{to:?}: {error}");
    }
}

#[test]
fn a_config_without_sources_is_refused() {
    let cut = EXAMPLE.find("[[sources]]").unwrap();
    let error = error_of(&EXAMPLE[..cut]);
    assert!(error.contains("sources"), "{error}");
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
