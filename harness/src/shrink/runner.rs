//! The shrink command's engine: runs every candidate of the search for
//! real (each a `faultline test` with the recorded spec and seed), within
//! a budget, then confirms the result. `faultline shrink` and `faultline
//! matrix --shrink` call [`shrink_recorded`].
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::record::{ShrinkRecord, Summary};
use super::search::{shrink, Floors};
use super::Candidate;
use crate::messages;
use crate::nemesis::recorded::{self, RecordedSchedule, SCHEDULE_FILE};
use crate::nemesis::TargetsBy;
use crate::plan::{SpecFile, TestPlan};
use crate::replay::{matches, run_once, Outcome, Recorded, ReplayError, ReplayRecord};

/// Any error but an interruption, in words.
fn other(error: impl std::fmt::Display) -> ReplayError {
    ReplayError::Unreadable(error.to_string())
}

/// How a shrink is set up.
#[derive(Debug, Clone)]
pub struct ShrinkOptions {
    pub budget_ms: u64,
    /// None: from the original's replay rate, else 2.
    pub runs_per_candidate: Option<u32>,
    pub by: TargetsBy,
    pub node_binary: Option<PathBuf>,
}

/// Runs per candidate at most, whatever the original's rate.
const RUNS_PER_CANDIDATE_MAX: u32 = 5;
/// Runs that measure a candidate's reproduction rate in the confirmation.
const RATE_RUNS: u32 = 4;
/// Share of the budget the search may use; the rest confirms its result.
const SEARCH_SHARE: f64 = 0.6;
/// A run's cost beyond its time limit (start, recovery, final reads,
/// checks, shutdown) until one is measured: about 4 s for 5 faultline-node
/// nodes on a 2-core machine. The largest seen since is used after.
const RUN_OVERHEAD_MS: u64 = 5_000;

/// K runs to see, 9 times in 10, a failure that reproduces at `rate`.
fn runs_for_rate(rate: f64) -> u32 {
    if rate >= 0.9 {
        return 1;
    }
    if rate <= 0.0 {
        return RUNS_PER_CANDIDATE_MAX;
    }
    let runs = (0.1f64.ln() / (1.0 - rate).ln()).ceil() as u32;
    runs.clamp(1, RUNS_PER_CANDIDATE_MAX)
}

/// K and how it was chosen.
fn runs_per_candidate(options: &ShrinkOptions, dir: &Path) -> Result<(u32, String), ReplayError> {
    if let Some(runs) = options.runs_per_candidate {
        if !(1..=RUNS_PER_CANDIDATE_MAX).contains(&runs) {
            return Err(other(format!("--runs-per-candidate {runs} is not in 1..={RUNS_PER_CANDIDATE_MAX}")));
        }
        return Ok((runs, "--runs-per-candidate".to_string()));
    }
    let path = dir.join("replay").join("replay.json");
    let Some(record) = std::fs::read_to_string(&path).ok().and_then(|text| serde_json::from_str::<ReplayRecord>(&text).ok()) else {
        return Ok((2, "no replay.json: 2".to_string()));
    };
    let rate = f64::from(record.reproduced) / record.runs.len().max(1) as f64;
    let runs = runs_for_rate(rate);
    Ok((runs, format!("reproduced {} of {} in replay.json: {runs}", record.reproduced, record.runs.len())))
}

/// The spec of a candidate: the recorded spec with the candidate's time
/// limit and workload knobs.
fn candidate_spec(base: &SpecFile, candidate: &Candidate, store: &Path) -> SpecFile {
    let mut spec = base.clone();
    spec.store = store.to_path_buf();
    spec.schedule.time_limit = format!("{}ms", candidate.time_limit_ms);
    spec.schedule.rate = candidate.rate_per_s;
    spec.schedule.concurrency = candidate.concurrency;
    spec.workload.keys_active = candidate.keys_active;
    spec.cluster.nodes = candidate.nodes;
    spec
}

/// Odd node counts below the start's that the system's spec accepts, for
/// the node pass (a spec that fixes its cluster's size accepts none).
fn node_counts(base: &SpecFile, start: &Candidate) -> Vec<usize> {
    let seed = base.seed.unwrap_or_default();
    (1..start.nodes)
        .step_by(2)
        .filter(|nodes| {
            let spec = candidate_spec(base, &Candidate { nodes: *nodes, ..start.clone() }, &base.store);
            TestPlan::from_spec(&spec, seed).is_ok()
        })
        .collect()
}

struct Shrinker<'a> {
    base: SpecFile,
    dir: PathBuf,
    original: &'a Outcome,
    by: TargetsBy,
    runs: u32,
    runtime: &'a tokio::runtime::Runtime,
    progress: &'a mut dyn FnMut(&str),
    started: Instant,
    /// When the search stops starting candidates.
    search_deadline: Instant,
    /// When the confirmation stops too: the budget.
    deadline: Instant,
    tried: u32,
    /// The largest run cost beyond its time limit seen so far.
    overhead_ms: u64,
}

