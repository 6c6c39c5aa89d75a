//! `faultline replay`: what a run's failure was, in kinds a rerun can be
//! compared by, and the record of a replay (`replay.json`).
//!
//! A finding is a failing check and the kind of what it found (`durability:
//! lost writes`, `linearizable-kv: a non-linearizable key`, `node-logs`), so
//! a rerun that fails the same checker for another reason (stale reads
//! where writes were lost) does not count as reproducing the failure.
use std::path::{Path, PathBuf};

use faultline_checkers::Verdict;
use serde::{Deserialize, Serialize};

use crate::nemesis::recorded::{RecordedSchedule, SCHEDULE_FILE};
use crate::nemesis::TargetsBy;
use crate::plan::{SpecFile, TestPlan};
use crate::report::Timeline;
use crate::results::{Results, HISTORY_FILE};
use crate::run::{self, RunError, RunOptions};
use crate::verdict::{Check, CheckDetails};

/// Replays one `faultline replay` may ask for.
pub const RUNS_MAX: u32 = 100;
/// Reruns in a row that end in a harness error before a replay stops.
pub const ERRORS_IN_A_ROW_MAX: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{dir} has no {file}: {why}")]
    Missing { dir: PathBuf, file: &'static str, why: &'static str },
    #[error("{0}")]
    Unreadable(String),
    #[error("{0}")]
    Interrupted(String),
    #[error("{ERRORS_IN_A_ROW_MAX} reruns in a row ended in a harness error; the last: {0}")]
    Errors(String),
}

/// The kinds of what one failing check found.
fn kinds(check: &Check) -> Vec<String> {
    let name = &check.name;
    match &check.details {
        CheckDetails::Linearizable(_) => vec![format!("{name}: a non-linearizable key")],
        CheckDetails::Transactions(report) => report.anomalies.iter().map(|anomaly| format!("{name}: {}", anomaly.kind.name())).collect(),
        CheckDetails::Bank(_) => vec![format!("{name}: a read that does not add up")],
        CheckDetails::Durability(result) => {
            let counts = &result.counts;
            let found = [(counts.lost, "lost writes"), (counts.stale, "stale reads"), (counts.unexpected, "unexpected values")];
            let named: Vec<String> = found.iter().filter(|(n, _)| *n > 0).map(|(_, kind)| format!("{name}: {kind}")).collect();
            if named.is_empty() {
                vec![name.clone()]
            } else {
                named
            }
        }
        _ => vec![name.clone()],
    }
}

/// What made these results invalid, one entry per check and kind, sorted.
pub fn findings(results: &Results) -> Vec<String> {
    let mut found: Vec<String> =
        results.checks.checkers.iter().filter(|check| check.verdict == Verdict::Invalid).flat_map(kinds).collect();
    found.sort();
    found.dedup();
    found
}

/// Whether a rerun ended as the original did: for an invalid original, at
/// least one of its findings again; otherwise the same verdict.
pub fn matches(original: &Outcome, rerun: &Outcome) -> bool {
    match original.verdict {
        Some(Verdict::Invalid) => original.findings.iter().any(|finding| rerun.findings.contains(finding)),
        verdict => rerun.verdict == verdict,
    }
}

/// The operations a failing check names (by history line): the stuck
/// operation of each non-linearizable key, the read that showed each lost,
/// stale or unexpected write.
fn failing_lines(check: &Check) -> Vec<u32> {
    match &check.details {
        CheckDetails::Linearizable(result) => {
            result.keys.iter().filter_map(|key| key.counterexample.as_ref()).map(|c| c.stuck_op.line).collect()
        }
        CheckDetails::Transactions(report) => {
            report.anomalies.iter().flat_map(|anomaly| &anomaly.txns).filter_map(|id| u32::try_from(*id).ok()).collect()
        }
        CheckDetails::Bank(report) => report.bad.iter().map(|bad| bad.line).collect(),
        CheckDetails::Durability(result) => {
            let examples = &result.examples;
            let shown = examples.lost.iter().chain(&examples.stale).chain(&examples.unexpected);
            shown.map(|example| if example.read_line > 0 { example.read_line } else { example.write_line }).collect()
        }
        _ => Vec::new(),
    }
}

/// When the first failing operation completed, in ms from the history's
/// time zero; None when no failing check names an operation (a node exit,
/// a log line, liveness).
pub fn first_failure_ms(results: &Results, timeline: &Timeline) -> Option<u64> {
    results
        .checks
        .checkers
        .iter()
        .filter(|check| check.verdict == Verdict::Invalid)
        .flat_map(failing_lines)
        .filter_map(|line| timeline.op_at_line(line))
        .map(|op| op.return_ns.unwrap_or(op.call_ns) / 1_000_000)
        .min()
}

/// One run as a replay compares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// None: a harness error ended the run.
    pub verdict: Option<Verdict>,
    pub findings: Vec<String>,
    pub first_failure_ms: Option<u64>,
    pub dir: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Outcome {
    pub fn of(results: &Results, timeline: &Timeline) -> Outcome {
        Outcome {
            verdict: results.verdict,
            findings: findings(results),
            first_failure_ms: first_failure_ms(results, timeline),
            dir: results.run_dir.clone(),
            error: results.error.clone(),
        }
    }
}

