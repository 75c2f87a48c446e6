//! The heap allocator's own figures, read from jemalloc at each render: what the platform's
//! objects hold (`allocated`) against what the allocator keeps resident for them (`resident`).
//! Their difference is the allocator's cache and fragmentation; a resident size that grows while
//! `allocated` stays level is the allocator's doing, not a leak (docs/benchmarks.md, "Soak").
//!
//! Rendered only where jemalloc is the process's global allocator (the `beffroi` binary): in a
//! process that merely links it, its figures are only its own bookkeeping and nothing is
//! rendered.

use std::fmt::Write as _;
use std::sync::OnceLock;

use tikv_jemalloc_ctl::{epoch, stats, thread};

/// One reading of jemalloc's statistics, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AllocatorFigures {
    allocated: usize,
    active: usize,
    metadata: usize,
    resident: usize,
    retained: usize,
}

impl AllocatorFigures {
    /// Refreshes jemalloc's statistics and reads them; `None` if jemalloc is not the global
    /// allocator or its statistics cannot be read.
    pub(crate) fn read() -> Option<Self> {
        if !jemalloc_is_global() {
            return None;
        }
        epoch::advance().ok()?;
        Some(Self {
            allocated: stats::allocated::read().ok()?,
            active: stats::active::read().ok()?,
            metadata: stats::metadata::read().ok()?,
            resident: stats::resident::read().ok()?,
            retained: stats::retained::read().ok()?,
        })
    }

    /// Appends them in the Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        let figures = [
            (
                "beffroi_allocator_allocated_bytes",
                "Bytes the platform's live heap objects hold.",
                self.allocated,
            ),
            (
                "beffroi_allocator_active_bytes",
                "Bytes in the allocator's pages that hold live objects (allocated, rounded up to whole pages).",
                self.active,
            ),
            (
                "beffroi_allocator_metadata_bytes",
                "Bytes of the allocator's own bookkeeping.",
                self.metadata,
            ),
            (
                "beffroi_allocator_resident_bytes",
                "Bytes of the allocator's pages resident in memory (live objects, metadata and freed pages not yet returned).",
                self.resident,
            ),
            (
                "beffroi_allocator_retained_bytes",
                "Bytes of address space the allocator returned to the system but keeps mapped for reuse (not resident).",
                self.retained,
            ),
        ];
        for (name, help, value) in figures {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

/// Whether the global allocator is jemalloc, found once: a heap allocation made through it shows
/// in jemalloc's count of the bytes this thread has allocated, or it does not.
fn jemalloc_is_global() -> bool {
    static GLOBAL: OnceLock<bool> = OnceLock::new();
    *GLOBAL.get_or_init(|| {
        const PROBE: usize = 64 * 1024;
        let Ok(allocated) = thread::allocatedp::read() else {
            return false;
        };
        let before = allocated.get();
        let probe = std::hint::black_box(Vec::<u8>::with_capacity(PROBE));
        let after = allocated.get();
        drop(probe);
        after.saturating_sub(before) >= PROBE as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_figure_as_a_gauge() {
        let figures = AllocatorFigures {
            allocated: 1,
            active: 4096,
            metadata: 2,
            resident: 8192,
            retained: 3,
        };
        let mut out = String::new();
        figures.render(&mut out);
        for (name, value) in [
            ("allocated", 1),
            ("active", 4096),
            ("metadata", 2),
            ("resident", 8192),
            ("retained", 3),
        ] {
            let metric = format!("beffroi_allocator_{name}_bytes");
            assert!(out.contains(&format!("# TYPE {metric} gauge\n")), "{out}");
            assert!(out.contains(&format!("\n{metric} {value}\n")), "{out}");
        }
    }

    #[test]
    fn renders_nothing_where_jemalloc_is_not_the_allocator() {
        // The test harness runs on the system allocator: jemalloc is linked, not used.
        assert_eq!(AllocatorFigures::read(), None);
    }
}
