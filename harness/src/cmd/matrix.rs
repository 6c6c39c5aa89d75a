//! `faultline matrix`: the detection matrix (see `crate::matrix`): for
//! each planted bug and weaker mode of faultline-node, short seeded tests
//! until one is invalid, then false-alarm control runs of the correct node.
use std::path::PathBuf;
use std::process::ExitCode;

use crate::cmd::replay::describe;
use crate::fields::positive_duration;
use crate::matrix::{self, targets, Probe, ProbeOptions};
use crate::nemesis::TargetsBy;
use crate::replay::{rerun, Recorded, ReplayError, ReplayOptions, Rerun, RUNS_MAX};
use crate::run::RunError;
use crate::shrink::runner::{shrink_recorded, ShrinkOptions};
use crate::{messages, EXIT_HARNESS_ERROR};

/// Run the detection matrix and print its table.
#[derive(clap::Args, Debug)]
pub struct MatrixArgs {
    /// Only these targets (bug switches or modes), comma-separated; all when absent.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Seeded runs per target before it counts as not detected.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Length of each run's faulted phase.
    #[arg(long, default_value = "30s")]
    pub time_limit: String,
    /// Runs of the correct node under every fault (false-alarm control); 0 skips.
    #[arg(long, default_value_t = 20)]
    pub control_runs: u32,
    /// First seed; run i of a target uses seed + i.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Results root directory.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Path of the faultline-node binary.
    #[arg(long)]
    pub node_binary: Option<PathBuf>,
    /// Skip the one fault-free run per target that shows whether its faults
    /// were needed at all.
    #[arg(long)]
    pub no_baseline: bool,
    /// Also run each target under the default spec (its bug or mode alone,
    /// with the default workload and faults), up to --runs times: the
    /// "default spec" column.
    #[arg(long)]
    pub default_spec: bool,
    /// Rerun each detecting run N times with its recorded schedule (as
    /// `faultline replay`): the "replay" column, its reproduction rate.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub replay: u32,
    /// Shrink each detecting run within this budget (as `faultline
    /// shrink`), e.g. 15m, and print before -> after per target.
    #[arg(long, value_name = "BUDGET")]
    pub shrink: Option<String>,
}

/// `--replay` and `--shrink` of a probe's detecting run; progress on
/// stderr (stdout is the table). Err: a harness error or Ctrl-C.
fn follow_up(runtime: &tokio::runtime::Runtime, args: &MatrixArgs, shrink_ms: Option<u64>, probe: &mut Probe) -> Result<(), ReplayError> {
    let Some(dir) = probe.detecting_dir.clone() else { return Ok(()) };
    let recorded = Recorded::open(&dir)?;
    if args.replay > 0 {
        let options = ReplayOptions { runs: args.replay, by: TargetsBy::Role, seed_only: false, node_binary: args.node_binary.clone() };
        let plan = recorded.plan(&options)?;
        let mut show = |rerun: &Rerun| messages::progress(format_args!("{} replay {}: {}", probe.target.name, rerun.run, describe(&rerun.outcome)));
        let (record, _) = rerun(runtime, &recorded, &plan, &options, &mut show)?;
        probe.replay = Some((record.reproduced, record.runs.len() as u32));
    }
    if let Some(budget_ms) = shrink_ms {
        let options = ShrinkOptions {
            budget_ms,
            runs_per_candidate: None,
            by: TargetsBy::Role,
            node_binary: args.node_binary.clone(),
        };
        let name = probe.target.name;
        let record = shrink_recorded(runtime, &recorded, &options, &mut |line| messages::progress(format_args!("{name} {line}")))?;
        probe.shrink = Some(record);
    }
    Ok(())
}

pub fn run(args: MatrixArgs) -> anyhow::Result<ExitCode> {
    let targets = if args.only.is_empty() { targets::all() } else {
        match targets::select(&args.only) {
            Ok(targets) => targets,
            Err(message) => {
                messages::error(message);
                return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
            }
        }
    };
    if args.runs == 0 {
        messages::error("--runs must be at least 1");
        return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
    }
    if args.replay > RUNS_MAX {
        messages::error(format_args!("--replay {} is not in 0..={RUNS_MAX}", args.replay));
        return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
    }
    let shrink_ms = match args.shrink.as_deref().map(|budget| positive_duration("--shrink", budget)).transpose() {
        Ok(ms) => ms,
        Err(error) => {
            messages::error(error);
            return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
        }
    };
    let options = ProbeOptions {
        runs: args.runs,
        time_limit: args.time_limit.clone(),
        seed: args.seed,
        store: args.store.clone(),
        node_binary: args.node_binary.clone(),
        baseline: !args.no_baseline,
        default_spec: args.default_spec,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut probes = Vec::with_capacity(targets.len());
    let mut interrupted = false;
    for target in &targets {
        // One target that cannot run (say, power loss without FUSE) does
        // not hide the others: its row says why.
        let probe = match runtime.block_on(matrix::probe(target, &options)) {
            Ok(probe) => probe,
            Err(error) => {
                messages::error(format_args!("{}: {error}", target.name));
                interrupted = matches!(&error, matrix::MatrixError::Run(failure) if matches!(failure.error, RunError::Interrupted { .. }));
                Probe { error: Some(error.to_string()), ..Probe::new(target) }
            }
        };
        let mut probe = probe;
        if let Err(error) = follow_up(&runtime, &args, shrink_ms, &mut probe) {
            messages::error(format_args!("{}: {error}", target.name));
            interrupted = matches!(error, ReplayError::Interrupted(_));
        }
        let outcome = match (&probe.error, probe.detected_in_run) {
            (Some(_), _) => "error",
            (None, Some(_)) => "detected",
            (None, None) => "not detected",
        };
        messages::progress(format_args!("matrix {}: {outcome}", target.name));
        probes.push(probe);
        // SIGINT or SIGTERM stops the matrix, not just the run it hit.
        if interrupted {
            print!("{}", matrix::table(&probes));
            return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
        }
    }
    print!("{}", matrix::table(&probes));
    if args.shrink.is_some() {
        print!("\n{}", matrix::shrink_table(&probes));
    }
    let errors = probes.iter().filter(|p| p.error.is_some()).count();
    let missed = probes.iter().filter(|p| p.detected_in_run.is_none()).count();
    let mut alarms = 0;
    if args.control_runs > 0 {
        let control_options = ProbeOptions { seed: args.seed + 1_000, baseline: false, ..options };
        match runtime.block_on(matrix::control(&control_options, args.control_runs)) {
            Ok((found, unknown, seeds)) => {
                alarms = found;
                messages::matrix_control(found, unknown, args.control_runs, &seeds);
            }
            Err(error) => {
                messages::error(format_args!("control runs: {error}"));
                return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
            }
        }
    }
    messages::matrix_detected(probes.len() - missed, probes.len());
    Ok(match (errors, missed, alarms) {
        (0, 0, 0) => ExitCode::SUCCESS,
        (0, _, _) => ExitCode::from(1),
        _ => ExitCode::from(EXIT_HARNESS_ERROR),
    })
}
