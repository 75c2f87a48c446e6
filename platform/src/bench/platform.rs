//! The platform under test, started the way `serve` starts it (`server::start` with the
//! default settings) in the run's temporary directory, on loopback ports: shared by
//! `bench ingest` and `bench live`.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;

use super::database::BenchDatabase;
use super::TimescaleArg;
use crate::config::PlatformConfig;
use crate::server::{self, Running};

/// A free loopback port.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("no free port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts the platform on `database`, with its data directory under `scratch`: gate and API
/// on free loopback ports, the embedded broker on two more. `what_if` are extra config sections
/// (TOML, e.g. `[ingest]` or `[live]` lines; empty: the defaults, as `serve` has them).
pub(crate) async fn start(
    database: &BenchDatabase,
    scratch: &Path,
    timescale: TimescaleArg,
    what_if: &str,
) -> anyhow::Result<(Running, PlatformConfig)> {
    let data_dir = scratch.join("platform");
    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let config = PlatformConfig::from_toml(&format!(
        "data_dir = {dir:?}\ndatabase = {db:?}\n[gate]\nlisten = \"{gate}\"\nnames = [\"localhost\", \"127.0.0.1\"]\n\
         [broker]\nlisten_v4 = \"{v4}\"\nlisten_v5 = \"{v5}\"\n[api]\nlisten = \"{api}\"\n[enroll]\nlisten = \"{enroll}\"\n\
         [store]\ntimescale = \"{timescale}\"\n{what_if}",
        dir = data_dir.display().to_string(),
        db = database.url(),
        timescale = timescale.as_str(),
        gate = loopback(0),
        v4 = loopback(free_port()?),
        v5 = loopback(free_port()?),
        api = loopback(0),
        enroll = loopback(0),
    ))?;
    let running = server::start(config.clone()).await?;
    eprintln!(
        "bench: platform up on {}, gate {}, API {}",
        running.store.backend().as_str(),
        running.gate_addr,
        running.api_addr
    );
    Ok((running, config))
}

/// Stops the platform in order and closes its store.
pub(crate) async fn stop(running: Running) {
    let store = running.store.clone();
    if !running.stop().await {
        eprintln!("bench: the platform did not stop within its deadline");
    }
    store.close().await;
}
