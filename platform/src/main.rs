//! `beffroi` command line: parses arguments, sets up logging and the runtime, and hands over
//! to the library.

mod cli;

use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitCode};

use clap::Parser as _;

/// mimalloc instead of the system allocator: the ingest path allocates and frees small
/// buffers at a high rate from many threads, where glibc's arenas cost about 12 % of the
/// platform's CPU at one reading per message (measured with `perf`, see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The mimalloc option `beffroi` runs with, and its value.
///
/// By default mimalloc commits its arenas eagerly on Linux. The embedded broker reserves
/// large per-connection and per-subscription buffers that it mostly never fills. With eager
/// commit, each gateway connection held by the gate cost about 555 KiB of resident memory;
/// with `0`, about 66 KiB (`beffroi bench gate`, docs/benchmarks.md).
const ALLOCATOR_OPTION: (&str, &str) = ("MIMALLOC_ARENA_EAGER_COMMIT", "0");

/// Runs this executable again with [`ALLOCATOR_OPTION`] in its environment, unless it is set
/// already (an operator's own value wins). mimalloc reads its options from the environment
/// once, before `main`, and the workspace forbids the `unsafe` call that would set them later.
/// Returns only if the re-execution failed; the platform then goes on with mimalloc's defaults.
fn apply_allocator_option() {
    let (name, value) = ALLOCATOR_OPTION;
    if std::env::var_os(name).is_some() {
        return;
    }
    let mut args = std::env::args_os();
    let (Ok(exe), Some(arg0)) = (std::env::current_exe(), args.next()) else {
        return;
    };
    let error = Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env(name, value)
        .exec();
    eprintln!("beffroi: cannot run again with {name}={value} ({error}); using mimalloc's defaults");
}

fn main() -> ExitCode {
    apply_allocator_option();
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
