//! A fleet of simulated gateways fed by the signing generator, shared by `bench ingest` and
//! `bench cluster`:
//!
//! ```text
//! enroll : each gateway registered (keys, certificate) through its gate's registrar, its
//!          feed handed to the generator, which signs the prefill (timed)
//! start  : every gateway connects and publishes on the gateways' runtime
//! land   : no new batches; wait for every ack (bounded), stop the generator
//! verify : each gateway's seqs 1..=published committed once in the store
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use beffroi_protocol::{GatewayId, TenantId};
use beffroi_store::Store;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::gateways::{GatewayReport, Phase, Registrar, SimGateway};
use super::generator::{Envelope, Feed, Generator, GeneratorStats};

/// Envelope bytes per reading (CBOR of a reading, measured ≈ 45–55) plus room, and the
/// per-envelope overhead (COSE, batch header, allocation): for sizing the prefill only.
const BYTES_PER_READING: usize = 64;
const BYTES_PER_ENVELOPE: usize = 384;
/// Rates the prefill is sized for (a run faster than this signs the rest live).
const EXPECTED_READINGS_PER_S: usize = 400_000;
const EXPECTED_MESSAGES_PER_S: usize = 40_000;
/// From this many readings per message, envelopes are signed live rather than all ahead.
const LIVE_SIGNING_FROM: usize = 100;

/// How the fleet's gateways publish.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FleetPlan {
    /// Readings per signed message.
    pub per_message: usize,
    /// Batches in flight per gateway.
    pub window: usize,
    /// Envelopes signed ahead per gateway.
    pub capacity: usize,
    /// A batch unacknowledged for this long is published again.
    pub ack_timeout: Duration,
    /// Signer threads.
    pub signer_threads: usize,
}

impl FleetPlan {
    /// `per_message` readings per message, `window` in flight, for `gateways` publishing
    /// about `run_seconds`: envelopes signed ahead within `presign_mib` MiB, or a few windows
    /// signed live for large messages (one signature per many readings costs little,
    /// reported as the signer threads' CPU, and keeps the generator out of the peak RSS).
    /// Acks awaited 30 s, two signer threads, until [`FleetPlan::with`].
    pub(crate) fn sized(
        per_message: usize,
        window: usize,
        gateways: usize,
        run_seconds: u64,
        presign_mib: usize,
    ) -> Self {
        let gateways = gateways.max(1);
        let envelope_bytes = BYTES_PER_ENVELOPE + per_message * BYTES_PER_READING;
        let per_second = if per_message > 1 {
            EXPECTED_READINGS_PER_S / per_message
        } else {
            EXPECTED_MESSAGES_PER_S
        };
        let expected_messages = per_second * run_seconds as usize / gateways;
        let affordable = presign_mib * 1024 * 1024 / gateways / envelope_bytes;
        let capacity = if per_message >= LIVE_SIGNING_FROM {
            (window * 4).max(32)
        } else {
            expected_messages.min(affordable)
        }
        .max(window * 2)
        .max(4);
        Self {
            per_message,
            window,
            capacity,
            ack_timeout: Duration::from_secs(30),
            signer_threads: 2,
        }
    }

    /// The same with this ack timeout and signer threads.
    pub(crate) fn with(self, ack_timeout: Duration, signer_threads: usize) -> Self {
        Self {
            ack_timeout,
            signer_threads,
            ..self
        }
    }
}

/// Enrolled gateways with their envelopes signed ahead, not yet connected.
pub(crate) struct Fleet {
    names: Vec<GatewayId>,
    sims: Vec<SimGateway>,
    receivers: Vec<mpsc::Receiver<Envelope>>,
    generator: Generator,
    ack_timeout: Duration,
}

impl Fleet {
    /// Enrolls `names` of `tenant` (gateway `i` through `gates[i % gates.len()]`), keys under
    /// `keys_dir`, and starts the generator (returns once the prefill is signed).
    pub(crate) async fn enroll(
        gates: &[Registrar<'_>],
        tenant: &TenantId,
        names: Vec<GatewayId>,
        keys_dir: &Path,
        plan: FleetPlan,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!gates.is_empty(), "no gate to enroll through");
        let mut sims = Vec::with_capacity(names.len());
        let mut feeds = Vec::with_capacity(names.len());
        let mut receivers = Vec::with_capacity(names.len());
        for (i, gateway) in names.iter().enumerate() {
            let (sim, signer) = gates[i % gates.len()]
                .enroll(
                    tenant,
                    gateway.clone(),
                    keys_dir,
                    plan.window,
                    plan.ack_timeout,
                )
                .await?;
            let (tx, rx) = mpsc::channel(plan.capacity);
            feeds.push(Feed::new(
                signer,
                tenant.clone(),
                gateway.clone(),
                plan.per_message,
                tx,
            )?);
            receivers.push(rx);
            sims.push(sim);
        }
        eprintln!(
            "bench: {} gateways enrolled; signing {} envelopes ahead ({} per gateway)…",
            names.len(),
            plan.capacity * names.len(),
            plan.capacity
        );
        let (threads, refill_below) = (plan.signer_threads, (plan.capacity / 4).max(1));
        let generator =
            tokio::task::spawn_blocking(move || Generator::start(feeds, threads, refill_below))
                .await??;
        let (messages, readings) = generator.stats().max_rate();
        eprintln!("bench: generator signs {messages:.0} messages/s ({readings:.0} readings/s)");
        Ok(Self {
            names,
            sims,
            receivers,
            generator,
            ack_timeout: plan.ack_timeout,
        })
    }

