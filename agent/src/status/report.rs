//! `beffroi-agent status`: what the status file, the spool (read-only) and the certificate
//! file say, as a short text or as JSON, and an exit code for monitoring scripts.
//!
//! Exit codes follow the LSB `status` convention: 0 running, 3 not running (never started,
//! stopped, killed, or hung: see [`super::judge`]), 4 unknown (the status file cannot be read:
//! permissions, corruption). Every file is optional: what cannot be read is reported, never
//! a panic.

use std::fmt::Write as _;
use std::path::PathBuf;

use beffroi_protocol::Timestamp;
use serde::Serialize;

use super::{judge, read, ReadError, SpoolDepth, StatusFile, Verdict};
use crate::config::Config;
use crate::enroll::csr;

/// Exit code: the agent runs.
pub const EXIT_RUNNING: u8 = 0;
/// Exit code: the agent does not run.
pub const EXIT_NOT_RUNNING: u8 = 3;
/// Exit code: the status cannot be told.
pub const EXIT_UNKNOWN: u8 = 4;

/// Where the spool depth comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DepthSource {
    /// The running agent's status file (exact, at most a few seconds old).
    Agent,
    /// A read-only scan of the spool directory (the agent is not running).
    Disk,
}

/// The spool part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct SpoolReport {
    /// The spool directory.
    pub dir: PathBuf,
    /// The depth, when known.
    #[serde(flatten)]
    pub depth: Option<SpoolDepth>,
    /// Where it comes from.
    pub source: Option<DepthSource>,
    /// Why it is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The certificate part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateReport {
    /// The certificate file.
    pub path: PathBuf,
    /// End of validity.
    pub not_after: Option<Timestamp>,
    /// Seconds left (negative: expired).
    pub expires_in_s: Option<i64>,
    /// In the last sixth of its lifetime: it should have been renewed (at two thirds) and was
    /// not; the agent's log says why.
    pub renewal_overdue: bool,
    /// Why it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything `beffroi-agent status` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether the agent runs.
    pub running: bool,
    /// `running`, `stopped`, `gone`, `stale`, `never-started` or `unknown`.
    pub state: &'static str,
    /// One sentence saying why.
    pub detail: String,
    /// The status file.
    pub status_file: PathBuf,
    /// Its contents (the last ones written, when the agent is not running).
    pub status: Option<StatusFile>,
    /// The spool's depth.
    pub spool: SpoolReport,
    /// The TLS client certificate's validity.
    pub certificate: CertificateReport,
    /// The exit code.
    #[serde(skip)]
    pub exit_code: u8,
}

fn describe(verdict: &Verdict, file: &StatusFile) -> (&'static str, String) {
    match verdict {
        Verdict::Running => (
            "running",
            format!(
                "running: pid {}, version {}, started {}",
                file.pid, file.agent_version, file.started_at
            ),
        ),
        Verdict::Stopped(at) => ("stopped", format!("not running: stopped cleanly at {at}")),
        Verdict::Gone => (
            "gone",
            format!(
                "not running: process {} is gone without a clean stop (killed or crashed); last status at {}",
                file.pid, file.updated_at
            ),
        ),
        Verdict::Stale(age) => (
            "stale",
            format!(
                "not responding: process {} has not updated its status for {} s (hung?)",
                file.pid,
                age.as_secs()
            ),
        ),
    }
}

fn certificate(config: &Config, now: Timestamp) -> CertificateReport {
    let path = config.uplink.certificate.clone();
    let leaf = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|pem| csr::leaf(&pem).map_err(|e| e.to_string()));
    match leaf {
        Ok(leaf) => {
            let not_after = Timestamp::from(leaf.validity.not_after);
            CertificateReport {
                path,
                not_after: Some(not_after),
                expires_in_s: Some(not_after.micros_since(now) / 1_000_000),
                renewal_overdue: leaf.validity.renewal_overdue(now.into()),
                error: None,
            }
        }
        Err(error) => CertificateReport {
            path,
            not_after: None,
            expires_in_s: None,
            renewal_overdue: false,
            error: Some(error),
        },
    }
}

fn spool_on_disk(config: &Config) -> SpoolReport {
    let dir = config.spool.dir.clone();
    match beffroi_spool::inspect(&dir) {
        Ok(view) => SpoolReport {
            dir,
            depth: Some(SpoolDepth::new(
                view.batches,
                view.readings,
                view.bytes,
                view.oldest_unacked_appended_at_ms,
            )),
            source: Some(DepthSource::Disk),
            error: None,
        },
        Err(error) => SpoolReport {
            dir,
            depth: None,
            source: None,
            error: Some(error.to_string()),
        },
    }
}

