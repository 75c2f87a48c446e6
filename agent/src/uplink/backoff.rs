//! Jittered exponential backoff between reconnection attempts.

use std::time::Duration;

/// Exponential backoff with "equal jitter": each delay is drawn from `[d/2, d]`, where `d`
/// doubles from `initial` up to `max`, so gateways that lost the platform together do not
/// reconnect in lockstep.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff from `initial` to `max`, jitter seeded by `seed`.
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
            rng: splitmix64(seed) | 1,
        }
    }

    /// After a success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(self.random() % spread.max(1))
    }

    /// xorshift64: enough for jitter, no dependency.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

/// SplitMix64 finaliser: spreads nearby seeds (pids, gateway hashes) over the whole range.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_and_caps() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        let mut backoff = Backoff::new(initial, max, 7);
        let mut ceiling = initial;
        for _ in 0..10 {
            let delay = backoff.next_delay();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} vs {ceiling:?}"
            );
            ceiling = (ceiling * 2).min(max);
        }
        backoff.reset();
        assert!(backoff.next_delay() <= initial);
    }

    #[test]
    fn seeds_spread_delays() {
        let delays: std::collections::HashSet<_> = (1..20)
            .map(|seed| {
                let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), seed);
                b.next_delay();
                b.next_delay()
            })
            .collect();
        assert!(delays.len() > 10, "jitter too weak: {delays:?}");
    }
}
