//! `faultline shrink RESULTS-DIR [--budget 20m] [--runs-per-candidate K]`:
//! search for a smaller test that still fails the way a recorded run did
//! (`crate::shrink`), running every candidate for real, within a budget.
use std::path::PathBuf;
use std::process::ExitCode;

use crate::fields::positive_duration;
use crate::nemesis::recorded::SCHEDULE_FILE;
use crate::replay::Recorded;
use crate::shrink::record::ShrinkRecord;
use crate::shrink::runner::{shrink_recorded, ShrinkOptions};
use crate::{messages, EXIT_HARNESS_ERROR};

/// Search for a smaller test that still fails the way a recorded run did:
/// fewer fault events (delta debugging), shorter faults and quiet periods,
/// a shorter time limit, fewer keys, clients and operations per second,
/// then fewer nodes where the system's spec allows.
/// Every candidate runs for real; it fails the same way when one of its
/// runs shares a finding with the original (as `faultline replay` says).
/// The search takes 60 % of the budget; the rest confirms its result: a
/// candidate that failed once may have been lucky, so the smallest is run
/// 4 times and, if it fails the same way in fewer than half, a binary
/// search along the candidates the search accepted finds the smallest
/// that does. Writes RESULTS-DIR/shrink/ with the minimal spec.yaml,
/// schedule.jsonl, shrink.json and report.html (a run of the minimal test,
/// with its before and after and the surviving faults). Exit 0 when it
/// ran, 3 on a harness error.
#[derive(clap::Args, Debug)]
pub struct ShrinkArgs {
    /// A results folder of `faultline test` whose verdict is invalid.
    #[arg(value_name = "RESULTS-DIR")]
    pub dir: PathBuf,
    /// Wall time the search may take, e.g. 20m, 90s; no run starts that
    /// would end after it.
    #[arg(long, default_value = "20m")]
    pub budget: String,
    /// Runs per candidate (1-5); by default from the original's
    /// reproduction rate in RESULTS-DIR/replay/replay.json (enough runs to
    /// see a failure of that rate 9 times in 10), else 2.
    #[arg(long, value_name = "K")]
    pub runs_per_candidate: Option<u32>,
    /// How the schedule's targets are aimed: role or node.
    #[arg(long, value_name = "role|node", default_value = "role")]
    pub targets: String,
    /// The node binary, if it moved since the recorded run.
    #[arg(long, value_name = "PATH")]
    pub node_binary: Option<PathBuf>,
}


pub fn run(args: ShrinkArgs) -> anyhow::Result<ExitCode> {
    match shrink_dir(&args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(message) => {
            messages::error(message);
            Ok(ExitCode::from(EXIT_HARNESS_ERROR))
        }
    }
}

fn shrink_dir(args: &ShrinkArgs) -> Result<(), String> {
    let options = ShrinkOptions {
        budget_ms: positive_duration("--budget", &args.budget).map_err(|e| e.to_string())?,
        runs_per_candidate: args.runs_per_candidate,
        by: args.targets.parse().map_err(|e| format!("--targets {e}"))?,
        node_binary: args.node_binary.clone(),
    };
    let recorded = Recorded::open(&args.dir).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    let record = shrink_recorded(&runtime, &recorded, &options, &mut |line| println!("{line}")).map_err(|e| e.to_string())?;
    print_table(&record);
    println!("minimal spec and schedule: {} and {}", record.dir.join("spec.yaml").display(), record.dir.join(SCHEDULE_FILE).display());
    let report = record.dir.join(crate::report::REPORT_FILE);
    if report.is_file() {
        println!("report: {}", report.display());
    }
    Ok(())
}

/// Before and after, as the docs show it.
pub fn print_table(record: &ShrinkRecord) {
    println!("{:<15} before -> after", "");
    for row in record.rows() {
        println!("{:<15} {:>6} -> {}", row.what, row.before, row.after);
    }
    let budget = if record.out_of_budget { ", budget spent" } else { "" };
    println!("{} candidates in {:.1} min{budget}", record.candidates_tried, record.wall_ms as f64 / 60e3);
}
