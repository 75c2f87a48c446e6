//! The identity benchmark's printed table: rates, latencies and ratios to the baselines.

use std::fmt::Write as _;

use super::clients::{Handshakes, Phase};
use super::IdentityBenchArgs;
use crate::bench::histogram::Summary;
use crate::bench::report::thousands;

/// Everything one run measured.
#[derive(Debug, Clone)]
pub(crate) struct IdentityResult {
    /// Certificates issued per second in memory by the CA alone.
    pub baseline: f64,
    /// Enrollments over HTTPS.
    pub enrolled: Phase,
    /// Renewals over mutual TLS.
    pub renewed: Phase,
    /// Handshakes at the gate.
    pub gate: Handshakes,
    /// Handshakes with the bare rustls server.
    pub bare: Handshakes,
    /// Handshakes the bare server completed (its own count).
    pub bare_accepted: u64,
}

impl IdentityResult {
    /// Fails the run when an enrollment or a renewal was refused, or no handshake worked.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        for (what, phase) in [("enrollment", &self.enrolled), ("renewal", &self.renewed)] {
            if let Some(first) = &phase.first_failure {
                anyhow::bail!("{} {what}s failed; first: {first}", phase.failed);
            }
        }
        for (what, h) in [("gate", &self.gate), ("bare server", &self.bare)] {
            if h.ok == 0 {
                anyhow::bail!(
                    "no handshake with the {what}: {}",
                    h.first_failure.as_deref().unwrap_or("?")
                );
            }
        }
        Ok(())
    }
}

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

fn latency(s: &Summary) -> String {
    format!("{} / {} / {}", ms(s.p50_us), ms(s.p99_us), ms(s.max_us))
}

/// The report.
pub(crate) fn render(
    backend: &str,
    context: &str,
    args: &IdentityBenchArgs,
    r: &IdentityResult,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "beffroi bench identity — {backend}; {} gateways, {} clients at once, handshakes for \
         {} s each\n{context}\n",
        args.gateways, args.concurrency, args.seconds
    );
    let _ = writeln!(
        out,
        "{:<58} {:>12} {:>22} {:>10}  note",
        "figure", "per second", "p50 / p99 / max ms", "errors"
    );
    let phase = |out: &mut String, name: &str, p: &Phase, note: String| {
        let _ = writeln!(
            out,
            "{name:<58} {:>12} {:>22} {:>10}  {note}",
            thousands(p.rate()),
            latency(&p.latency),
            p.failed
        );
    };
    let _ = writeln!(
        out,
        "{:<58} {:>12} {:>22} {:>10}  rcgen signing alone: no TLS, HTTP, store or audit",
        "baseline: certificates issued in memory by the CA",
        thousands(r.baseline),
        "–",
        0,
    );
    // Each enrollment and renewal is a TLS connection of its own: the bare server's
    // handshake rate is the transport's ceiling, the in-memory issuance the CA's.
    for (name, p) in [
        (
            "enrollments (new pinned TLS connection each, token, CSR)",
            &r.enrolled,
        ),
        ("renewals (mutual TLS, new key and CSR each)", &r.renewed),
    ] {
        phase(
            &mut out,
            name,
            p,
            format!(
                "{:.2}× the bare handshakes, {:.3}× the in-memory issuance; {} in {:.1} s",
                p.rate() / r.bare.rate().max(1e-9),
                p.rate() / r.baseline.max(1e-9),
                p.ok,
                p.elapsed.as_secs_f64()
            ),
        );
    }
    let shake = |out: &mut String, name: &str, h: &Handshakes, note: String| {
        let _ = writeln!(
            out,
            "{name:<58} {:>12} {:>22} {:>10}  {note}",
            thousands(h.rate()),
            latency(&h.latency),
            h.failed
        );
    };
    shake(
        &mut out,
        "baseline: mutual-TLS handshakes, bare rustls server",
        &r.bare,
        format!(
            "the gate's rustls configuration, nothing else ({} accepted)",
            r.bare_accepted
        ),
    );
    shake(
        &mut out,
        "mutual-TLS handshakes at the gate",
        &r.gate,
        format!(
            "{:.2}× the bare server{}",
            r.gate.rate() / r.bare.rate().max(1e-9),
            r.gate
                .first_failure
                .as_ref()
                .map_or_else(String::new, |f| format!("; first error: {f}"))
        ),
    );
    out
}
