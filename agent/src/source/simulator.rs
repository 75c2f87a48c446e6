//! Synthetic city sensors with daily cycles, deterministic for a seed.
//!
//! ```toml
//! [[sources]]
//! kind = "simulator"
//! seed = 42                 # default 1; same seed → same readings
//! sensors = 24              # default 24, split round-robin across `kinds`
//! rate_per_s = 1000.0       # default 10; total readings per second, evenly paced
//! kinds = ["air", "noise", "traffic", "parking"]   # default: all four
//! sensor_prefix = "sim"     # default "sim": ids sim-air-001, sim-noise-001, …
//! utc_offset_hours = 1.0    # default 0: local time of the daily cycles
//! limit = 1000000           # optional: stop after this many readings
//! ```
//!
//! | kind | metric | unit | model |
//! |---|---|---|---|
//! | `air` | `air.pm25`, `air.pm10`, `air.no2` | `ug/m3` | background + traffic peaks; PM also evening heating |
//! | `noise` | `noise.laeq` | `dB` | A-weighted equivalent level, ~45 dB at night, ~65 dB at rush hours |
//! | `traffic` | `traffic.count` | `count` | vehicles per minute, integer, ~2 at 3h, ~30 at 8h and 18h |
//! | `parking` | `parking.occupied` | `%` | share of the lot's spaces occupied, 0..=100 |
//!
//! Rush hours peak at 8h and 18h local time on weekdays (weekends: one softer midday peak);
//! each sensor has its own exposure (busy road or quiet street, shopping or residential
//! parking) and offset drawn from the seed; readings carry Gaussian noise and are clamped to
//! physical ranges.
//!
//! Every (sensor, metric) pair is a *slot*; readings go round-robin over the slots, so each
//! sensor reports every `slots / rate_per_s` seconds. Reading number `k` of a run started at
//! `start` is [`Simulator::nth`]`(k, start)`: slot `k % slots`, stamped `start + k /
//! rate_per_s`, with a value that is a pure function of (seed, slot, time). The run paces
//! itself on elapsed time (no drift; several readings per 10 ms tick at high rates) and
//! catches up after backpressure. Benchmarks generate readings without timers with
//! [`Simulator::iter`].

use std::f64::consts::TAU;
use std::time::Duration;

use beffroi_protocol::{MetricName, Reading, SensorId, Timestamp, Unit, Value};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{ReadingSink, Source, SourceError, SourceFuture};
use crate::config::ConfigError;

/// Fastest pacing tick: at high rates several readings are sent per tick.
const MIN_TICK: Duration = Duration::from_millis(10);
/// Most simulated sensors.
const MAX_SENSORS: usize = 100_000;
/// Lowest rate, readings per second (one every ~17 minutes).
const MIN_RATE_PER_S: f64 = 0.001;
/// Highest rate, readings per second.
const MAX_RATE_PER_S: f64 = 1_000_000.0;

/// A kind of simulated sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SensorKind {
    /// Air quality station: PM2.5, PM10, NO2.
    Air,
    /// Sound level meter.
    Noise,
    /// Vehicle counting loop or camera.
    Traffic,
    /// Parking lot occupancy.
    Parking,
}

impl SensorKind {
    /// Every kind, the default set.
    pub const ALL: [SensorKind; 4] = [
        SensorKind::Air,
        SensorKind::Noise,
        SensorKind::Traffic,
        SensorKind::Parking,
    ];

    /// The kind as written in sensor ids and config.
    pub const fn as_str(self) -> &'static str {
        match self {
            SensorKind::Air => "air",
            SensorKind::Noise => "noise",
            SensorKind::Traffic => "traffic",
            SensorKind::Parking => "parking",
        }
    }

    const fn metrics(self) -> &'static [(Metric, &'static str, &'static str)] {
        match self {
            SensorKind::Air => &[
                (Metric::Pm25, "air.pm25", "ug/m3"),
                (Metric::Pm10, "air.pm10", "ug/m3"),
                (Metric::No2, "air.no2", "ug/m3"),
            ],
            SensorKind::Noise => &[(Metric::Laeq, "noise.laeq", "dB")],
            SensorKind::Traffic => &[(Metric::TrafficCount, "traffic.count", "count")],
            SensorKind::Parking => &[(Metric::ParkingOccupied, "parking.occupied", "%")],
        }
    }
}

