//! `charter`: the one binary. Parses the command line and dispatches to a subcommand
//! in `cli/`; all work happens there and in the library crates.

mod cli;
mod config;
mod services;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(&cli.global);
    match cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