impl Shrinker<'_> {
    /// The plan of a candidate, its spec and schedule written under
    /// `folder` (the schedule read back, so it passes the file's checks).
    fn plan(&self, candidate: &Candidate, folder: &Path) -> Result<TestPlan, ReplayError> {
        std::fs::create_dir_all(folder).map_err(|e| other(format!("{}: {e}", folder.display())))?;
        let spec = candidate_spec(&self.base, candidate, &folder.join("runs"));
        let seed = spec.seed.unwrap_or_default();
        let plan = TestPlan::from_spec(&spec, seed).map_err(other)?;
        std::fs::write(folder.join("spec.yaml"), plan.resolved.to_yaml()).map_err(other)?;
        let path = folder.join(SCHEDULE_FILE);
        let mut header = plan.schedule_header();
        header.concurrent = candidate.events.iter().any(|e| e.group != recorded::ONE_AT_A_TIME);
        recorded::write(&path, &header, &candidate.events).map_err(other)?;
        let schedule = RecordedSchedule::read(&path, plan.cluster.nodes, plan.schedule.time_limit_ms).map_err(other)?;
        plan.follow_schedule(schedule, self.by).map_err(other)
    }

    fn fits(&self, runs: u32, candidate: &Candidate, deadline: Instant) -> bool {
        let needed = Duration::from_millis(u64::from(runs) * (candidate.time_limit_ms + self.overhead_ms));
        Instant::now() + needed <= deadline
    }

    fn clock(&self) -> String {
        let elapsed = self.started.elapsed().as_secs();
        format!("[{:>2}:{:02}]", elapsed / 60, elapsed % 60)
    }

    /// Runs `plan` up to `runs` times, stopping at the first failure the
    /// same way when `stop_at_match`. Err on Ctrl-C.
    fn run(&mut self, plan: &TestPlan, runs: u32, stop_at_match: bool) -> Result<Rate, ReplayError> {
        let mut rate = Rate::default();
        for _ in 0..runs {
            let began = Instant::now();
            let outcome = run_once(self.runtime, plan)?;
            let overhead_ms = (began.elapsed().as_millis() as u64).saturating_sub(plan.schedule.time_limit_ms);
            self.overhead_ms = self.overhead_ms.max(overhead_ms);
            if let Some(error) = &outcome.error {
                messages::warning(format_args!("a candidate run ended in a harness error: {error}"));
            }
            rate.ran += 1;
            if matches(self.original, &outcome) {
                rate.matched += 1;
                rate.first_match.get_or_insert(outcome.dir);
                if stop_at_match {
                    break;
                }
            }
        }
        Ok(rate)
    }

    /// The oracle: None when the budget cannot take K more runs.
    fn try_candidate(&mut self, candidate: &Candidate) -> Result<Option<bool>, ReplayError> {
        if !self.fits(self.runs, candidate, self.search_deadline) {
            return Ok(None);
        }
        self.tried += 1;
        let folder = self.dir.join("candidates").join(self.tried.to_string());
        let plan = match self.plan(candidate, &folder) {
            Ok(plan) => plan,
            Err(message) => {
                messages::warning(format_args!("candidate {} cannot run: {message}", self.tried));
                return Ok(Some(false));
            }
        };
        let rate = self.run(&plan, self.runs, true)?;
        let verdict = match rate.matched {
            0 => format!("passes ({} runs)", rate.ran),
            _ => format!("fails the same way (run {} of {})", rate.ran, self.runs),
        };
        let line = format!("{} candidate {:>3}: {} -> {verdict}", self.clock(), self.tried, candidate.describe());
        (self.progress)(&line);
        Ok(Some(rate.matched > 0))
    }

    /// Runs `candidate` [`RATE_RUNS`] times in confirmation `step`; None
    /// when the budget cannot take them.
    fn measure(&mut self, candidate: &Candidate, step: usize) -> Result<Option<Rate>, ReplayError> {
        if !self.fits(RATE_RUNS, candidate, self.deadline) {
            return Ok(None);
        }
        let plan = self.plan(candidate, &self.dir.join("confirm").join(step.to_string()))?;
        let rate = self.run(&plan, RATE_RUNS, false)?;
        let line = format!("{} confirm {step}: {} -> failed the same way in {} of {}", self.clock(), candidate.describe(), rate.matched, rate.ran);
        (self.progress)(&line);
        Ok(Some(rate))
    }

    /// A candidate the search accepted may have failed by luck in one run,
    /// and later (smaller) candidates are likelier to be such. The smallest
    /// is measured first; if it fails the same way in fewer than half of
    /// [`RATE_RUNS`] runs, a binary search along the accepted candidates
    /// finds the smallest that does (the start, the recorded failure, is
    /// assumed to). The rate is empty when nothing smaller than the start
    /// was confirmed within the budget.
    fn confirm(&mut self, accepted: &[Candidate]) -> Result<(Candidate, Rate), ReplayError> {
        let holds = |rate: &Rate| rate.ran > 0 && 2 * rate.matched >= rate.ran;
        let start = accepted.first().cloned().ok_or_else(|| other("the search accepted nothing"))?;
        let mut confirmed = (start, Rate::default());
        let (mut low, mut high) = (0, accepted.len().saturating_sub(1));
        let mut step = 0;
        let mut probe = high;
        while low < high {
            step += 1;
            let Some(rate) = self.measure(&accepted[probe], step)? else { break };
            if holds(&rate) {
                confirmed = (accepted[probe].clone(), rate);
                low = probe;
            } else {
                high = probe - 1;
            }
            probe = (low + high).div_ceil(2);
        }
        Ok(confirmed)
    }
}