/// The `kind = "simulator"` fields as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSimulator {
    /// Name of the source in logs (1 to 64 printable characters). Unset: the kind.
    name: Option<String>,
    /// Seed of every per-sensor parameter and noise value: the same seed gives the same readings.
    #[serde(default = "default_seed")]
    seed: u64,
    /// Number of simulated sensors, split round-robin across `kinds` (1..=100000).
    #[serde(default = "default_sensors")]
    sensors: usize,
    /// Total readings per second, evenly paced (0.001..=1000000).
    #[serde(default = "default_rate_per_s")]
    rate_per_s: f64,
    /// Kinds of sensors simulated, each at most once. Unset: all four.
    kinds: Option<Vec<SensorKind>>,
    /// Prefix of the sensor ids: `<prefix>-air-001`, `<prefix>-noise-001`, … Unset: `sim`.
    sensor_prefix: Option<String>,
    /// Local time of the daily cycles (rush hours at 8h and 18h), in hours from UTC (-12..=14).
    #[serde(default)]
    utc_offset_hours: f64,
    /// Stop after this many readings (> 0). Unset: never.
    limit: Option<u64>,
}

const fn default_seed() -> u64 {
    1
}
const fn default_sensors() -> usize {
    24
}
const fn default_rate_per_s() -> f64 {
    10.0
}

/// A validated simulator configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorSpec {
    /// Name for logs.
    pub name: String,
    /// Seed of every per-sensor parameter and noise value.
    pub seed: u64,
    /// Number of simulated sensors, split round-robin across `kinds`.
    pub sensors: usize,
    /// Total readings per second.
    pub rate_per_s: f64,
    /// Kinds of sensors simulated (non-empty, no duplicates).
    pub kinds: Vec<SensorKind>,
    /// Sensor id prefix: `<prefix>-<kind>-<nnn>`.
    pub sensor_prefix: String,
    /// Offset of the city's local time from UTC, for the daily cycles.
    pub utc_offset_hours: f64,
    /// Stop after this many readings (`None`: run until stopped).
    pub limit: Option<u64>,
}

impl Default for SimulatorSpec {
    fn default() -> Self {
        Self {
            name: "simulator".to_owned(),
            seed: default_seed(),
            sensors: default_sensors(),
            rate_per_s: default_rate_per_s(),
            kinds: SensorKind::ALL.to_vec(),
            sensor_prefix: "sim".to_owned(),
            utc_offset_hours: 0.0,
            limit: None,
        }
    }
}

impl RawSimulator {
    /// Checks every field; `field` is this entry's path (`sources[0]`).
    pub fn validate(self, field: &str) -> Result<SimulatorSpec, ConfigError> {
        let name = self.name.unwrap_or_else(|| "simulator".to_owned());
        super::spec::check_name(field, &name)?;
        let spec = SimulatorSpec {
            name,
            seed: self.seed,
            sensors: self.sensors,
            rate_per_s: self.rate_per_s,
            kinds: self.kinds.unwrap_or_else(|| SensorKind::ALL.to_vec()),
            sensor_prefix: self.sensor_prefix.unwrap_or_else(|| "sim".to_owned()),
            utc_offset_hours: self.utc_offset_hours,
            limit: self.limit,
        };
        spec.check()
            .map_err(|(name, reason)| ConfigError::invalid(format!("{field}.{name}"), reason))?;
        Ok(spec)
    }
}

