//! `beffroi` command line: parses arguments, sets up logging and the runtime, and hands over
//! to the library.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

/// jemalloc instead of the system allocator. The ingest path allocates and frees small
/// buffers at a high rate from many threads, where glibc's arenas cost about 12 % of the
/// platform's CPU at one reading per message; mimalloc, used before, kept the resident memory
/// growing by 43–50 MiB/h over the 30-minute soak where jemalloc holds it flat, at the same
/// ingest rate and with less memory per gateway connection held (docs/benchmarks.md, "Soak").
/// Its statistics are in the platform's metrics (`beffroi_allocator_…`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(cli.log_format);
    match cli::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("beffroi: {error:#}");
            // `beffroi audit`: 1 for a damaged log, 2 when it could not be checked.
            error
                .downcast_ref::<beffroi::audit::CommandError>()
                .map_or(ExitCode::FAILURE, |e| ExitCode::from(e.exit_code()))
        }
    }
}
