//! `faultline matrix`: the detection matrix. For each planted bug and each
//! weaker replication mode it runs short seeded tests with the faults that
//! should expose it, stops at the first `invalid` verdict, and prints bug ×
//! detected × runs needed × time to detection × checkers that fired. Then it
//! runs the correct node N times and counts false alarms.
pub mod targets;

use std::path::PathBuf;
use std::time::Instant;

use faultline_checkers::Verdict;

use crate::results::Results;
use crate::shrink::record::ShrinkRecord;
use crate::run::{self, RunFailure, RunOptions};
use crate::plan::{NemesisSpec, SpecFile, TestPlan, WorkloadSpec};
use crate::messages;
use crate::systems::faultline_node;
pub use targets::Target;

/// Why a probe could not run (a verdict, even invalid, is not an error).
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("matrix spec for {target}: {source}")]
    Spec { target: &'static str, source: crate::plan::SpecError },
    #[error(transparent)]
    Run(#[from] RunFailure),
}

/// How each run of a probe is set up.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub runs: u32,
    pub time_limit: String,
    pub seed: u64,
    pub store: PathBuf,
    pub node_binary: Option<PathBuf>,
    /// Also run each target once with no faults (first seed).
    pub baseline: bool,
    /// Also run each target under the default spec (its bug or mode
    /// alone: default workload and faults), up to `runs` times.
    pub default_spec: bool,
}

/// How the default spec, untuned, did on one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultSpecRuns {
    pub runs: u32,
    /// 1-based run that first came back invalid.
    pub detected_in_run: Option<u32>,
    pub fired: Vec<String>,
}

/// What the runs of one target showed.
#[derive(Debug, Clone)]
pub struct Probe {
    pub target: Target,
    /// Runs made (stops at the first detection).
    pub runs: u32,
    /// 1-based run that first came back invalid.
    pub detected_in_run: Option<u32>,
    /// Wall time from the first run's start to the detecting run's end.
    pub time_to_detection_ms: Option<u64>,
    /// Checkers that said invalid in the detecting run.
    pub fired: Vec<String>,
    /// Runs whose verdict was unknown (neither valid nor invalid).
    pub unknown_runs: u32,
    /// Seed of the detecting run, to replay it.
    pub seed: Option<u64>,
    /// The verdict of the fault-free run, when one was made: `valid` shows
    /// the faults were needed to expose the target.
    pub baseline: Option<Verdict>,
    /// Why the target could not be tried (a harness error, not a verdict).
    pub error: Option<String>,
    /// The default spec's runs, when asked for.
    pub default_spec: Option<DefaultSpecRuns>,
    /// The detecting run's results folder, for replay and shrink.
    pub detecting_dir: Option<PathBuf>,
    /// `--replay N`: (reruns that failed the same way, reruns).
    pub replay: Option<(u32, u32)>,
    /// `--shrink BUDGET`: what the shrink of the detecting run found.
    pub shrink: Option<ShrinkRecord>,
}

impl Probe {
    pub fn new(target: &Target) -> Probe {
        Probe {
            target: target.clone(),
            runs: 0,
            detected_in_run: None,
            time_to_detection_ms: None,
            fired: Vec::new(),
            unknown_runs: 0,
            seed: None,
            baseline: None,
            error: None,
            default_spec: None,
            detecting_dir: None,
            replay: None,
            shrink: None,
        }
    }
}

