//! `faultline shrink RESULTS-DIR [--budget 20m] [--runs-per-candidate K]`:
//! search for a smaller test that still fails the way a recorded run did
//! (`crate::shrink`), running every candidate for real, within a budget.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::fields::positive_duration;
use crate::nemesis::recorded::{self, RecordedSchedule, SCHEDULE_FILE};
use crate::nemesis::TargetsBy;
use crate::plan::{SpecFile, TestPlan};
use crate::replay::{matches, Outcome, Recorded, ReplayRecord};
use crate::run::{self, RunError, RunOptions};
use crate::shrink::search::shrink;
use crate::shrink::Candidate;
use crate::{messages, EXIT_HARNESS_ERROR};

/// Runs per candidate at most, whatever the original's rate.
const RUNS_PER_CANDIDATE_MAX: u32 = 5;
/// Runs that measure a candidate's reproduction rate in the confirmation.
const RATE_RUNS: u32 = 4;
/// Share of the budget the search may use; the rest confirms its result.
const SEARCH_SHARE: f64 = 0.7;
/// A run's cost beyond its time limit (start, recovery, final reads,
/// checks, shutdown) until one is measured: about 4 s for 5 faultline-node
/// nodes on a 2-core machine. The largest seen since is used after.
const RUN_OVERHEAD_MS: u64 = 5_000;

