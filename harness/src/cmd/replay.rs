//! `faultline replay RESULTS-DIR [--runs N]`: re-run a recorded test with
//! its spec, seed and schedule, and say how often it fails the same way.
use std::path::PathBuf;
use std::process::ExitCode;

use crate::nemesis::TargetsBy;
use crate::replay::{rerun, Outcome, Recorded, ReplayOptions, RUNS_MAX};
use crate::{messages, EXIT_HARNESS_ERROR};

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

impl ReplayArgs {
    fn options(&self) -> Result<ReplayOptions, String> {
        if !(1..=RUNS_MAX).contains(&self.runs) {
            return Err(format!("--runs {} is not in 1..={RUNS_MAX}", self.runs));
        }
        let by: TargetsBy = self.targets.parse().map_err(|e| format!("--targets {e}"))?;
        Ok(ReplayOptions { runs: self.runs, by, seed_only: self.seed_only, node_binary: self.node_binary.clone() })
    }
}

/// `invalid  durability: lost writes, first failing operation at 4.2 s`.
pub fn describe(outcome: &Outcome) -> String {
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
    let prepared = args.options().and_then(|options| {
        let recorded = Recorded::open(&args.dir).map_err(|e| e.to_string())?;
        let plan = recorded.plan(&options).map_err(|e| e.to_string())?;
        Ok((options, recorded, plan))
    });
    let (options, recorded, plan) = match prepared {
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
    let mut show = |rerun: &crate::replay::Rerun| {
        let same = if rerun.matches { "same   " } else { "differs" };
        println!("run {}/{}  {same}  {}", rerun.run, args.runs, describe(&rerun.outcome));
    };
    let (record, out) = match rerun(&runtime, &recorded, &plan, &options, &mut show) {
        Ok(done) => done,
        Err(error) => {
            messages::error(error);
            return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
        }
    };
    let ran = record.runs.len();
    let median = record.median_first_failure_ms.map(|ms| format!("; median first failing operation at {:.1} s", ms as f64 / 1e3)).unwrap_or_default();
    println!(
        "reproduced {} of {ran} ({:.0} %){median}; {}",
        record.reproduced,
        100.0 * f64::from(record.reproduced) / ran.max(1) as f64,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
