//! `beffroi-agent` command line: parses arguments, sets up logging and the runtime, and
//! hands over to the library.

mod bench;
mod cli;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(cli.log_format);
    match cli::dispatch(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("beffroi-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}
