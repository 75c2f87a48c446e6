//! The agent's Debian package (issue #10), installed for real with dpkg on this machine:
//! install, upgrade with the gateway's keys, spool and edited configuration kept, remove
//! (state kept) and purge (state, configuration and service user gone).
//!
//! Both packages are made by cargo-deb from the debug binary the suite already built
//! (`cargo build --workspace --bins`), so no release build runs here. Needs root, cargo-deb
//! (`tests/run` installs it), dpkg and systemd-analyze: without them the test is skipped with
//! a notice, except in CI (`CI` set) where it fails. It takes a machine-wide lock, so two runs
//! on one machine take turns, and purges the package when it ends, even on failure.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::Context as _;
use beffroi_tests::agent::agent_binary;

const PACKAGE: &str = "beffroi-agent";
const STATE_DIR: &str = "/var/lib/beffroi-agent";
const CONFFILE: &str = "/etc/beffroi-agent/agent.toml";
const BINARY: &str = "/usr/bin/beffroi-agent";
const UNIT: &str = "/usr/lib/systemd/system/beffroi-agent.service";
/// Held while the package is on this machine: other runs of this test wait for it.
const LOCK: &str = "/run/lock/beffroi-agent-package-test.lock";
/// Highest `systemd-analyze security` exposure accepted, in tenths (the unit scores 1.8).
const MAX_EXPOSURE: &str = "25";

fn run(program: &str, args: &[&str]) -> anyhow::Result<Output> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program} {args:?}"))
}

/// Runs a command that must succeed; returns its standard output.
fn ok(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = run(program, args)?;
    anyhow::ensure!(
        output.status.success(),
        "{program} {args:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn found(program: &str, args: &[&str]) -> bool {
    run(program, args).is_ok_and(|o| o.status.success())
}

/// Why this machine cannot run the test, if it cannot.
fn missing_prerequisite() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        });
    if uid.as_deref() != Some("0") {
        return Some("not running as root".into());
    }
    let tools = [
        ("cargo-deb", &["deb", "--version"][..], "cargo"),
        ("dpkg", &["--version"][..], "dpkg"),
        ("systemd-analyze", &["--version"][..], "systemd-analyze"),
    ];
    tools
        .iter()
        .find(|(_, args, program)| !found(program, args))
        .map(|(name, _, _)| format!("{name} is missing"))
}

/// Purges the package when dropped, so a failing test leaves nothing installed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if let Err(error) = ok("dpkg", &["--purge", PACKAGE]) {
            eprintln!("cleanup: {error:#}");
        }
    }
}

fn is_installed() -> bool {
    run("dpkg-query", &["-W", "-f=${Status}", PACKAGE])
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn version() -> anyhow::Result<String> {
    ok("dpkg-query", &["-W", "-f=${Version}", PACKAGE])
}

/// Builds the package at `version` into `out` from the suite's debug binary.
fn build_deb(version: &str, out: &Path) -> anyhow::Result<PathBuf> {
    let binary = agent_binary()?;
    // cargo-deb finds `target/release/beffroi-agent` (the asset) under CARGO_TARGET_DIR for
    // the profile asked: `--profile dev` is `<target>/debug`, the suite's binary. cargo-deb
    // warns that dev profiles are unsupported; its version is pinned in tests/run.
    let target = binary
        .parent()
        .and_then(Path::parent)
        .context("the agent binary is not in <target>/debug")?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let file = out.join(format!("{PACKAGE}_{version}.deb"));
    let output = Command::new("cargo")
        .args(["deb", "-p", PACKAGE, "--no-build", "--profile", "dev"])
        // The debug binary as it is: quick gzip instead of xz, no stripping.
        .args([
            "--no-strip",
            "--no-dbgsym",
            "--fast",
            "--compress-system",
            "-Z",
            "gz",
        ])
        .args(["--deb-version", version, "--output"])
        .arg(&file)
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", target)
        .stdin(Stdio::null())
        .output()
        .context("running cargo deb")?;
    anyhow::ensure!(
        output.status.success(),
        "cargo deb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(file)
}

fn mode(path: &str) -> anyhow::Result<(u32, u32)> {
    let meta = std::fs::metadata(path).with_context(|| path.to_owned())?;
    Ok((meta.mode() & 0o7777, meta.uid()))
}

fn uid_of(user: &str) -> anyhow::Result<u32> {
    let entry = ok("getent", &["passwd", user])?;
    Ok(entry.split(':').nth(2).context("getent passwd")?.parse()?)
}

fn check_fresh_install() -> anyhow::Result<u32> {
    let uid = uid_of(PACKAGE).context("the service user was not created")?;
    assert!(found("getent", &["group", PACKAGE]), "no service group");
    assert_eq!(mode(STATE_DIR)?, (0o700, uid), "state directory");
    let entries: Vec<_> = std::fs::read_dir(STATE_DIR)?.collect();
    assert!(entries.is_empty(), "the package made keys: {entries:?}");
    assert!(mode(BINARY)?.0 & 0o111 != 0, "binary not executable");
    let conffiles = ok("dpkg-query", &["-W", "-f=${Conffiles}", PACKAGE])?;
    assert!(conffiles.contains(CONFFILE), "not a conffile: {conffiles}");

    let unit = std::fs::read_to_string(UNIT).context("the unit is not installed")?;
    for line in [
        "User=beffroi-agent",
        "StateDirectory=beffroi-agent",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "AmbientCapabilities=\n",
        "Restart=always",
        "ExecStart=/usr/bin/beffroi-agent --log-format journald run",
    ] {
        assert!(unit.contains(line), "the unit lacks {line:?}");
    }
    ok("systemd-analyze", &["verify", UNIT])?;
    ok(
        "systemd-analyze",
        &[
            "security",
            "--offline=true",
            "--threshold",
            MAX_EXPOSURE,
            UNIT,
        ],
    )?;
    ok(BINARY, &["--version"])?;
    // The installed agent was never enrolled nor started: `status` says so, exit code 3.
    let status = run(BINARY, &["status", "--config", CONFFILE])?;
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(3), "{text}");
    assert!(text.contains("NOT RUNNING"), "{text}");
    Ok(uid)
}

/// What a gateway holds after enrolling and running: keys and a spool segment (contents are
/// only compared, never parsed).
fn seed_state(uid: u32) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
    let spool = Path::new(STATE_DIR).join("spool");
    std::fs::create_dir_all(&spool)?;
    let files = vec![
        (
            Path::new(STATE_DIR).join("signing.key"),
            b"signing key".to_vec(),
        ),
        (Path::new(STATE_DIR).join("tls.key"), b"tls key".to_vec()),
        (spool.join("00000000000000000001.seg"), vec![7u8; 4096]),
    ];
    for (path, bytes) in &files {
        std::fs::write(path, bytes)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        std::os::unix::fs::chown(path, Some(uid), Some(uid))?;
    }
    Ok(files)
}

