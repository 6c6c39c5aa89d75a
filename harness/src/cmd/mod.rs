//! The command line: flags parsed once into each command's arguments,
//! then the command's `run`, which returns the process exit code.
//!
//! Exit codes: 0 valid, 1 invalid, 2 unknown, 3 harness error.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{messages, EXIT_HARNESS_ERROR};

pub mod bench;
pub mod check;
pub mod lazyfs;
pub mod matrix;
pub mod replay;
pub mod report;
pub mod shrink;
pub mod test;

#[derive(Parser)]
#[command(name = "faultline", version, about = "Jepsen-style fault-injection testing")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check recorded histories (faultline JSONL, Jepsen logs or EDN).
    Check(check::CheckArgs),
    // Its about and long about come from `TestArgs`'s doc, which goes on
    // to say what the no-flag test runs; a doc here would replace both.
    Test(Box<test::TestArgs>),
    /// Rebuild the HTML report of a stored run from its history.
    Report(report::ReportArgs),
    /// Re-run a recorded test (spec, seed, schedule) N times; print how often it fails the same way.
    Replay(replay::ReplayArgs),
    /// Search for a smaller test (fewer faults, shorter, fewer keys) that still fails the way a recorded run did.
    Shrink(shrink::ShrinkArgs),
    /// Run short seeded tests against each planted bug and weaker mode; print what was caught.
    Matrix(matrix::MatrixArgs),
    /// Print performance figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Serve a FUSE mount that keeps unsynced file data in memory (the power-loss nemesis's file system).
    Lazyfs(lazyfs::LazyFsArgs),
    /// Internal: kill the process groups named on stdin when stdin ends (the harness died).
    #[command(hide = true)]
    Guard,
}

/// What `faultline` does with its command line.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are not errors.
            let code = if err.use_stderr() { EXIT_HARNESS_ERROR } else { 0 };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Test(args) => test::run(*args),
        Command::Report(args) => report::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Shrink(args) => shrink::run(args),
        Command::Matrix(args) => matrix::run(args),
        Command::Bench(command) => bench::run(command),
        Command::Lazyfs(args) => lazyfs::run(args),
        Command::Guard => {
            crate::cluster::serve_guard(std::io::stdin().lock());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            messages::error(format_args!("{err:#}"));
            ExitCode::from(EXIT_HARNESS_ERROR)
        }
    }
}

/// How `test` and `check` print their results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}