impl SimulatorSpec {
    /// Checks the invariants; on failure, the field name and the reason.
    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.sensors == 0 || self.sensors > MAX_SENSORS {
            return Err(("sensors", format!("must be 1 to {MAX_SENSORS}")));
        }
        if !(MIN_RATE_PER_S..=MAX_RATE_PER_S).contains(&self.rate_per_s) {
            return Err((
                "rate_per_s",
                format!("must be within {MIN_RATE_PER_S}..={MAX_RATE_PER_S}"),
            ));
        }
        if self.kinds.is_empty() {
            return Err(("kinds", "must name at least one kind".to_owned()));
        }
        for (i, kind) in self.kinds.iter().enumerate() {
            if self.kinds[..i].contains(kind) {
                return Err(("kinds", format!("{:?} is listed twice", kind.as_str())));
            }
        }
        // The longest id this spec produces must be a valid sensor id.
        let longest = format!("{}-parking-{:03}", self.sensor_prefix, self.sensors);
        if let Err(e) = SensorId::new(longest) {
            return Err(("sensor_prefix", format!("gives invalid sensor ids: {e}")));
        }
        if !(self.utc_offset_hours.is_finite() && (-12.0..=14.0).contains(&self.utc_offset_hours)) {
            return Err(("utc_offset_hours", "must be within -12..=14".to_owned()));
        }
        if self.limit == Some(0) {
            return Err(("limit", "must be greater than 0".to_owned()));
        }
        Ok(())
    }
}

/// What a slot measures; selects the value model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Pm25,
    Pm10,
    No2,
    Laeq,
    TrafficCount,
    ParkingOccupied,
}

/// One (sensor, metric) pair.
#[derive(Debug, Clone)]
struct Slot {
    sensor: SensorId,
    metric_name: MetricName,
    unit: Unit,
    metric: Metric,
    /// Index of the sensor, keys its noise stream.
    sensor_index: u64,
    /// Exposure in 0.6..1.4: busy road / shopping district above 1, quiet street below.
    exposure: f64,
    /// Site offset in -1..1.
    offset: f64,
}

/// The deterministic reading generator behind the simulator source.
#[derive(Debug, Clone)]
pub struct Simulator {
    seed: u64,
    slots: Vec<Slot>,
    period_micros: f64,
    utc_offset_micros: i64,
}

impl Simulator {
    /// A generator for `spec`; fails when the spec breaks its invariants (a spec from
    /// [`RawSimulator::validate`] never does).
    pub fn new(spec: &SimulatorSpec) -> Result<Self, SourceError> {
        spec.check().map_err(|(field, reason)| SourceError::Setup {
            source_name: spec.name.clone(),
            reason: format!("{field}: {reason}"),
        })?;
        let kinds = spec.kinds.len();
        let mut slots = Vec::new();
        for i in 0..spec.sensors {
            let kind = spec.kinds[i % kinds];
            let number = i / kinds + 1;
            let sensor_index = i as u64;
            let id = format!("{}-{}-{number:03}", spec.sensor_prefix, kind.as_str());
            let sensor = SensorId::new(id).map_err(|e| SourceError::Setup {
                source_name: spec.name.clone(),
                reason: e.to_string(),
            })?;
            let exposure = 0.6 + 0.8 * unit_interval(mix(spec.seed, sensor_index, 1));
            let offset = 2.0 * unit_interval(mix(spec.seed, sensor_index, 2)) - 1.0;
            for &(metric, metric_name, unit) in kind.metrics() {
                slots.push(Slot {
                    sensor: sensor.clone(),
                    metric_name: MetricName::new(metric_name)
                        .expect("the built-in metric names are valid"),
                    unit: Unit::new(unit).expect("the built-in units are valid"),
                    metric,
                    sensor_index,
                    exposure,
                    offset,
                });
            }
        }
        Ok(Self {
            seed: spec.seed,
            slots,
            period_micros: 1e6 / spec.rate_per_s,
            utc_offset_micros: (spec.utc_offset_hours * 3600e6).round() as i64,
        })
    }

    /// Number of (sensor, metric) slots the readings cycle over.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Reading number `k` of a run started at `start`: slot `k % slots`, stamped
    /// `start + k / rate_per_s`. Pure.
    pub fn nth(&self, k: u64, start: Timestamp) -> Reading {
        let slot = (k % self.slots.len() as u64) as usize;
        let micros = (k as f64 * self.period_micros).round() as i64;
        let time = Timestamp::from_unix_micros(start.unix_micros().saturating_add(micros));
        self.reading(slot, time)
    }

