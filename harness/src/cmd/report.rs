//! `faultline report <results-dir>`: rebuilds `report.html` from a stored
//! run (history, results, seed, spec, node logs) and optionally JUnit XML.
//!
//! Exit code: the stored run's verdict (0 valid, 1 invalid, 2 unknown), or
//! 3 when the folder cannot be read or the report cannot be written.
use std::path::PathBuf;
use std::process::ExitCode;

use crate::report;
use crate::results::Results;
use crate::run::RunOutcome;
use crate::{messages, EXIT_HARNESS_ERROR};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// A results folder written by `faultline test`.
    pub results_dir: PathBuf,
    /// Where to write the page (default: RESULTS_DIR/report.html).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write JUnit XML: one test case per checker.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let outcome = match RunOutcome::load(&args.results_dir) {
        Ok(outcome) => outcome,
        Err(error) => {
            messages::error(format_args!("report: {error}"));
            return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
        }
    };
    let written = report::write_run(
        &outcome.results,
        &outcome.dir,
        &outcome.timeline,
        args.out.as_deref(),
        args.junit.as_deref(),
    );
    let stats = match written {
        Ok(stats) => stats,
        Err(error) => {
            messages::error(error);
            return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
        }
    };
    if !args.quiet {
        messages::report_stats(&stats.path, stats.bytes, stats.op_count, stats.timeline_ops);
    }
    Ok(ExitCode::from(Results::exit_code_of(outcome.results.verdict)))
}
