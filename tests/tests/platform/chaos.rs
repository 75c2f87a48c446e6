//! Scenario 16 (issue #11): chaos. Each test injects one fault while a real agent streams
//! known readings through a real platform, ends it, and checks that the store holds every
//! reading exactly once. Each fault is bounded in time, stays on loopback (or in a private
//! network namespace), and is undone on drop whatever happens. Each prints
//! `chaos: <fault>: recovered in N ms (first new commit after M ms)`, both measured from the end
//! of the fault: to the last reading stored, and to the first reading stored after the fault.
//!
//! | fault | injected | ended |
//! |---|---|---|
//! | `platform-kill9` | `kill -9` of `beffroi serve` | restarted on the same ports and data |
//! | `broker-restart` | `kill -9` of the external Mosquitto | restarted on the same port |
//! | `postgres-restart` | `pg_ctl stop -m immediate` of the scenario's own cluster | started again |
//! | `agent-kill9` | `kill -9` of the agent with batches spooled, not yet acknowledged | restarted on the same spool |
//! | `network-cut` | the agent's only link (a veth into its namespace) set down | set up |
//! | `disk-full` | the tmpfs holding the agent's spool filled, kept full | filler deleted |
//!
//! The first four and the network cut stream from a followed file that grows during the
//! fault, so the agent's spool holds the backlog when the fault ends. The agent's standard
//! input has no acknowledgement, so `agent-kill9` feeds it first and kills it only once every
//! reading is sealed in its spool (a reading read but not yet spooled is lost with the
//! process: the documented limit of stream sources). The network cut and the disk fault need
//! root (namespaces, mounts): in CI a missing capability fails, elsewhere they are skipped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use beffroi_protocol::{Reading, Timestamp};
use beffroi_tests::agent::{AgentProcess, AgentSpec, SourceSpec};
use beffroi_tests::broker::Broker;
use beffroi_tests::http::Api;
use beffroi_tests::netns::VethNamespace;
use beffroi_tests::platform::{BrokerSpec, Enrollment};
use beffroi_tests::postgres::PrivatePostgres;
use beffroi_tests::process::tail;
use beffroi_tests::tmpfs::Tmpfs;
use beffroi_tests::wait::poll_until;
use beffroi_tests::{input, Platform, PlatformSpec};

use crate::common::{
    assert_exactly_once, count_readings, feed_paced, jsonl_agent, range, recent_base,
    unique_tenant, wait_stored, Scenario,
};

/// Readings streamed through each fault.
const TOTAL: usize = 2000;
/// The fault is injected once this many readings are stored.
const FAULT_AFTER: usize = 300;
/// The shortest outage: the fault lasts at least this long, and until the feeder is done.
const OUTAGE: Duration = Duration::from_secs(2);
/// Generous bound on a recovery (a hang fails the test).
const RECOVERY_BOUND: Duration = Duration::from_secs(30);
/// Bound on every other wait.
const WAIT: Duration = Duration::from_secs(40);

/// A platform with one enrolled gateway of a fresh tenant, and the readings it will stream.
struct Rig {
    platform: Platform,
    gateway: Enrollment,
    viewer: Api,
    base: Timestamp,
    readings: Vec<Reading>,
}

impl Rig {
    /// Configures, fills and starts a platform of `spec` in the scenario's directory.
    async fn start(scenario: &Scenario, spec: &PlatformSpec, total: usize) -> anyhow::Result<Self> {
        let mut platform = scenario.platform("platform", spec)?;
        let tenant = unique_tenant("chaos");
        platform.create_tenant(&tenant).await?;
        let token = platform.create_token(&tenant, "viewer").await?;
        let gateway = platform.enroll(&tenant, "gw-1").await?;
        platform.start().await?;
        let base = recent_base();
        Ok(Self {
            viewer: platform.api_as(&token),
            platform,
            gateway,
            base,
            readings: input::readings_from(base, 0, total),
        })
    }