fn assert_kept(files: &[(PathBuf, Vec<u8>)], when: &str) {
    for (path, bytes) in files {
        assert_eq!(
            std::fs::read(path).ok().as_ref(),
            Some(bytes),
            "{} lost at {when}",
            path.display()
        );
    }
}

#[test]
fn install_upgrade_remove_purge() -> anyhow::Result<()> {
    if let Some(reason) = missing_prerequisite() {
        anyhow::ensure!(
            std::env::var_os("CI").is_none(),
            "the package test must run in CI: {reason}"
        );
        eprintln!("NOTICE: package test skipped: {reason}");
        return Ok(());
    }
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK)?;
    lock.lock().context("locking the package test")?;

    let dir = tempfile::tempdir()?;
    let base = env!("CARGO_PKG_VERSION");
    let (first, second) = (format!("{base}-1"), format!("{base}-2"));
    let old = build_deb(&first, dir.path())?;
    let new = build_deb(&second, dir.path())?;

    if is_installed() {
        eprintln!("NOTICE: {PACKAGE} was installed (an interrupted earlier run?): purging it");
    }
    let _installed = Installed;
    ok("dpkg", &["--purge", PACKAGE])?;

    ok("dpkg", &["-i", old.to_str().unwrap()])?;
    assert_eq!(version()?, first);
    let uid = check_fresh_install()?;

    let files = seed_state(uid)?;
    let mut config = std::fs::read_to_string(CONFFILE)?;
    config.push_str("# edited on this gateway\n");
    std::fs::write(CONFFILE, &config)?;

    ok("dpkg", &["-i", "--force-confold", new.to_str().unwrap()])?;
    assert_eq!(version()?, second);
    assert_kept(&files, "upgrade");
    assert_eq!(
        std::fs::read_to_string(CONFFILE)?,
        config,
        "conffile replaced"
    );
    assert_eq!(
        mode(STATE_DIR)?,
        (0o700, uid),
        "state directory after upgrade"
    );
    assert_eq!(uid_of(PACKAGE)?, uid, "the service user changed");

    ok("dpkg", &["--remove", PACKAGE])?;
    assert!(!Path::new(BINARY).exists(), "binary left after remove");
    assert!(!Path::new(UNIT).exists(), "unit left after remove");
    assert_kept(&files, "remove");
    assert_eq!(
        std::fs::read_to_string(CONFFILE)?,
        config,
        "conffile after remove"
    );
    assert!(found("getent", &["passwd", PACKAGE]), "user gone at remove");

    ok("dpkg", &["--purge", PACKAGE])?;
    for gone in [STATE_DIR, "/etc/beffroi-agent"] {
        assert!(!Path::new(gone).exists(), "{gone} left after purge");
    }
    assert!(
        !found("getent", &["passwd", PACKAGE]),
        "user left after purge"
    );
    assert!(
        !found("getent", &["group", PACKAGE]),
        "group left after purge"
    );
    assert!(!is_installed());
    Ok(())
}
