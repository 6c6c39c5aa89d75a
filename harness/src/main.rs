//! The `faultline` binary: parses flags into a validated config and hands it
//! to one command's `run`, which returns the process exit code.
//!
//! Exit codes: 0 valid, 1 invalid, 2 unknown, 3 harness error.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use faultline::{bench, check_cmd, lazyfs_cmd, matrix, report_cmd, test_cmd, EXIT_HARNESS_ERROR};

#[derive(Parser)]
#[command(name = "faultline", version, about = "Jepsen-style fault-injection testing")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check recorded histories (faultline JSONL, Jepsen logs or EDN).
    Check(check_cmd::CheckArgs),
    /// Run a faulted test against a cluster and check its history.
    Test(Box<test_cmd::TestArgs>),
    /// Rebuild the HTML report of a stored run from its history.
    Report(report_cmd::ReportArgs),
    /// Run short seeded tests against each planted bug and weaker mode; print what was caught.
    Matrix(matrix::MatrixArgs),
    /// Print performance figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Serve a FUSE mount that keeps unsynced file data in memory (the power-loss nemesis's file system).
    Lazyfs(lazyfs_cmd::LazyFsArgs),
    /// Internal: kill the process groups named on stdin when stdin ends (the harness died).
    #[command(hide = true)]
    Guard,
}

fn main() -> ExitCode {
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
        Command::Check(args) => check_cmd::run(args),
        Command::Test(args) => test_cmd::run(*args),
        Command::Report(args) => report_cmd::run(args),
        Command::Matrix(args) => matrix::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Lazyfs(args) => lazyfs_cmd::run(args),
        Command::Guard => {
            faultline::cluster::serve_guard(std::io::stdin().lock());
            Ok(std::process::ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("faultline: error: {err:#}");
            ExitCode::from(EXIT_HARNESS_ERROR)
        }
    }
}
