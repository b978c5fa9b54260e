//! The `cowtree` command.

mod cmd;
mod exit;
mod units;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Copy-on-write clones of directory trees.
///
/// cowtree shares file data through reflinks (FICLONE on Linux XFS and btrfs) so that copies of
/// a tree cost almost no time and no extra disk, and says plainly when a filesystem cannot and it
/// copied instead.
#[derive(Debug, Parser)]
#[command(
    name = "cowtree",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Probe(cmd::probe::Args),
    Du(cmd::du::Args),
    Dedupe(cmd::dedupe::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Probe(args) => cmd::probe::run(args),
        Command::Du(args) => cmd::du::run(args),
        Command::Dedupe(args) => cmd::dedupe::run(args),
    };
    match result {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("cowtree: {err}");
            err.exit_code().into()
        }
    }
}