    /// Readings number `0, 1, 2, …` of a run started at `start` (endless); the fast path for
    /// benchmarks: `sim.iter(start).take(n)`.
    pub fn iter(&self, start: Timestamp) -> impl Iterator<Item = Reading> + '_ {
        (0u64..).map(move |k| self.nth(k, start))
    }

    /// The reading of `slot` (`< slot_count()`) at `time`. Pure.
    ///
    /// # Panics
    /// When `slot` is out of range.
    pub fn reading(&self, slot: usize, time: Timestamp) -> Reading {
        let s = &self.slots[slot];
        Reading {
            sensor: s.sensor.clone(),
            metric: s.metric_name.clone(),
            unit: s.unit.clone(),
            time,
            value: Value::Number(self.value(s, time)),
        }
    }

    fn value(&self, s: &Slot, time: Timestamp) -> f64 {
        let micros = time.unix_micros();
        let local = micros.saturating_add(self.utc_offset_micros);
        let day_micros = 86_400_000_000i64;
        let hour = local.rem_euclid(day_micros) as f64 / 3_600e6;
        // 1970-01-01 was a Thursday: weekday 0 = Monday.
        let weekday = (local.div_euclid(day_micros) + 3).rem_euclid(7);
        let weekend = weekday >= 5;
        let rush = if weekend {
            0.45 * bump(hour, 13.0, 2.5)
        } else {
            bump(hour, 8.0, 1.2) + 0.9 * bump(hour, 18.0, 1.5)
        };
        // 0 at 3h, 1 at 15h: daytime activity.
        let day = 0.5 - 0.5 * ((hour - 3.0) / 24.0 * TAU).cos();
        let noise = gaussian(mix(self.seed ^ 0x5eed, slot_key(s), micros as u64));
        let (exposure, offset) = (s.exposure, s.offset);
        match s.metric {
            Metric::TrafficCount => {
                // Vehicles per minute: Poisson-like spread around the mean.
                let mean = exposure * (2.0 + 6.0 * day + 30.0 * rush);
                (mean + mean.sqrt() * noise).round().max(0.0)
            }
            Metric::Laeq => {
                let level = 40.0 + 4.0 * offset + 6.0 * exposure + 12.0 * day + 8.0 * rush;
                round1((level + 1.5 * noise).clamp(30.0, 110.0))
            }
            Metric::No2 => {
                let mean = 12.0 + 3.0 * offset + exposure * (8.0 * day + 40.0 * rush);
                round1((mean * (1.0 + 0.08 * noise)).max(0.0))
            }
            Metric::Pm25 => round1(
                (pm25_mean(hour, rush, day, exposure, offset) * (1.0 + 0.1 * noise)).max(0.0),
            ),
            Metric::Pm10 => {
                let mean =
                    1.6 * pm25_mean(hour, rush, day, exposure, offset) + 3.0 * exposure * day;
                round1((mean * (1.0 + 0.1 * noise)).max(0.0))
            }
            Metric::ParkingOccupied => {
                // Shopping / office lots fill by day, residential lots by night.
                let business = ((exposure - 0.6) / 0.8).clamp(0.0, 1.0);
                let daytime =
                    business * (15.0 + 75.0 * day) + (1.0 - business) * (85.0 - 45.0 * day);
                round1((daytime + 10.0 * offset + 3.0 * noise).clamp(0.0, 100.0))
            }
        }
    }
}

fn pm25_mean(hour: f64, rush: f64, day: f64, exposure: f64, offset: f64) -> f64 {
    // Background, traffic, and evening wood heating.
    7.0 + 2.0 * offset + exposure * (3.0 * day + 6.0 * rush) + 4.0 * bump(hour, 21.0, 2.0)
}