/// A rerun and whether it matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rerun {
    pub run: u32,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub matches: bool,
}

/// `replay.json`: the original, every rerun, and the rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayRecord {
    pub original: Outcome,
    pub seed: u64,
    pub schedule: PathBuf,
    pub runs: Vec<Rerun>,
    pub reproduced: u32,
    /// Median time to the first failing operation over the reruns that
    /// matched and name one.
    pub median_first_failure_ms: Option<u64>,
}

impl ReplayRecord {
    pub fn new(original: Outcome, seed: u64, schedule: PathBuf, runs: Vec<Rerun>) -> ReplayRecord {
        let reproduced = runs.iter().filter(|run| run.matches).count() as u32;
        let mut times: Vec<u64> = runs.iter().filter(|r| r.matches).filter_map(|r| r.outcome.first_failure_ms).collect();
        times.sort_unstable();
        let median_first_failure_ms = times.get(times.len() / 2).copied();
        ReplayRecord { original, seed, schedule, runs, reproduced, median_first_failure_ms }
    }
}

/// What a results folder holds for a replay: its spec as resolved (seed
/// included), its schedule, and what it concluded.
pub struct Recorded {
    pub dir: PathBuf,
    pub spec: SpecFile,
    pub schedule: PathBuf,
    pub original: Outcome,
}

impl Recorded {
    pub fn open(dir: &Path) -> Result<Recorded, ReplayError> {
        let missing = |file, why| ReplayError::Missing { dir: dir.to_path_buf(), file, why };
        let spec_path = dir.join("spec.yaml");
        if !spec_path.is_file() {
            return Err(missing("spec.yaml", "not a results folder of faultline test"));
        }
        let schedule = dir.join(SCHEDULE_FILE);
        if !schedule.is_file() {
            return Err(missing(SCHEDULE_FILE, "it was recorded before schedules were; rerun it with --spec spec.yaml"));
        }
        let spec = SpecFile::read(&spec_path).map_err(|e| ReplayError::Unreadable(e.to_string()))?;
        let results = Results::load(dir).map_err(|e| ReplayError::Unreadable(e.to_string()))?;
        let timeline = Timeline::read(&dir.join(HISTORY_FILE)).unwrap_or_default();
        Ok(Recorded { dir: dir.to_path_buf(), spec, schedule, original: Outcome::of(&results, &timeline) })
    }
}

/// How reruns are set up.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub runs: u32,
    pub by: TargetsBy,
    /// Leave the schedule out: the seed draws the faults again.
    pub seed_only: bool,
    /// The node binary, if it moved since the recorded run.
    pub node_binary: Option<PathBuf>,
}

impl Recorded {
    /// The plan of the reruns: the recorded spec (its seed included)
    /// following the recorded schedule, results under `DIR/replay/`.
    pub fn plan(&self, options: &ReplayOptions) -> Result<TestPlan, ReplayError> {
        let unreadable = |e: &dyn std::fmt::Display| ReplayError::Unreadable(e.to_string());
        let mut spec = self.spec.clone();
        spec.store = self.dir.join("replay");
        if let Some(binary) = &options.node_binary {
            spec.set_node_binary(binary);
        }
        let seed = spec.seed.ok_or_else(|| ReplayError::Unreadable(format!("{}/spec.yaml has no seed", self.dir.display())))?;
        let plan = TestPlan::from_spec(&spec, seed).map_err(|e| unreadable(&e))?;
        if options.seed_only {
            return Ok(plan);
        }
        let schedule =
            RecordedSchedule::read(&self.schedule, plan.cluster.nodes, plan.schedule.time_limit_ms).map_err(|e| unreadable(&e))?;
        plan.follow_schedule(schedule, options.by).map_err(|e| unreadable(&e))
    }
}

/// One run of `plan` as a replay compares it; Err when interrupted.
pub fn run_once(runtime: &tokio::runtime::Runtime, plan: &TestPlan) -> Result<Outcome, ReplayError> {
    match runtime.block_on(run::run(plan, RunOptions { quiet: true })) {
        Ok(outcome) => Ok(Outcome::of(&outcome.results, &outcome.timeline)),
        Err(failure) if matches!(failure.error, RunError::Interrupted { .. }) => Err(ReplayError::Interrupted(failure.error.to_string())),
        Err(failure) => {
            let dir = failure.partial.as_ref().map(|partial| partial.dir.clone()).unwrap_or_default();
            Ok(Outcome { verdict: None, findings: Vec::new(), first_failure_ms: None, dir, error: Some(failure.error.to_string()) })
        }
    }
}