    /// Connects every gateway and starts publishing on `runtime`.
    pub(crate) fn start(self, runtime: &tokio::runtime::Handle, phase: Arc<Phase>) -> Flying {
        let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
        let tasks = self
            .sims
            .into_iter()
            .zip(self.receivers)
            .map(|(sim, rx)| runtime.spawn(sim.run(rx, phase.clone(), stop.clone(), abort.clone())))
            .collect();
        Flying {
            names: self.names,
            tasks,
            generator: self.generator,
            stop,
            abort,
            ack_timeout: self.ack_timeout,
        }
    }
}

/// A fleet publishing.
pub(crate) struct Flying {
    names: Vec<GatewayId>,
    tasks: Vec<JoinHandle<GatewayReport>>,
    generator: Generator,
    stop: CancellationToken,
    abort: CancellationToken,
    ack_timeout: Duration,
}

/// Waits for the simulated gateways' tasks once they were told to stop: at most twice the ack
/// timeout and 30 s; then `abort` is cancelled and a gateway still waiting is reported with
/// `unacked = u64::MAX`.
pub(crate) async fn join_gateways(
    tasks: Vec<JoinHandle<GatewayReport>>,
    ack_timeout: Duration,
    abort: &CancellationToken,
) -> anyhow::Result<Vec<GatewayReport>> {
    let deadline = tokio::time::Instant::now() + ack_timeout * 2 + Duration::from_secs(30);
    let mut reports = Vec::with_capacity(tasks.len());
    for task in tasks {
        let report = match tokio::time::timeout_at(deadline, task).await {
            Ok(joined) => joined.context("simulated gateway task")?,
            Err(_) => {
                abort.cancel();
                GatewayReport {
                    unacked: u64::MAX,
                    ..GatewayReport::default()
                }
            }
        };
        reports.push(report);
    }
    Ok(reports)
}

impl Flying {
    /// Stops publishing and waits for every ack, at most twice the ack timeout and 30 s; a
    /// gateway still waiting then is aborted and reported with `unacked = u64::MAX`.
    pub(crate) async fn land(self) -> anyhow::Result<Landed> {
        self.stop.cancel();
        let reports = join_gateways(self.tasks, self.ack_timeout, &self.abort).await?;
        let generator = self.generator;
        let generator = tokio::task::spawn_blocking(move || generator.stop()).await??;
        Ok(Landed {
            names: self.names,
            reports,
            generator,
        })
    }
}

/// What a fleet did, once landed.
pub(crate) struct Landed {
    names: Vec<GatewayId>,
    /// Each gateway's report, in enrollment order.
    pub reports: Vec<GatewayReport>,
    /// What the generator signed.
    pub generator: GeneratorStats,
}

impl Landed {
    /// The sum of one figure over the gateways.
    pub(crate) fn sum(&self, figure: fn(&GatewayReport) -> u64) -> u64 {
        self.reports
            .iter()
            .map(figure)
            .fold(0u64, u64::saturating_add)
    }

    /// Every publish → ack latency recorded (µs), taken out of the reports.
    pub(crate) fn take_latencies(&mut self) -> Vec<u32> {
        self.reports
            .iter_mut()
            .flat_map(|r| std::mem::take(&mut r.latencies_us))
            .collect()
    }

    /// The gateways whose seqs `1..=published` are all committed, and nothing above: checked
    /// in `store`; each other gateway is printed.
    pub(crate) async fn complete_in(
        &self,
        store: &dyn Store,
        tenant: &TenantId,
    ) -> anyhow::Result<usize> {
        let mut complete = 0;
        for (gateway, report) in self.names.iter().zip(&self.reports) {
            let state = store.seq_state(tenant, gateway).await?;
            if state.contiguous == report.published && state.above.is_empty() {
                complete += 1;
            } else {
                eprintln!(
                    "bench: {gateway}: published 1..={}, store has contiguous {} and {} above",
                    report.published,
                    state.contiguous,
                    state.above.len()
                );
            }
        }
        Ok(complete)
    }
}