/// How often a candidate failed the same way, and where it first did.
#[derive(Debug, Clone, Default)]
struct Rate {
    matched: u32,
    ran: u32,
    first_match: Option<PathBuf>,
}

/// Shrinks the invalid run in `recorded.dir`, telling `progress` about
/// every candidate; writes `DIR/shrink/` (spec.yaml, schedule.jsonl,
/// shrink.json) and returns what shrink.json says. Err: a harness error
/// or Ctrl-C.
pub fn shrink_recorded(
    runtime: &tokio::runtime::Runtime,
    recorded: &Recorded,
    options: &ShrinkOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ShrinkRecord, ReplayError> {
    if recorded.original.verdict != Some(faultline_checkers::Verdict::Invalid) {
        return Err(other(format!("{} is not an invalid run: nothing to shrink", recorded.dir.display())));
    }
    let (budget_ms, by) = (options.budget_ms, options.by);
    let (runs, chosen_by) = runs_per_candidate(options, &recorded.dir)?;
    let mut base = recorded.spec.clone();
    if let Some(binary) = &options.node_binary {
        base.set_node_binary(binary);
    }
    let seed = base.seed.ok_or_else(|| other(format!("{}/spec.yaml has no seed", recorded.dir.display())))?;
    let plan = TestPlan::from_spec(&base, seed).map_err(other)?;
    let schedule = RecordedSchedule::read(&recorded.schedule, plan.cluster.nodes, plan.schedule.time_limit_ms).map_err(other)?;
    let start = Candidate {
        events: schedule.events,
        time_limit_ms: plan.schedule.time_limit_ms,
        keys_active: base.workload.keys_active,
        concurrency: plan.schedule.concurrency,
        rate_per_s: plan.schedule.rate_per_s,
        nodes: plan.cluster.nodes,
    };
    let floors = Floors { time_limit_ms: plan.client.op_timeout_ms + 1_000, node_counts: node_counts(&base, &start) };
    let out = recorded.dir.join("shrink");
    let started = Instant::now();
    let mut shrinker = Shrinker {
        base,
        dir: out.clone(),
        original: &recorded.original,
        by,
        runs,
        runtime,
        progress,
        started,
        search_deadline: started + Duration::from_millis((budget_ms as f64 * SEARCH_SHARE) as u64),
        deadline: started + Duration::from_millis(budget_ms),
        tried: 0,
        overhead_ms: RUN_OVERHEAD_MS,
    };
    let budget_s = budget_ms / 1_000;
    (shrinker.progress)(&format!("shrink of {} ({})", recorded.dir.display(), recorded.original.findings.join(", ")));
    (shrinker.progress)(&format!("start: {}; {runs} run(s) per candidate ({chosen_by}); budget {budget_s} s", start.describe()));
    let mut interrupted = None;
    let shrunk = shrink(start.clone(), floors, &mut |candidate| match shrinker.try_candidate(candidate) {
        Ok(answer) => answer,
        Err(message) => {
            interrupted = Some(message);
            None
        }
    });
    if let Some(message) = interrupted {
        return Err(message);
    }
    let (best, rate) = shrinker.confirm(&shrunk.accepted)?;
    shrinker.plan(&best, &out)?;
    let record = ShrinkRecord {
        original: recorded.original.clone(),
        before: Summary::of(&start),
        after: Summary::of(&best),
        smallest_failing_once: Summary::of(&shrunk.best),
        runs_per_candidate: runs,
        runs_per_candidate_chosen_by: chosen_by,
        candidates_tried: shrunk.tried,
        out_of_budget: shrunk.out_of_budget,
        wall_ms: started.elapsed().as_millis() as u64,
        budget_ms,
        reproduced: rate.matched,
        reproduction_runs: rate.ran,
        dir: out.clone(),
    };
    let json = serde_json::to_string_pretty(&record).map_err(other)?;
    std::fs::write(out.join("shrink.json"), json).map_err(other)?;
    let shown = rate.first_match.unwrap_or_else(|| recorded.dir.clone());
    if let Err(message) = super::report::write(&record, &best.events, &shown) {
        messages::warning(format_args!("shrink: no report.html: {message}"));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_per_candidate_see_a_failure_of_that_rate_nine_times_in_ten() {
        assert_eq!(runs_for_rate(1.0), 1);
        assert_eq!(runs_for_rate(0.5), 4, "1 - 0.5^4 = 0.94");
        assert_eq!(runs_for_rate(0.7), 2, "1 - 0.3^2 = 0.91");
        assert_eq!(runs_for_rate(0.2), RUNS_PER_CANDIDATE_MAX, "capped");
        assert_eq!(runs_for_rate(0.0), RUNS_PER_CANDIDATE_MAX);
    }
}