/// The spec of run `index` of `target`.
pub fn spec_for(target: &Target, options: &ProbeOptions, index: u32) -> Result<SpecFile, MatrixError> {
    let mut spec = default_spec_for(target, options, index);
    spec.name = format!("matrix-{}", target.name);
    spec.workload = WorkloadSpec { kind: target.workload.to_string(), ..WorkloadSpec::default() };
    // The rows were tuned with one fault at a time, 2-4 s faults and 1-3 s
    // quiet periods: the tuned column keeps them whatever the default is.
    spec.nemesis = NemesisSpec {
        faults: target.faults.iter().map(|f| f.to_string()).collect(),
        fault_duration_min: "2s".into(),
        fault_duration_max: "4s".into(),
        heal_duration_min: "1s".into(),
        heal_duration_max: "3s".into(),
        concurrent: false,
        leader_share: None,
        keep_majority_running: false,
        ..spec.nemesis
    };
    let overrides: Vec<(String, String)> = target.overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    spec.with_overrides(&overrides).map_err(|source| MatrixError::Spec { target: target.name, source })
}

/// The default spec with only `target`'s bug or mode set: what a user who
/// runs `faultline test` on that node gets.
pub fn default_spec_for(target: &Target, options: &ProbeOptions, index: u32) -> SpecFile {
    let mut spec = SpecFile {
        name: format!("matrix-{}-default", target.name),
        seed: Some(options.seed + u64::from(index)),
        store: options.store.clone(),
        ..SpecFile::default()
    };
    let node = faultline_node::Options {
        node_binary: options.node_binary.clone(),
        bugs: target.bugs.clone(),
        mode: target.mode.clone(),
        ..faultline_node::Options::default()
    };
    spec.cluster.system = faultline_node::REGISTRATION.name.to_string();
    spec.cluster.options = crate::systems::fields_of(&node);
    spec.schedule.time_limit = options.time_limit.clone();
    spec
}

/// What up to `runs` runs of one spec family showed, stopping at the
/// first invalid verdict.
#[derive(Debug, Default)]
struct Attempts {
    runs: u32,
    unknown: u32,
    /// Run (1-based), its seed, the checkers that said invalid, and its
    /// results folder.
    detected: Option<(u32, u64, Vec<String>, PathBuf)>,
}

async fn attempt(
    target: &Target,
    options: &ProbeOptions,
    spec_of: impl Fn(u32) -> Result<SpecFile, MatrixError>,
) -> Result<Attempts, MatrixError> {
    let mut attempts = Attempts::default();
    for index in 0..options.runs {
        let plan = TestPlan::from_spec(&spec_of(index)?, options.seed)
            .map_err(|source| MatrixError::Spec { target: target.name, source })?;
        let results = run_quietly(&plan).await?;
        attempts.runs += 1;
        match verdict(&results) {
            Verdict::Invalid => {
                let fired = results.checks.checkers.iter().filter(|c| c.verdict == Verdict::Invalid);
                attempts.detected = Some((index + 1, plan.seed, fired.map(|c| c.name.clone()).collect(), results.run_dir.clone()));
                break;
            }
            Verdict::Unknown => attempts.unknown += 1,
            Verdict::Valid => {}
        }
    }
    Ok(attempts)
}

/// One run of a probe, without a progress display.
async fn run_quietly(plan: &TestPlan) -> Result<Results, MatrixError> {
    Ok(run::run(plan, RunOptions { quiet: true }).await?.results)
}

/// A finished run always has a verdict; without one it counts as unknown.
fn verdict(results: &Results) -> Verdict {
    results.verdict.unwrap_or(Verdict::Unknown)
}

