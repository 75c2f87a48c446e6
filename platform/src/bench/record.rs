//! Machine-readable results (`--json PATH` on each benchmark): the shared format of
//! `beffroi-bench-record`, which `bench/report` renders into `docs/benchmarks/`.

pub(crate) use beffroi_bench_record::{Goal, Record};