    /// Readings stored now (0 while the API does not answer).
    async fn stored(&self) -> usize {
        let (from, to) = range(self.base);
        count_readings(&self.viewer, from, to).await.unwrap_or(0)
    }

    /// Waits until at least `n` readings are stored; returns how many are.
    async fn wait_stored_at_least(&self, n: usize) -> anyhow::Result<usize> {
        poll_until(
            &format!("{n} readings stored"),
            WAIT,
            || async {
                let stored = self.stored().await;
                Ok((stored >= n).then_some(stored))
            },
            || self.platform.log_text(),
        )
        .await
    }

    /// An agent following `readings.jsonl` (empty until [`feed_file`] writes it), started.
    fn file_agent(&self, adjust: impl FnOnce(&mut AgentSpec)) -> anyhow::Result<AgentProcess> {
        std::fs::write(self.file(), "")?;
        let mut spec = jsonl_agent(&self.file(), true);
        adjust(&mut spec);
        let mut agent = self.gateway.agent(spec, self.platform.gate_port)?;
        agent.start()?;
        Ok(agent)
    }

    fn file(&self) -> PathBuf {
        self.gateway.dir.join("readings.jsonl")
    }

    /// Appends the readings to the followed file over about 1.6 s.
    fn feed_file(&self) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        let text = input::jsonl(&self.readings);
        feed_paced(vec![(self.file(), text)], 50, Duration::from_millis(40))
    }

    /// Waits for the stream to be under way; returns the readings stored then.
    async fn mid_stream(&self) -> anyhow::Result<usize> {
        let stored = self.wait_stored_at_least(FAULT_AFTER).await?;
        anyhow::ensure!(
            stored < self.readings.len(),
            "every reading was stored before the fault: the fault would not be mid-stream"
        );
        Ok(stored)
    }

    /// Ends an outage that began at `began`: waits for the feeder, then until [`OUTAGE`]
    /// has passed.
    async fn hold_outage(
        began: Instant,
        feeder: tokio::task::JoinHandle<anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        tokio::time::timeout(WAIT, feeder).await???;
        tokio::time::sleep_until((began + OUTAGE).into()).await;
        Ok(())
    }

    /// From the end of the fault (`since`, with `before` readings stored at the fault): waits
    /// until every reading is stored, prints the recovery times, and checks that each reading
    /// is stored exactly once.
    async fn recovered(&self, fault: &str, since: Instant, before: usize) -> anyhow::Result<()> {
        let total = self.readings.len();
        let mut first_new: Option<Duration> = None;
        let deadline = since + RECOVERY_BOUND;
        let at_end = self.stored().await;
        anyhow::ensure!(
            at_end < total,
            "{fault}: every reading was stored when the fault ended: it held nothing back"
        );
        loop {
            let stored = self.stored().await;
            if stored > before && first_new.is_none() {
                first_new = Some(since.elapsed());
            }
            if stored >= total {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{fault}: {stored} of {total} readings stored {RECOVERY_BOUND:?} after the fault \
                 ended: {}",
                self.platform.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let drained = since.elapsed();
        let first_new = first_new.unwrap_or(drained);
        eprintln!(
            "chaos: {fault}: recovered in {} ms (first new commit after {} ms; {before} of \
             {total} readings stored when the fault began)",
            drained.as_millis(),
            first_new.as_millis()
        );
        let stored =
            wait_stored(&self.viewer, range(self.base), total, &[&self.platform.log]).await?;
        assert_exactly_once(&stored, &[("gw-1", &self.readings)]);
        Ok(())
    }
}

/// Asserts that the agent did not panic and reported no lost reading.
fn assert_agent_clean(agent: &AgentProcess) {
    let log = agent.log();
    assert!(!log.contains("panicked"), "the agent panicked");
    assert!(!log.contains("are lost"), "the agent lost readings: {log}");
}

/// `Ok(Some(value))`, or why a fault needing root cannot be injected here: an error in CI, a
/// notice and `Ok(None)` elsewhere.
fn capable<T>(fault: &str, attempt: anyhow::Result<T>) -> anyhow::Result<Option<T>> {
    match attempt {
        Ok(value) => Ok(Some(value)),
        Err(error) if std::env::var_os("CI").is_some() => Err(error.context(format!(
            "chaos {fault}: CI must be able to inject this fault (root, iproute2, mount)"
        ))),
        Err(error) => {
            eprintln!("NOTICE: chaos {fault} skipped: {error:#}");
            Ok(None)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_kill9() -> anyhow::Result<()> {
    let scenario = Scenario::new("chaos-platform-kill9")?;
    let mut rig = Rig::start(&scenario, &PlatformSpec::default(), TOTAL).await?;
    let agent = rig.file_agent(|_| {})?;
    let feeder = rig.feed_file();
    let before = rig.mid_stream().await?;
    rig.platform.kill9()?;
    Rig::hold_outage(Instant::now(), feeder).await?;
    let restarted = Instant::now();
    rig.platform.start().await?;
    rig.recovered("platform-kill9", restarted, before).await?;
    assert_agent_clean(&agent);
    scenario.pass();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart() -> anyhow::Result<()> {
    let scenario = Scenario::new("chaos-broker-restart")?;
    let mut broker = Broker::start_private(&scenario.path("broker")).await?;
    let spec = PlatformSpec {
        broker: BrokerSpec::External(broker.addr()),
        ..PlatformSpec::default()
    };
    let rig = Rig::start(&scenario, &spec, TOTAL).await?;
    let agent = rig.file_agent(|_| {})?;
    let feeder = rig.feed_file();
    let before = rig.mid_stream().await?;
    broker.kill9()?;
    Rig::hold_outage(Instant::now(), feeder).await?;
    broker.restart().await?;
    rig.recovered("broker-restart", Instant::now(), before)
        .await?;
    assert_agent_clean(&agent);
    scenario.pass();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart() -> anyhow::Result<()> {
    let scenario = Scenario::new("chaos-postgres-restart")?;
    let Some(mut postgres) = capable(
        "postgres-restart",
        PrivatePostgres::start(&scenario.path("postgres")).await,
    )?
    else {
        return Ok(());
    };
    let spec = PlatformSpec {
        database: Some(postgres.url()),
        ..PlatformSpec::default()
    };
    let rig = Rig::start(&scenario, &spec, TOTAL).await?;
    let agent = rig.file_agent(|_| {})?;
    let feeder = rig.feed_file();
    let before = rig.mid_stream().await?;
    postgres.crash().await?;
    Rig::hold_outage(Instant::now(), feeder).await?;
    postgres.restart().await?;
    rig.recovered("postgres-restart", Instant::now(), before)
        .await?;
    assert_agent_clean(&agent);
    scenario.pass();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cut() -> anyhow::Result<()> {
    let scenario = Scenario::new("chaos-network-cut")?;
    let Some(netns) = capable("network-cut", VethNamespace::create())? else {
        return Ok(());
    };
    let spec = PlatformSpec {
        gate_ip: netns.host_ip().into(),
        ..PlatformSpec::default()
    };
    let rig = Rig::start(&scenario, &spec, TOTAL).await?;
    let agent = rig.file_agent(|spec| {
        spec.uplink_host = netns.host_ip().to_string();
        spec.netns = Some(netns.name().to_owned());
    })?;
    let feeder = rig.feed_file();
    let before = rig.mid_stream().await?;
    netns.cut()?;
    Rig::hold_outage(Instant::now(), feeder).await?;
    netns.restore()?;
    rig.recovered("network-cut", Instant::now(), before).await?;
    assert_agent_clean(&agent);
    drop(agent);
    scenario.pass();
    Ok(())
}

/// An agent reading its standard input, with small batches.
fn stdin_agent(rig: &Rig, adjust: impl FnOnce(&mut AgentSpec)) -> anyhow::Result<AgentProcess> {
    let mut spec = AgentSpec::new("placeholder", SourceSpec::JsonlStdin);
    spec.max_readings = 50;
    spec.max_linger_ms = 20;
    adjust(&mut spec);
    rig.gateway.agent(spec, rig.platform.gate_port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_kill9() -> anyhow::Result<()> {
    const BEFORE_KILL: usize = 1500;
    let scenario = Scenario::new("chaos-agent-kill9")?;
    let rig = Rig::start(&scenario, &PlatformSpec::default(), TOTAL).await?;
    // One batch in flight at a time, ten readings each: delivery lags far behind sealing.
    let mut agent = stdin_agent(&rig, |spec| {
        spec.max_readings = 10;
        spec.max_in_flight = 1;
    })?;
    agent.start()?;
    let (first, rest) = rig.readings.split_at(BEFORE_KILL);
    agent.feed(input::jsonl(first)).await?;
    agent.close_stdin();
    agent.wait_log("end of input", WAIT).await?;
    // The source has ended; give the batcher a moment to seal what it still held.
    tokio::time::sleep(Duration::from_millis(100)).await;
    agent.kill9()?;
    tokio::time::sleep(Duration::from_millis(300)).await; // commits in flight land
    let before = rig.stored().await;
    anyhow::ensure!(
        before < BEFORE_KILL,
        "the agent delivered everything before the kill: not mid-stream"
    );
    let restarted = Instant::now();
    agent.start()?;
    agent.feed(input::jsonl(rest)).await?;
    agent.close_stdin();
    rig.recovered("agent-kill9", restarted, before).await?;
    assert_agent_clean(&agent);
    scenario.pass();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full() -> anyhow::Result<()> {
    const FIRST: usize = 500;
    /// How long the spool's filesystem is kept full once the agent reported it.
    const FULL_FOR: Duration = Duration::from_secs(2);
    let scenario = Scenario::new("chaos-disk-full")?;
    let rig = Rig::start(&scenario, &PlatformSpec::default(), TOTAL).await?;
    let spool = rig.gateway.dir.join("spool");
    let Some(tmpfs) = capable("disk-full", Tmpfs::mount(&spool, 256 * 1024))? else {
        return Ok(());
    };
    let mut agent = stdin_agent(&rig, |_| {})?;
    agent.start()?;
    let (first, rest) = rig.readings.split_at(FIRST);
    agent.feed(input::jsonl(first)).await?;
    rig.wait_stored_at_least(FIRST).await?;

    // Full: the agent must say so, hold what it read, and stop reading (its input blocks).
    let filled = tmpfs.fill()?;
    let fed = AtomicBool::new(false);
    let log = agent.paths.log.clone();
    let feeding = async {
        let result = agent.feed(input::jsonl(rest)).await;
        fed.store(true, Ordering::SeqCst);
        result
    };
    let full = async {
        let held = async {
            poll_until(
                "the agent to report that its spool refuses batches",
                WAIT,
                || async {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    Ok(text.contains("the spool refused a batch").then_some(()))
                },
                || tail(&log, 3000),
            )
            .await?;
            let until = Instant::now() + FULL_FOR;
            while Instant::now() < until {
                tmpfs.fill()?; // take back whatever the spool freed
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::ensure!(
                !fed.load(Ordering::SeqCst),
                "the agent kept reading its input while its spool was full"
            );
            anyhow::Ok(rig.stored().await)
        }
        .await;
        let freed = tmpfs.free();
        let since = Instant::now();
        freed?;
        held.map(|stored| (stored, since))
    };
    let (fed_result, full_result) =
        tokio::time::timeout(WAIT, async { tokio::join!(feeding, full) }).await?;
    let (before, since) = full_result?;
    fed_result?;
    agent.close_stdin();
    eprintln!("chaos: disk-full: {filled} bytes of filler; {before} readings stored while full");
    rig.recovered("disk-full", since, before).await?;
    assert!(
        agent.log().contains("the spool takes batches again"),
        "the agent did not report its recovery: {}",
        agent.log()
    );
    assert_agent_clean(&agent);
    drop(agent);
    drop(tmpfs);
    scenario.pass();
    Ok(())
}