/// Runs `target` up to `options.runs` times, stopping at the first invalid verdict.
pub async fn probe(target: &Target, options: &ProbeOptions) -> Result<Probe, MatrixError> {
    assert!(options.runs > 0, "a probe needs at least one run");
    let mut probe = Probe::new(target);
    if options.baseline {
        let mut spec = spec_for(target, options, 0)?;
        spec.name = format!("matrix-{}-no-faults", target.name);
        spec.nemesis.faults = vec!["none".to_string()];
        let plan = TestPlan::from_spec(&spec, options.seed)
            .map_err(|source| MatrixError::Spec { target: target.name, source })?;
        probe.baseline = Some(verdict(&run_quietly(&plan).await?));
    }
    let started = Instant::now();
    let tuned = attempt(target, options, |index| spec_for(target, options, index)).await?;
    probe.runs = tuned.runs;
    probe.unknown_runs = tuned.unknown;
    if let Some((run, seed, fired, dir)) = tuned.detected {
        probe.detected_in_run = Some(run);
        probe.detecting_dir = Some(dir);
        probe.time_to_detection_ms = Some(started.elapsed().as_millis() as u64);
        probe.seed = Some(seed);
        probe.fired = fired;
    }
    if options.default_spec {
        let untuned = attempt(target, options, |index| Ok(default_spec_for(target, options, index))).await?;
        let (detected_in_run, fired) = untuned.detected.map_or((None, Vec::new()), |(run, _, fired, _)| (Some(run), fired));
        probe.default_spec = Some(DefaultSpecRuns { runs: untuned.runs, detected_in_run, fired });
    }
    Ok(probe)
}

