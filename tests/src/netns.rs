//! A network namespace joined to the root namespace by a veth pair on a private /30, so that a
//! test can cut the only link between an agent and the platform and restore it.
//!
//! The root end holds `10.203.a.(4b+1)`, the namespace end `10.203.a.(4b+2)` (`a`, `b` drawn
//! from the test's unique suffix); a process runs inside with `ip netns exec NAME`.
//! [`VethNamespace::cut`] sets the root end down (both ends lose carrier; packets are dropped)
//! and [`VethNamespace::restore`] sets it up again. The pair and the namespace are deleted on
//! drop, whatever happened. Needs root and iproute2.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::Context as _;

use crate::platform::unique_suffix;

/// One namespace and its veth pair.
#[derive(Debug)]
pub struct VethNamespace {
    name: String,
    host_if: String,
    host_ip: Ipv4Addr,
    inner_ip: Ipv4Addr,
    veth_made: bool,
}

/// Runs `ip ARGS…` to success.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (install iproute2)")?;
    anyhow::ensure!(
        output.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

impl VethNamespace {
    /// Creates the namespace, the pair and their addresses, both ends up.
    pub fn create() -> anyhow::Result<Self> {
        let suffix = unique_suffix();
        let byte = |i: usize| u8::from_str_radix(&suffix[2 * i..2 * i + 2], 16).unwrap_or(0);
        let (a, b) = (byte(0), byte(1) % 64 * 4);
        let mut netns = Self {
            name: format!("beffroi-{suffix}"),
            host_if: format!("bf{suffix}h"),
            host_ip: Ipv4Addr::new(10, 203, a, b + 1),
            inner_ip: Ipv4Addr::new(10, 203, a, b + 2),
            veth_made: false,
        };
        ip(&["netns", "add", &netns.name])?;
        let inner_if = format!("bf{suffix}a");
        ip(&[
            "link",
            "add",
            &netns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &inner_if,
        ])?;
        netns.veth_made = true;
        let (host_cidr, inner_cidr) = (
            format!("{}/30", netns.host_ip),
            format!("{}/30", netns.inner_ip),
        );
        ip(&["link", "set", &inner_if, "netns", &netns.name])?;
        ip(&["addr", "add", &host_cidr, "dev", &netns.host_if])?;
        ip(&["link", "set", &netns.host_if, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &netns.name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["addr", "add", &inner_cidr, "dev", &inner_if])?;
        inside(&["link", "set", &inner_if, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The root end's address: what the platform listens on.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// Cuts the link: the root end goes down.
    pub fn cut(&self) -> anyhow::Result<()> {
        ip(&["link", "set", &self.host_if, "down"])
    }

    /// Restores the link.
    pub fn restore(&self) -> anyhow::Result<()> {
        ip(&["link", "set", &self.host_if, "up"])
    }
}

impl Drop for VethNamespace {
    fn drop(&mut self) {
        if self.veth_made {
            // Deleting one end deletes the pair (the other end may already be gone with the
            // namespace).
            let _ = ip(&["link", "del", &self.host_if]);
        }
        let _ = ip(&["netns", "del", &self.name]);
    }
}