/// Gathers the report for the agent configured by `config`, at `now`.
pub fn gather(config: &Config, now: Timestamp) -> Report {
    let status_file = super::file_path(config);
    let certificate = certificate(config, now);
    let (running, state, detail, status, exit_code) = match read(&status_file) {
        Ok(file) => {
            let verdict = judge(&file, now, super::is_this_program(file.pid));
            let (state, detail) = describe(&verdict, &file);
            let code = if verdict.is_running() {
                EXIT_RUNNING
            } else {
                EXIT_NOT_RUNNING
            };
            (verdict.is_running(), state, detail, Some(file), code)
        }
        Err(ReadError::Missing(path)) => (
            false,
            "never-started",
            format!(
                "not running: no status file at {}: the agent has not run with this configuration",
                path.display()
            ),
            None,
            EXIT_NOT_RUNNING,
        ),
        Err(error) => (
            false,
            "unknown",
            format!("unknown: {error} (run as root or as the agent's user)"),
            None,
            EXIT_UNKNOWN,
        ),
    };
    let spool = match (&status, running) {
        (Some(file), true) => SpoolReport {
            dir: config.spool.dir.clone(),
            depth: Some(file.spool),
            source: Some(DepthSource::Agent),
            error: None,
        },
        _ => spool_on_disk(config),
    };
    Report {
        running,
        state,
        detail,
        status_file,
        status,
        spool,
        certificate,
        exit_code,
    }
}

/// `3d 4h`, `12m 5s`, `42s`.
fn span(seconds: i64) -> String {
    let s = seconds.unsigned_abs();
    let text = match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    };
    if seconds < 0 {
        format!("-{text}")
    } else {
        text
    }
}

fn ago(at: Timestamp, now: Timestamp) -> String {
    span(now.micros_since(at) / 1_000_000)
}

/// Binary units with one decimal (`12.0 KiB`).
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

impl Report {
    /// The human-readable report, a few lines; `now` for the relative times.
    pub fn text(&self, now: Timestamp) -> String {
        let mut out = String::new();
        let who = self
            .status
            .as_ref()
            .map(|f| format!(" {}/{}", f.tenant, f.gateway))
            .unwrap_or_default();
        let headline = if self.running {
            self.detail.clone()
        } else {
            shout_verdict(&self.detail)
        };
        let _ = writeln!(out, "beffroi-agent{who}: {headline}");
        let last = if self.running { "" } else { "last known " };
        if let Some(file) = &self.status {
            let c = &file.connection;
            let _ = write!(
                out,
                "{last}connection: {} since {} ({} ago)",
                c.state.as_str(),
                c.since,
                ago(c.since, now)
            );
            if let Some(error) = &c.last_error {
                let _ = write!(out, ", last error: {error}");
            }
            out.push('\n');
            match &file.last_ack {
                Some(ack) => {
                    let _ = writeln!(
                        out,
                        "last ack: {} ({} ago), committed through seq {} (highest {})",
                        ack.at,
                        ago(ack.at, now),
                        ack.contiguous,
                        ack.highest_seq
                    );
                }
                None => out.push_str("last ack: none since the agent started\n"),
            }
        }
        match (&self.spool.depth, &self.spool.error) {
            (Some(depth), _) => {
                let from = match self.spool.source {
                    Some(DepthSource::Disk) => " (read from disk)",
                    _ => "",
                };
                let _ = write!(
                    out,
                    "spool: {} batches, {} readings, {}{from}",
                    depth.batches,
                    depth.readings,
                    bytes(depth.bytes)
                );
                if let Some(oldest) = depth.oldest_unacked_at {
                    let _ = write!(out, ", oldest waiting {}", ago(oldest, now));
                }
                out.push('\n');
            }
            (None, error) => {
                let _ = writeln!(
                    out,
                    "spool: unknown ({})",
                    error.as_deref().unwrap_or("not read")
                );
            }
        }
        let cert = &self.certificate;
        match (cert.not_after, cert.expires_in_s) {
            (Some(not_after), Some(left)) if left >= 0 => {
                let _ = write!(
                    out,
                    "certificate: valid until {not_after} ({} left)",
                    span(left)
                );
                if cert.renewal_overdue {
                    out.push_str(
                        ", WARNING: not renewed at two thirds of its lifetime (see the agent's log)",
                    );
                }
                out.push('\n');
            }
            (Some(not_after), _) => {
                let _ = writeln!(
                    out,
                    "certificate: EXPIRED at {not_after}: enroll again with a new token"
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "certificate: unreadable {}: {}",
                    cert.path.display(),
                    cert.error.as_deref().unwrap_or("unknown error")
                );
            }
        }
        out
    }
}

/// `not running: …` → `NOT RUNNING: …`: the verdict before the first colon in capitals.
fn shout_verdict(detail: &str) -> String {
    match detail.split_once(':') {
        Some((verdict, rest)) => format!("{}:{rest}", verdict.to_uppercase()),
        None => detail.to_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_sizes_read_well() {
        assert_eq!(span(42), "42s");
        assert_eq!(span(725), "12m 5s");
        assert_eq!(span(2 * 86_400 + 3 * 3600 + 5), "2d 3h");
        assert_eq!(span(-90), "-1m 30s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(12 * 1024), "12.0 KiB");
        assert_eq!(bytes(256 << 20), "256.0 MiB");
        assert_eq!(
            shout_verdict("not running: pid 1 is gone"),
            "NOT RUNNING: pid 1 is gone"
        );
    }
}