/// The printed table, one line per probe.
pub fn table(probes: &[Probe]) -> String {
    let mut out = format!(
        "{:<24} {:<5} {:<9} {:>6} {:>10}  {:<10} {:<14} {:<8} {}\n",
        "target", "kind", "detected", "runs", "time", "no faults", "default spec", "replay", "checkers fired (seed)"
    );
    for p in probes {
        let detected = match (&p.error, p.detected_in_run) {
            (Some(_), _) => "ERROR",
            (None, Some(_)) => "yes",
            (None, None) => "NO",
        };
        let baseline = match p.baseline {
            None => "-",
            Some(Verdict::Valid) => "valid",
            Some(Verdict::Invalid) => "INVALID",
            Some(Verdict::Unknown) => "unknown",
        };
        let time = p.time_to_detection_ms.map_or("-".to_string(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
        let fired = match p.seed {
            _ if p.error.is_some() => p.error.clone().unwrap_or_default(),
            Some(seed) => format!("{} (seed {seed})", p.fired.join(",")),
            None if p.unknown_runs > 0 => format!("- ({} unknown)", p.unknown_runs),
            None => "-".to_string(),
        };
        let default_spec = match &p.default_spec {
            None => "-".to_string(),
            Some(DefaultSpecRuns { detected_in_run: Some(run), .. }) => format!("run {run}"),
            Some(DefaultSpecRuns { runs, .. }) => format!("not in {runs}"),
        };
        let replay = p.replay.map_or("-".to_string(), |(matched, runs)| format!("{matched}/{runs}"));
        out.push_str(&format!(
            "{:<24} {:<5} {:<9} {:>6} {:>10}  {:<10} {:<14} {:<8} {}\n",
            p.target.name, p.target.kind, detected, p.runs, time, baseline, default_spec, replay, fired
        ));
    }
    out
}

/// `--shrink`: per detecting run, before -> after of the shrink, with the
/// reproduction rate of the original (from `--replay`) and of the result.
pub fn shrink_table(probes: &[Probe]) -> String {
    let mut out = format!(
        "{:<24} {:>8} {:>14} {:>8} {:>8} {:>13} {:>8}  {}\n",
        "target", "events", "time limit", "keys", "nodes", "reproduced", "shrink", "minimal faults"
    );
    for p in probes {
        let Some(record) = &p.shrink else { continue };
        let (before, after) = (&record.before, &record.after);
        let rate_before = p.replay.map_or("-".to_string(), |(matched, runs)| format!("{matched}/{runs}"));
        let rate_after = match record.reproduction_runs {
            0 => "-".to_string(),
            runs => format!("{}/{runs}", record.reproduced),
        };
        out.push_str(&format!(
            "{:<24} {:>8} {:>14} {:>8} {:>8} {:>13} {:>7.1}m  {}\n",
            p.target.name,
            format!("{} -> {}", before.events, after.events),
            format!("{:.1}s -> {:.1}s", before.time_limit_ms as f64 / 1e3, after.time_limit_ms as f64 / 1e3),
            format!("{} -> {}", before.keys_active, after.keys_active),
            format!("{} -> {}", before.nodes, after.nodes),
            format!("{rate_before} -> {rate_after}"),
            record.wall_ms as f64 / 60e3,
            after.faults.join(", ")
        ));
    }
    out
}

/// Runs the correct node `runs` times; returns (false alarms, unknown verdicts).
pub async fn control(options: &ProbeOptions, runs: u32) -> Result<(u32, u32, Vec<u64>), MatrixError> {
    let mut targets = targets::controls();
    if let Err(why) = faultline_lazyfs::available() {
        messages::progress(format_args!("matrix control runs without power-loss and disk faults: {why}"));
        targets.iter_mut().for_each(|target| target.faults.retain(|fault| *fault != "power-loss" && *fault != "disk"));
    }
    if let Err(why) = crate::cluster::find_libfaketime() {
        messages::progress(format_args!("matrix control runs without clock faults: {why}"));
        targets.iter_mut().for_each(|target| target.faults.retain(|fault| *fault != "clock"));
    }
    let (mut alarms, mut unknown, mut alarm_seeds) = (0, 0, Vec::new());
    for index in 0..runs {
        // Alternate single-key and transactional runs of the correct node.
        let target = &targets[index as usize % targets.len()];
        let spec = spec_for(target, options, index)?;
        let plan = TestPlan::from_spec(&spec, options.seed)
            .map_err(|source| MatrixError::Spec { target: target.name, source })?;
        match verdict(&run_quietly(&plan).await?) {
            Verdict::Invalid => {
                alarms += 1;
                alarm_seeds.push(plan.seed);
            }
            Verdict::Unknown => unknown += 1,
            Verdict::Valid => {}
        }
    }
    Ok((alarms, unknown, alarm_seeds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ProbeOptions {
        ProbeOptions {
            runs: 3,
            time_limit: "30s".to_string(),
            seed: 7,
            store: PathBuf::from("store"),
            node_binary: None,
            baseline: true,
            default_spec: true,
        }
    }

    #[test]
    fn every_target_spec_is_a_valid_plan_with_its_overrides() {
        for target in targets::all().into_iter().chain(targets::controls()) {
            let spec = spec_for(&target, &options(), 2).expect("overrides apply");
            let plan = TestPlan::from_spec(&spec, 0).unwrap_or_else(|e| panic!("{}: {e}", target.name));
            assert_eq!(plan.seed, 9, "{}: seed + run index", target.name);
            assert_eq!(plan.nemesis.concurrent, target.overrides.contains(&("nemesis.concurrent", "true")));
        }
        let vote = targets::select(&["vote-without-log-check".to_string()]).expect("a row");
        let plan = TestPlan::from_spec(&spec_for(&vote[0], &options(), 0).expect("spec"), 0).expect("plan");
        assert!(plan.nemesis.concurrent);
        assert_eq!(plan.cluster.nodes, 5);
    }

    #[test]
    fn the_default_spec_keeps_only_the_bug() {
        let target = &targets::select(&["no-fsync".to_string()]).expect("a row")[0];
        let spec = default_spec_for(target, &options(), 1);
        let default = SpecFile::default();
        assert_eq!((&spec.workload.kind, &spec.nemesis.faults), (&default.workload.kind, &default.nemesis.faults));
        assert_eq!(spec.cluster.options["bugs"], serde_json::json!(["no-fsync"]));
        assert_eq!(TestPlan::from_spec(&spec, 0).expect("plan").seed, 8);
        let mut probe = Probe::new(target);
        probe.default_spec = Some(DefaultSpecRuns { runs: 3, detected_in_run: None, fired: Vec::new() });
        assert!(table(&[probe.clone()]).contains("not in 3"));
        probe.default_spec = Some(DefaultSpecRuns { runs: 2, detected_in_run: Some(2), fired: vec!["durability".into()] });
        assert!(table(&[probe]).contains("run 2"));
    }
}