/// Search for a smaller test that still fails the way a recorded run did:
/// fewer fault events (delta debugging), shorter faults and quiet periods,
/// a shorter time limit, fewer keys, clients and operations per second.
/// Every candidate runs for real; it fails the same way when one of its
/// runs shares a finding with the original (as `faultline replay` says).
/// The search takes 70 % of the budget; the rest confirms its result: a
/// candidate that failed once may have been lucky, so the smallest is run
/// 4 times and, if it fails the same way in fewer than half, the search
/// steps back to the candidate before it. Writes RESULTS-DIR/shrink/ with
/// the minimal spec.yaml, schedule.jsonl and shrink.json. Exit 0 when it
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
fn runs_per_candidate(args: &ShrinkArgs, dir: &Path) -> Result<(u32, String), String> {
    if let Some(runs) = args.runs_per_candidate {
        if !(1..=RUNS_PER_CANDIDATE_MAX).contains(&runs) {
            return Err(format!("--runs-per-candidate {runs} is not in 1..={RUNS_PER_CANDIDATE_MAX}"));
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
    runtime: tokio::runtime::Runtime,
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
    fn plan(&self, candidate: &Candidate, folder: &Path) -> Result<TestPlan, String> {
        std::fs::create_dir_all(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        let spec = candidate_spec(&self.base, candidate, &folder.join("runs"));
        let seed = spec.seed.unwrap_or_default();
        let plan = TestPlan::from_spec(&spec, seed).map_err(|e| e.to_string())?;
        std::fs::write(folder.join("spec.yaml"), plan.resolved.to_yaml()).map_err(|e| e.to_string())?;
        let path = folder.join(SCHEDULE_FILE);
        let mut header = plan.schedule_header();
        header.concurrent = candidate.events.iter().any(|e| e.group != recorded::ONE_AT_A_TIME);
        recorded::write(&path, &header, &candidate.events).map_err(|e| e.to_string())?;
        let schedule = RecordedSchedule::read(&path, plan.cluster.nodes, plan.schedule.time_limit_ms).map_err(|e| e.to_string())?;
        plan.follow_schedule(schedule, self.by).map_err(|e| e.to_string())
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
    fn run(&mut self, plan: &TestPlan, runs: u32, stop_at_match: bool) -> Result<(u32, u32), String> {
        let (mut matched, mut ran) = (0, 0);
        for _ in 0..runs {
            let began = Instant::now();
            let result = self.runtime.block_on(run::run(plan, RunOptions { quiet: true }));
            let overhead_ms = (began.elapsed().as_millis() as u64).saturating_sub(plan.schedule.time_limit_ms);
            self.overhead_ms = self.overhead_ms.max(overhead_ms);
            let outcome = match result {
                Ok(outcome) => Outcome::of(&outcome.results, &outcome.timeline),
                Err(failure) if matches!(failure.error, RunError::Interrupted { .. }) => return Err(failure.error.to_string()),
                Err(failure) => {
                    messages::warning(format_args!("a candidate run ended in a harness error: {}", failure.error));
                    Outcome { verdict: None, findings: Vec::new(), first_failure_ms: None, dir: PathBuf::new(), error: None }
                }
            };
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
    fn try_candidate(&mut self, candidate: &Candidate) -> Result<Option<bool>, String> {
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
        println!("{} candidate {:>3}: {} -> {verdict}", self.clock(), self.tried, candidate.describe());
        Ok(Some(matched > 0))
    }

    /// A candidate the search accepted may have failed by luck in one run.
    /// Steps back from the smallest along the accepted candidates until one
    /// fails the same way in at least half of [`RATE_RUNS`] runs, budget
    /// allowing; else the one with the best rate measured (or, with no
    /// budget left, the smallest, unmeasured). (candidate, matched, ran).
    fn confirm(&mut self, accepted: &[Candidate]) -> Result<(Candidate, u32, u32), String> {
        let mut best_rate: Option<(Candidate, u32, u32)> = None;
        for (step, candidate) in accepted.iter().rev().enumerate() {
            if !self.fits(RATE_RUNS, candidate, self.deadline) {
                break;
            }
            let plan = self.plan(candidate, &self.dir.join("confirm").join((step + 1).to_string()))?;
            let (matched, ran) = self.run(&plan, RATE_RUNS, false)?;
            println!("{} confirm {}: {} -> failed the same way in {matched} of {ran}", self.clock(), step + 1, candidate.describe());
            if 2 * matched >= ran {
                return Ok((candidate.clone(), matched, ran));
            }
            if best_rate.as_ref().is_none_or(|(_, best, _)| matched > *best) {
                best_rate = Some((candidate.clone(), matched, ran));
            }
        }
        let smallest = accepted.last().cloned().ok_or("the search accepted nothing")?;
        Ok(best_rate.unwrap_or((smallest, 0, 0)))
    }
}

/// shrink.json: the search and its result.
#[derive(Serialize)]
struct ShrinkRecord<'a> {
    original: &'a Outcome,
    before: Summary,
    /// The confirmed result: the smallest accepted candidate that failed
    /// the same way in at least half of its confirmation runs.
    after: Summary,
    /// The smallest candidate the search saw fail (once may be luck).
    smallest_failing_once: Summary,
    runs_per_candidate: u32,
    runs_per_candidate_chosen_by: String,
    candidates_tried: u32,
    out_of_budget: bool,
    wall_ms: u64,
    budget_ms: u64,
    /// Runs of the minimal test that failed the same way, of those made.
    reproduced: u32,
    reproduction_runs: u32,
}

#[derive(Serialize)]
struct Summary {
    events: usize,
    faults: Vec<String>,
    fault_ms: u64,
    time_limit_ms: u64,
    keys_active: u32,
    concurrency: usize,
    rate_per_s: f64,
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
    let recorded = Recorded::open(&args.dir).map_err(|e| e.to_string())?;
    if recorded.original.verdict != Some(faultline_checkers::Verdict::Invalid) {
        return Err(format!("{} is not an invalid run: nothing to shrink", args.dir.display()));
    }
    let budget_ms = positive_duration("--budget", &args.budget).map_err(|e| e.to_string())?;
    let by: TargetsBy = args.targets.parse().map_err(|e: String| e.replace("--schedule-targets", "--targets"))?;
    let (runs, chosen_by) = runs_per_candidate(args, &args.dir)?;
    let mut base = recorded.spec.clone();
    if let Some(binary) = &args.node_binary {
        base.cluster.options.insert("node_binary".into(), binary.display().to_string().into());
    }
    let seed = base.seed.ok_or_else(|| format!("{}/spec.yaml has no seed", args.dir.display()))?;
    let plan = TestPlan::from_spec(&base, seed).map_err(|e| e.to_string())?;
    let schedule = RecordedSchedule::read(&recorded.schedule, plan.cluster.nodes, plan.schedule.time_limit_ms).map_err(|e| e.to_string())?;
    let start = Candidate {
        events: schedule.events,
        time_limit_ms: plan.schedule.time_limit_ms,
        keys_active: base.workload.keys_active,
        concurrency: plan.schedule.concurrency,
        rate_per_s: plan.schedule.rate_per_s,
    };
    let out = args.dir.join("shrink");
    let started = Instant::now();
    let mut shrinker = Shrinker {
        base,
        dir: out.clone(),
        original: &recorded.original,
        by,
        runs,
        runtime: tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?,
        started,
        search_deadline: started + Duration::from_millis((budget_ms as f64 * SEARCH_SHARE) as u64),
        deadline: started + Duration::from_millis(budget_ms),
        tried: 0,
        overhead_ms: RUN_OVERHEAD_MS,
    };
    println!("shrink of {} ({})", args.dir.display(), recorded.original.findings.join(", "));
    println!("start: {}; {runs} run(s) per candidate ({chosen_by}); budget {}", start.describe(), args.budget);
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
        original: &recorded.original,
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
    };
    let json = serde_json::to_string_pretty(&record).map_err(|e| e.to_string())?;
    std::fs::write(out.join("shrink.json"), json).map_err(|e| e.to_string())?;
    print_table(&record);
    println!("minimal spec and schedule: {} and {}", out.join("spec.yaml").display(), out.join(SCHEDULE_FILE).display());
    Ok(())
}

fn print_table(record: &ShrinkRecord) {
    let (before, after) = (&record.before, &record.after);
    println!("                before -> after");
    println!("events          {:>6} -> {}  ({})", before.events, after.events, after.faults.join(", "));
    println!("fault time      {:>5.1}s -> {:.1}s", before.fault_ms as f64 / 1e3, after.fault_ms as f64 / 1e3);
    println!("time limit      {:>5.1}s -> {:.1}s", before.time_limit_ms as f64 / 1e3, after.time_limit_ms as f64 / 1e3);
    println!("keys            {:>6} -> {}", before.keys_active, after.keys_active);
    println!("clients         {:>6} -> {}", before.concurrency, after.concurrency);
    println!("rate            {:>6} -> {}/s", before.rate_per_s, after.rate_per_s);
    let rate = match record.reproduction_runs {
        0 => "not measured (no budget left to confirm)".to_string(),
        n => format!("{} of {n}", record.reproduced),
    };
    println!("reproduced      {rate}");
    let budget = if record.out_of_budget { ", budget spent" } else { "" };
    println!("{} candidates in {:.1} min{budget}", record.candidates_tried, record.wall_ms as f64 / 60e3);
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
