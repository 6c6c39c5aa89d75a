//! `faultline replay RESULTS-DIR [--runs N]`: re-run a recorded test with
//! its spec, seed and schedule, and say how often it fails the same way.
use std::path::PathBuf;
use std::process::ExitCode;

use crate::nemesis::recorded::RecordedSchedule;
use crate::nemesis::TargetsBy;
use crate::plan::TestPlan;
use crate::replay::{matches, Outcome, Recorded, ReplayRecord, Rerun, RUNS_MAX};
use crate::run::{self, RunError, RunOptions};
use crate::{messages, EXIT_HARNESS_ERROR};

/// Reruns in a row that end in a harness error before the replay stops.
const ERRORS_IN_A_ROW_MAX: u32 = 3;

/// Re-run a recorded test (same spec, seed and schedule) N times; print
/// each run's verdict, the checkers that fired, whether it failed the way
/// the original did, and the reproduction rate. The reruns and
/// `replay.json` go to RESULTS-DIR/replay/. Exit 0 when the reruns ran
/// (whatever the rate), 3 on a harness error.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// A results folder of `faultline test` (store/NAME/TIMESTAMP, or
    /// store/NAME/latest).
    #[arg(value_name = "RESULTS-DIR")]
    pub dir: PathBuf,
    /// Reruns, 1 to 100.
    #[arg(long, default_value_t = 5)]
    pub runs: u32,
    /// How the schedule's targets are aimed: `role` (the leader now where
    /// the leader was hit) or `node` (the same node numbers).
    #[arg(long, value_name = "role|node", default_value = "role")]
    pub targets: String,
    /// Ignore the schedule: the spec and seed alone draw the faults again,
    /// as a rerun with --seed does (to compare the two rates).
    #[arg(long)]
    pub seed_only: bool,
    /// The node binary, if it moved since the recorded run
    /// (`cluster.node_binary`).
    #[arg(long, value_name = "PATH")]
    pub node_binary: Option<PathBuf>,
}

/// The plan of the reruns: the recorded spec (its seed included) following
/// the recorded schedule, with results under RESULTS-DIR/replay/.
fn plan(args: &ReplayArgs, recorded: &Recorded) -> Result<TestPlan, String> {
    if !(1..=RUNS_MAX).contains(&args.runs) {
        return Err(format!("--runs {} is not in 1..={RUNS_MAX}", args.runs));
    }
    let by: TargetsBy = args.targets.parse().map_err(|e: String| e.replace("--schedule-targets", "--targets"))?;
    let mut spec = recorded.spec.clone();
    spec.store = recorded.dir.join("replay");
    if let Some(binary) = &args.node_binary {
        spec.cluster.options.insert("node_binary".into(), binary.display().to_string().into());
    }
    let seed = spec.seed.ok_or_else(|| format!("{}/spec.yaml has no seed", recorded.dir.display()))?;
    let plan = TestPlan::from_spec(&spec, seed).map_err(|e| e.to_string())?;
    if args.seed_only {
        return Ok(plan);
    }
    let schedule = RecordedSchedule::read(&recorded.schedule, plan.cluster.nodes, plan.schedule.time_limit_ms)
        .map_err(|e| e.to_string())?;
    plan.follow_schedule(schedule, by).map_err(|e| e.to_string())
}

fn describe(outcome: &Outcome) -> String {
    let verdict = outcome.verdict.map_or("harness error", |v| v.name());
    let found = match (&outcome.error, outcome.findings.is_empty()) {
        (Some(error), _) => error.clone(),
        (None, true) => "no finding".to_string(),
        (None, false) => outcome.findings.join(", "),
    };
    let first = outcome.first_failure_ms.map(|ms| format!(", first failing operation at {:.1} s", ms as f64 / 1e3)).unwrap_or_default();
    format!("{verdict:<8} {found}{first}")
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let prepared = Recorded::open(&args.dir).map_err(|e| e.to_string()).and_then(|recorded| {
        let plan = plan(&args, &recorded)?;
        Ok((recorded, plan))
    });
    let (recorded, plan) = match prepared {
        Ok(prepared) => prepared,
        Err(message) => {
            messages::error(message);
            return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
        }
    };
    println!("replay of {}", recorded.dir.display());
    println!("original  {}", describe(&recorded.original));
    match &plan.nemesis.recorded {
        Some((schedule, _)) => println!(
            "seed {}, {} faults from {}, {} runs, targets by {}",
            plan.seed,
            schedule.events.len(),
            recorded.schedule.display(),
            args.runs,
            args.targets
        ),
        None => println!("seed {} alone (faults drawn again), {} runs", plan.seed, args.runs),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut reruns = Vec::new();
    let mut errors_in_a_row = 0;
    for run in 1..=args.runs {
        let outcome = match runtime.block_on(run::run(&plan, RunOptions { quiet: true })) {
            Ok(outcome) => Outcome::of(&outcome.results, &outcome.timeline),
            Err(failure) => {
                let interrupted = matches!(failure.error, RunError::Interrupted { .. });
                let dir = failure.partial.as_ref().map(|partial| partial.dir.clone()).unwrap_or_default();
                let outcome = Outcome { verdict: None, findings: Vec::new(), first_failure_ms: None, dir, error: Some(failure.error.to_string()) };
                if interrupted {
                    messages::error(&failure.error);
                    return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
                }
                outcome
            }
        };
        let matched = matches(&recorded.original, &outcome);
        println!("run {run}/{}  {}  {}", args.runs, if matched { "same   " } else { "differs" }, describe(&outcome));
        errors_in_a_row = if outcome.verdict.is_none() { errors_in_a_row + 1 } else { 0 };
        reruns.push(Rerun { run, outcome, matches: matched });
        if errors_in_a_row == ERRORS_IN_A_ROW_MAX {
            messages::error(format_args!("{ERRORS_IN_A_ROW_MAX} reruns in a row ended in a harness error; stopping"));
            break;
        }
    }
    let record = ReplayRecord::new(recorded.original.clone(), plan.seed, recorded.schedule.clone(), reruns);
    let file = if args.seed_only { "replay-seed-only.json" } else { "replay.json" };
    let out = recorded.dir.join("replay").join(file);
    std::fs::create_dir_all(recorded.dir.join("replay"))?;
    std::fs::write(&out, serde_json::to_string_pretty(&record)?)?;
    let ran = record.runs.len();
    let median = record.median_first_failure_ms.map(|ms| format!("; median first failing operation at {:.1} s", ms as f64 / 1e3)).unwrap_or_default();
    println!(
        "reproduced {} of {ran} ({:.0} %){median}; {}",
        record.reproduced,
        100.0 * f64::from(record.reproduced) / ran.max(1) as f64,
        out.display()
    );
    match errors_in_a_row {
        ERRORS_IN_A_ROW_MAX => Ok(ExitCode::from(EXIT_HARNESS_ERROR)),
        _ => Ok(ExitCode::SUCCESS),
    }
}
