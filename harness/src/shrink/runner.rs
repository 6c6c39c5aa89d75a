//! The shrink command's engine: runs every candidate of the search for
//! real (each a `faultline test` with the recorded spec and seed), within
//! a budget, then confirms the result. `faultline shrink` and `faultline
//! matrix --shrink` call [`shrink_recorded`].
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::search::shrink;
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
    spec
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
    /// same way when `stop_at_match`; (matched, ran). Err on Ctrl-C.
    fn run(&mut self, plan: &TestPlan, runs: u32, stop_at_match: bool) -> Result<(u32, u32), ReplayError> {
        let (mut matched, mut ran) = (0, 0);
        for _ in 0..runs {
            let began = Instant::now();
            let outcome = run_once(self.runtime, plan)?;
            let overhead_ms = (began.elapsed().as_millis() as u64).saturating_sub(plan.schedule.time_limit_ms);
            self.overhead_ms = self.overhead_ms.max(overhead_ms);
            if let Some(error) = &outcome.error {
                messages::warning(format_args!("a candidate run ended in a harness error: {error}"));
            }
            ran += 1;
            if matches(self.original, &outcome) {
                matched += 1;
                if stop_at_match {
                    break;
                }
            }
        }
        Ok((matched, ran))
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
        let (matched, ran) = self.run(&plan, self.runs, true)?;
        let verdict = if matched > 0 { format!("fails the same way (run {ran} of {})", self.runs) } else { format!("passes ({ran} runs)") };
        let line = format!("{} candidate {:>3}: {} -> {verdict}", self.clock(), self.tried, candidate.describe());
        (self.progress)(&line);
        Ok(Some(matched > 0))
    }

    /// Runs `candidate` [`RATE_RUNS`] times in confirmation `step`:
    /// Some((matched, ran)), None when the budget cannot take them.
    fn measure(&mut self, candidate: &Candidate, step: usize) -> Result<Option<(u32, u32)>, ReplayError> {
        if !self.fits(RATE_RUNS, candidate, self.deadline) {
            return Ok(None);
        }
        let plan = self.plan(candidate, &self.dir.join("confirm").join(step.to_string()))?;
        let (matched, ran) = self.run(&plan, RATE_RUNS, false)?;
        let line = format!("{} confirm {step}: {} -> failed the same way in {matched} of {ran}", self.clock(), candidate.describe());
        (self.progress)(&line);
        Ok(Some((matched, ran)))
    }

    /// A candidate the search accepted may have failed by luck in one run,
    /// and later (smaller) candidates are likelier to be such. The smallest
    /// is measured first; if it fails the same way in fewer than half of
    /// [`RATE_RUNS`] runs, a binary search along the accepted candidates
    /// finds the smallest that does (the start, the recorded failure, is
    /// assumed to). (candidate, matched, ran); (0, 0) when nothing smaller
    /// than the start was confirmed within the budget.
    fn confirm(&mut self, accepted: &[Candidate]) -> Result<(Candidate, u32, u32), ReplayError> {
        let holds = |(matched, ran): (u32, u32)| ran > 0 && 2 * matched >= ran;
        let start = accepted.first().cloned().ok_or_else(|| other("the search accepted nothing"))?;
        let mut confirmed = (start, 0, 0);
        let (mut low, mut high) = (0, accepted.len().saturating_sub(1));
        let mut step = 0;
        let mut probe = high;
        while low < high {
            step += 1;
            let Some(rate) = self.measure(&accepted[probe], step)? else { break };
            if holds(rate) {
                confirmed = (accepted[probe].clone(), rate.0, rate.1);
                low = probe;
            } else {
                high = probe - 1;
            }
            probe = (low + high).div_ceil(2);
        }
        Ok(confirmed)
    }
}

/// shrink.json: the search and its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShrinkRecord {
    pub original: Outcome,
    pub before: Summary,
    /// The confirmed result: the smallest accepted candidate that failed
    /// the same way in at least half of its confirmation runs.
    pub after: Summary,
    /// The smallest candidate the search saw fail (once may be luck).
    pub smallest_failing_once: Summary,
    pub runs_per_candidate: u32,
    pub runs_per_candidate_chosen_by: String,
    pub candidates_tried: u32,
    pub out_of_budget: bool,
    pub wall_ms: u64,
    pub budget_ms: u64,
    /// Runs of the minimal test that failed the same way, of those made.
    pub reproduced: u32,
    pub reproduction_runs: u32,
    /// Where the minimal spec.yaml and schedule.jsonl are.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub events: usize,
    pub faults: Vec<String>,
    pub fault_ms: u64,
    pub time_limit_ms: u64,
    pub keys_active: u32,
    pub concurrency: usize,
    pub rate_per_s: f64,
}

impl Summary {
    fn of(candidate: &Candidate) -> Summary {
        Summary {
            events: candidate.events.len(),
            faults: candidate.events.iter().map(|e| e.fault.name().to_string()).collect(),
            fault_ms: candidate.events.iter().map(|e| e.duration_ms).sum(),
            time_limit_ms: candidate.time_limit_ms,
            keys_active: candidate.keys_active,
            concurrency: candidate.concurrency,
            rate_per_s: candidate.rate_per_s,
        }
    }
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
    };
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
    let floor_ms = plan.client.op_timeout_ms + 1_000;
    let mut interrupted = None;
    let shrunk = shrink(start.clone(), floor_ms, &mut |candidate| match shrinker.try_candidate(candidate) {
        Ok(answer) => answer,
        Err(message) => {
            interrupted = Some(message);
            None
        }
    });
    if let Some(message) = interrupted {
        return Err(message);
    }
    let (best, reproduced, reproduction_runs) = shrinker.confirm(&shrunk.accepted)?;
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
        reproduced,
        reproduction_runs,
        dir: out.clone(),
    };
    let json = serde_json::to_string_pretty(&record).map_err(other)?;
    std::fs::write(out.join("shrink.json"), json).map_err(other)?;
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
