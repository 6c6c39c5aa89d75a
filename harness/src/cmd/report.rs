//! `faultline report <results-dir>`: rebuilds `report.html` from a stored
//! run (history, results, seed, spec, node logs) and optionally JUnit XML.
//!
//! Exit code: the stored run's verdict (0 valid, 1 invalid, 2 unknown), or
//! 3 when the folder cannot be read or the report cannot be written.
use std::path::PathBuf;
use std::process::ExitCode;

use crate::report::{self, ReportInput};
use crate::{junit, messages, EXIT_HARNESS_ERROR};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// A results folder written by `faultline test`.
    pub results_dir: PathBuf,
    /// Where to write the page (default: <results-dir>/report.html).
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
    let input = match ReportInput::from_run_dir(&args.results_dir) {
        Ok(input) => input,
        Err(error) => {
            messages::error(error);
            return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
        }
    };
    let out = args.out.clone().unwrap_or_else(|| args.results_dir.join(report::REPORT_FILE));
    let stats = match report::write_report(&input, &out) {
        Ok(stats) => stats,
        Err(error) => {
            messages::error(error);
            return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
        }
    };
    if let Some(path) = &args.junit {
        if let Err(error) = junit::write(path, &input, &stats.findings) {
            messages::error(error);
            return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
        }
    }
    if !args.quiet {
        messages::report_stats(&stats.path, stats.bytes, stats.op_count, stats.timeline_ops);
    }
    let code = input.verdict.map_or(EXIT_HARNESS_ERROR, crate::runner::results::exit_code);
    Ok(ExitCode::from(code))
}