/// A Gaussian bump of height 1 centred on `centre` hours (wrapping around midnight).
fn bump(hour: f64, centre: f64, width: f64) -> f64 {
    let mut d = (hour - centre).abs();
    if d > 12.0 {
        d = 24.0 - d;
    }
    (-(d / width).powi(2) / 2.0).exp()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn slot_key(s: &Slot) -> u64 {
    s.sensor_index.wrapping_mul(8).wrapping_add(s.metric as u64)
}

/// SplitMix64 finaliser: a well-mixed 64-bit hash of the seed, a key and a counter.
fn mix(seed: u64, key: u64, counter: u64) -> u64 {
    let mut z = seed
        .wrapping_add(key.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(counter.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform value in [0, 1) from 53 bits of `x`.
fn unit_interval(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal value (Box–Muller) from a 64-bit hash, clipped to ±4.
fn gaussian(x: u64) -> f64 {
    let u1 = 1.0 - unit_interval(x); // (0, 1]
    let u2 = unit_interval(mix(x, 0, 0));
    ((-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()).clamp(-4.0, 4.0)
}

/// The simulator as a [`Source`]: paces [`Simulator::nth`] on the tokio clock.
#[derive(Debug)]
pub struct SimulatorSource {
    name: String,
    simulator: Simulator,
    rate_per_s: f64,
    limit: Option<u64>,
}

impl SimulatorSource {
    /// Builds the generator for `spec`.
    pub fn new(spec: &SimulatorSpec) -> Result<Self, SourceError> {
        Ok(Self {
            name: spec.name.clone(),
            simulator: Simulator::new(spec)?,
            rate_per_s: spec.rate_per_s,
            limit: spec.limit,
        })
    }

    async fn run_paced(
        self,
        sink: ReadingSink,
        stop: CancellationToken,
    ) -> Result<(), SourceError> {
        let start = Timestamp::now();
        let started = tokio::time::Instant::now();
        let tick = Duration::from_secs_f64(1.0 / self.rate_per_s).max(MIN_TICK);
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let limit = self.limit.unwrap_or(u64::MAX);
        let mut sent = 0u64;
        tracing::info!(source = %self.name, slots = self.simulator.slot_count(), rate_per_s = self.rate_per_s, "simulator started");
        while sent < limit {
            tokio::select! {
                biased;
                () = stop.cancelled() => return Ok(()),
                _ = ticks.tick() => {}
            }
            // Due count from elapsed time: no drift, and catch-up after backpressure.
            let elapsed = started.elapsed().as_secs_f64();
            let due = ((elapsed * self.rate_per_s).floor() as u64 + 1).min(limit);
            while sent < due {
                let reading = self.simulator.nth(sent, start);
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return Ok(()),
                    sent_ok = sink.send(reading) => {
                        if sent_ok.is_err() {
                            return Ok(());
                        }
                    }
                }
                sent += 1;
            }
        }
        tracing::info!(source = %self.name, readings = sent, "simulator reached its limit");
        Ok(())
    }
}

impl Source for SimulatorSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, sink: ReadingSink, stop: CancellationToken) -> SourceFuture {
        Box::pin(self.run_paced(sink, stop))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::mpsc;

    use super::*;
    use crate::telemetry::{Counter, Telemetry};

    /// Monday 2026-03-02 00:00:00 UTC.
    const MONDAY: i64 = 1_772_409_600_000_000;

    fn at_hour(hour: f64) -> Timestamp {
        Timestamp::from_unix_micros(MONDAY + (hour * 3600e6) as i64)
    }

    fn sim(seed: u64) -> Simulator {
        Simulator::new(&SimulatorSpec {
            seed,
            sensors: 40,
            ..SimulatorSpec::default()
        })
        .unwrap()
    }

    #[test]
    fn monday_constant_is_a_monday() {
        assert!(at_hour(0.0).to_string().starts_with("2026-03-02T00:00:00"));
    }

    #[test]
    fn ids_metrics_and_slots() {
        let s = sim(1);
        // 10 of each kind; air has three metrics.
        assert_eq!(s.slot_count(), 10 * 3 + 10 + 10 + 10);
        let first: Vec<String> = s
            .iter(at_hour(0.0))
            .take(6)
            .map(|r| format!("{} {} {}", r.sensor, r.metric, r.unit))
            .collect();
        assert_eq!(
            first,
            [
                "sim-air-001 air.pm25 ug/m3",
                "sim-air-001 air.pm10 ug/m3",
                "sim-air-001 air.no2 ug/m3",
                "sim-noise-001 noise.laeq dB",
                "sim-traffic-001 traffic.count count",
                "sim-parking-001 parking.occupied %",
            ]
        );
        let last = s.reading(s.slot_count() - 1, at_hour(0.0));
        assert_eq!(last.sensor.as_str(), "sim-parking-010");
    }

    #[test]
    fn pacing_stamps() {
        let s = Simulator::new(&SimulatorSpec {
            rate_per_s: 4.0,
            ..SimulatorSpec::default()
        })
        .unwrap();
        let start = at_hour(1.0);
        assert_eq!(s.nth(0, start).time, start);
        assert_eq!(s.nth(3, start).time.micros_since(start), 750_000);
    }

    #[test]
    fn same_seed_same_readings_other_seed_differs() {
        let start = at_hour(7.5);
        let a: Vec<Reading> = sim(42).iter(start).take(500).collect();
        let b: Vec<Reading> = sim(42).iter(start).take(500).collect();
        let c: Vec<Reading> = sim(43).iter(start).take(500).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let differing = a.iter().zip(&c).filter(|(x, y)| x.value != y.value).count();
        assert!(differing > 400, "{differing}");
    }

    fn number(r: &Reading) -> f64 {
        match r.value {
            Value::Number(n) => n,
            _ => panic!("not a number: {r:?}"),
        }
    }

    #[test]
    fn values_are_plausible_all_day_long() {
        let s = sim(7);
        // Every 30 minutes over eight days, every slot.
        for half_hour in 0..(48 * 8) {
            let time = at_hour(f64::from(half_hour) / 2.0 + 0.25);
            for slot in 0..s.slot_count() {
                let r = s.reading(slot, time);
                let v = number(&r);
                assert!(v.is_finite());
                let ok = match r.metric.as_str() {
                    "air.pm25" | "air.pm10" => (0.0..=150.0).contains(&v),
                    "air.no2" => (0.0..=200.0).contains(&v),
                    "noise.laeq" => (30.0..=110.0).contains(&v),
                    "traffic.count" => (0.0..=200.0).contains(&v) && v.fract() == 0.0,
                    "parking.occupied" => (0.0..=100.0).contains(&v),
                    other => panic!("unexpected metric {other}"),
                };
                assert!(ok, "{} {} = {v} at {}", r.sensor, r.metric, r.time);
            }
        }
    }

    fn mean_of(s: &Simulator, metric: &str, hour: f64) -> f64 {
        let mut sum = 0.0;
        let mut n = 0.0;
        for minute in 0..30 {
            let time = at_hour(hour + f64::from(minute) / 60.0);
            for slot in 0..s.slot_count() {
                let r = s.reading(slot, time);
                if r.metric.as_str() == metric {
                    sum += number(&r);
                    n += 1.0;
                }
            }
        }
        sum / n
    }

    #[test]
    fn daily_cycles() {
        let s = sim(3);
        let traffic_3h = mean_of(&s, "traffic.count", 3.0);
        let traffic_8h = mean_of(&s, "traffic.count", 8.0);
        let traffic_18h = mean_of(&s, "traffic.count", 18.0);
        assert!(traffic_8h > 5.0 * traffic_3h, "{traffic_3h} {traffic_8h}");
        assert!(traffic_18h > 5.0 * traffic_3h, "{traffic_3h} {traffic_18h}");
        assert!(mean_of(&s, "air.no2", 8.0) > 1.5 * mean_of(&s, "air.no2", 3.0));
        assert!(mean_of(&s, "noise.laeq", 8.0) > mean_of(&s, "noise.laeq", 3.0) + 10.0);
        assert!(mean_of(&s, "air.pm10", 8.0) > mean_of(&s, "air.pm25", 8.0));
        // Saturday 8h is calmer than Monday 8h.
        assert!(mean_of(&s, "traffic.count", 8.0 + 5.0 * 24.0) < 0.5 * traffic_8h);
    }

    #[test]
    fn utc_offset_shifts_the_cycle() {
        let spec = SimulatorSpec {
            sensors: 40,
            ..SimulatorSpec::default()
        };
        let utc = Simulator::new(&spec).unwrap();
        let paris = Simulator::new(&SimulatorSpec {
            utc_offset_hours: 1.0,
            ..spec
        })
        .unwrap();
        // 7h UTC is the 8h rush hour in Paris (the noise differs, the model does not).
        let paris_7h = mean_of(&paris, "traffic.count", 7.0);
        let utc_8h = mean_of(&utc, "traffic.count", 8.0);
        assert!((paris_7h / utc_8h - 1.0).abs() < 0.1, "{paris_7h} {utc_8h}");
        let utc_7h = mean_of(&utc, "traffic.count", 7.0);
        assert!(paris_7h > 1.1 * utc_7h, "{paris_7h} {utc_7h}");
    }

    #[test]
    fn spec_checks() {
        let bad = |f: fn(&mut SimulatorSpec)| {
            let mut spec = SimulatorSpec::default();
            f(&mut spec);
            spec.check().unwrap_err().0
        };
        assert_eq!(bad(|s| s.sensors = 0), "sensors");
        assert_eq!(bad(|s| s.rate_per_s = f64::NAN), "rate_per_s");
        assert_eq!(bad(|s| s.rate_per_s = 0.0), "rate_per_s");
        assert_eq!(bad(|s| s.rate_per_s = 1e-12), "rate_per_s");
        assert_eq!(bad(|s| s.rate_per_s = f64::INFINITY), "rate_per_s");
        assert_eq!(bad(|s| s.kinds.clear()), "kinds");
        assert_eq!(
            bad(|s| s.kinds = vec![SensorKind::Air, SensorKind::Air]),
            "kinds"
        );
        assert_eq!(bad(|s| s.sensor_prefix = "Sim".into()), "sensor_prefix");
        assert_eq!(bad(|s| s.sensor_prefix = "x".repeat(60)), "sensor_prefix");
        assert_eq!(bad(|s| s.utc_offset_hours = 20.0), "utc_offset_hours");
        assert_eq!(bad(|s| s.limit = Some(0)), "limit");
        assert!(Simulator::new(&SimulatorSpec {
            sensors: 0,
            ..SimulatorSpec::default()
        })
        .is_err());
    }

    #[test]
    fn toml_fields() {
        let raw: RawSimulator = toml::from_str(
            "seed = 9\nsensors = 3\nrate_per_s = 100.0\nkinds = [\"traffic\"]\nsensor_prefix = \"x\"\nlimit = 5",
        )
        .unwrap();
        let spec = raw.validate("sources[0]").unwrap();
        assert_eq!(spec.kinds, [SensorKind::Traffic]);
        let s = Simulator::new(&spec).unwrap();
        assert_eq!(s.reading(2, at_hour(0.0)).sensor.as_str(), "x-traffic-003");
        let err = toml::from_str::<RawSimulator>("kinds = [\"weather\"]").unwrap_err();
        assert!(err.to_string().contains("weather"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn run_paces_and_stops_at_limit() {
        // Paused time: 300 readings at 1000/s take 300 ms of (virtual) time, one tick at most.
        let spec = SimulatorSpec {
            rate_per_s: 1000.0,
            limit: Some(300),
            ..SimulatorSpec::default()
        };
        let (tx, mut rx) = mpsc::channel(1000);
        let telemetry = Arc::new(Telemetry::default());
        let sink = ReadingSink::new(tx, telemetry.clone(), "simulator");
        let source = Box::new(SimulatorSource::new(&spec).unwrap());
        let started = tokio::time::Instant::now();
        tokio::time::timeout(
            Duration::from_secs(10),
            source.run(sink, CancellationToken::new()),
        )
        .await
        .unwrap()
        .unwrap();
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(290), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(320), "{elapsed:?}");
        assert_eq!(telemetry.get(Counter::ReadingsCollected), 300);
        let mut received = Vec::new();
        while let Ok(r) = rx.try_recv() {
            received.push(r);
        }
        let start = received[0].time;
        let expected: Vec<Reading> = Simulator::new(&spec)
            .unwrap()
            .iter(start)
            .take(300)
            .collect();
        assert_eq!(received, expected);
    }

    #[tokio::test]
    async fn run_stops_when_cancelled_under_backpressure() {
        let (tx, _rx) = mpsc::channel(10);
        let sink = ReadingSink::new(tx, Arc::new(Telemetry::default()), "simulator");
        let spec = SimulatorSpec {
            rate_per_s: 10_000.0,
            ..SimulatorSpec::default()
        };
        let source = Box::new(SimulatorSource::new(&spec).unwrap());
        let stop = CancellationToken::new();
        let task = tokio::spawn(source.run(sink, stop.clone()));
        // The channel fills at once: the source waits on backpressure, and still stops.
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