/// Reruns `plan` `runs` times against the recorded original, telling
/// `on_run` about each; writes `replay.json` (or `replay-seed-only.json`)
/// under `DIR/replay/`. Stops on Ctrl-C and after
/// [`ERRORS_IN_A_ROW_MAX`] harness errors in a row.
pub fn rerun(
    runtime: &tokio::runtime::Runtime,
    recorded: &Recorded,
    plan: &TestPlan,
    options: &ReplayOptions,
    on_run: &mut dyn FnMut(&Rerun),
) -> Result<(ReplayRecord, PathBuf), ReplayError> {
    let mut reruns = Vec::new();
    let mut errors_in_a_row = 0;
    for run in 1..=options.runs {
        let outcome = run_once(runtime, plan)?;
        let matched = matches(&recorded.original, &outcome);
        errors_in_a_row = if outcome.verdict.is_none() { errors_in_a_row + 1 } else { 0 };
        let rerun = Rerun { run, outcome, matches: matched };
        on_run(&rerun);
        reruns.push(rerun);
        if errors_in_a_row == ERRORS_IN_A_ROW_MAX {
            let last = reruns.last().and_then(|r| r.outcome.error.clone()).unwrap_or_default();
            return Err(ReplayError::Errors(last));
        }
    }
    let record = ReplayRecord::new(recorded.original.clone(), plan.seed, recorded.schedule.clone(), reruns);
    let folder = recorded.dir.join("replay");
    let file = if options.seed_only { "replay-seed-only.json" } else { "replay.json" };
    let written = std::fs::create_dir_all(&folder)
        .and_then(|()| std::fs::write(folder.join(file), serde_json::to_string_pretty(&record).unwrap_or_default()));
    written.map_err(|e| ReplayError::Unreadable(format!("{}: {e}", folder.join(file).display())))?;
    Ok((record, folder.join(file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(verdict: Verdict, findings: &[&str]) -> Outcome {
        Outcome {
            verdict: Some(verdict),
            findings: findings.iter().map(|f| f.to_string()).collect(),
            first_failure_ms: None,
            dir: PathBuf::new(),
            error: None,
        }
    }

    #[test]
    fn a_rerun_matches_on_a_shared_finding_or_the_same_verdict() {
        let lost = outcome(Verdict::Invalid, &["durability: lost writes", "node-exits"]);
        assert!(matches(&lost, &outcome(Verdict::Invalid, &["durability: lost writes"])));
        assert!(!matches(&lost, &outcome(Verdict::Invalid, &["durability: stale reads"])), "the same checker, another kind");
        assert!(!matches(&lost, &outcome(Verdict::Valid, &[])));
        let valid = outcome(Verdict::Valid, &[]);
        assert!(matches(&valid, &outcome(Verdict::Valid, &[])));
        assert!(!matches(&valid, &outcome(Verdict::Unknown, &[])));
        let mut errored = outcome(Verdict::Invalid, &[]);
        errored.verdict = None;
        assert!(!matches(&lost, &errored));
    }

    #[test]
    fn findings_name_the_failing_check_and_the_kind() {
        use faultline_checkers::durability::{Counts, Examples};
        let counts = Counts { lost: 3, unexpected: 1, ..Counts::default() };
        let result = faultline_checkers::DurabilityResult {
            verdict: Verdict::Invalid,
            counts,
            examples: Examples::default(),
            unconfirmed: Vec::new(),
            unconfirmed_key_count: 0,
        };
        let durability = Check { name: "durability".into(), verdict: Verdict::Invalid, reason: None, details: CheckDetails::Durability(result) };
        let exits = Check { name: "node-exits".into(), verdict: Verdict::Invalid, reason: None, details: CheckDetails::Failed };
        let fine = Check { name: "node-logs".into(), verdict: Verdict::Valid, reason: None, details: CheckDetails::Failed };
        assert_eq!(kinds(&durability), ["durability: lost writes", "durability: unexpected values"]);
        assert_eq!(kinds(&exits), ["node-exits"]);
        let mut checks = crate::verdict::compose(vec![durability, exits, fine]);
        checks.checkers.sort_by(|a, b| b.name.cmp(&a.name));
        let invalid: Vec<String> = checks.checkers.iter().filter(|c| c.verdict == Verdict::Invalid).flat_map(kinds).collect();
        assert_eq!(invalid.len(), 3, "a valid check finds nothing");
    }

    #[test]
    fn the_record_counts_matches_and_takes_the_median_time() {
        let original = outcome(Verdict::Invalid, &["x"]);
        let rerun = |run: u32, matched: bool, ms: Option<u64>| Rerun {
            run,
            outcome: Outcome { first_failure_ms: ms, ..outcome(Verdict::Invalid, &["x"]) },
            matches: matched,
        };
        let runs = vec![rerun(1, true, Some(900)), rerun(2, false, Some(10)), rerun(3, true, Some(300)), rerun(4, true, None), rerun(5, true, Some(500))];
        let record = ReplayRecord::new(original, 1, PathBuf::new(), runs);
        assert_eq!(record.reproduced, 4);
        assert_eq!(record.median_first_failure_ms, Some(500), "over 300, 500, 900: the unmatched run's time is left out");
    }
}
