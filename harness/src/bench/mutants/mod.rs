//! `faultline bench mutants`: how many bugs nobody planted a spec catches.
//!
//! cargo-mutants lists mutants of faultline-node's replication and
//! durability code; they are tried one at a time, in a seeded order, in a
//! scratch copy of the workspace. A mutant that does not build is
//! unviable; one the node's own `cargo test` catches is dropped (the
//! harness must earn its keep on the rest); every other one runs the spec
//! (the default spec unless `--spec`) up to `--runs` times, seeds `seed`,
//! `seed + 1`, ..., and is caught at its first `invalid` verdict. The
//! score is caught / tried. The sample is reproducible from its seed and
//! the listing (same source, same cargo-mutants version).
mod cache;
mod mutant;
mod resume;
mod scratch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use faultline_checkers::Verdict;
use serde::{Deserialize, Serialize};

use crate::fields::parse_duration_ms;
use crate::messages;
use crate::plan::{SpecFile, TestPlan};
use crate::run::{self, RunError, RunOptions};
use crate::systems::faultline_node;
use cache::{Filter, NodeTestsCache};
pub use mutant::Mutant;
use resume::Resumed;
use scratch::{CargoEnd, Scratch};

const SAMPLE_MAX: usize = 10_000;
const RUNS_MAX: u32 = 20;
/// A harness that fails this many mutants in a row is failing them all:
/// the bench stops instead of spending hours on errors.
const ERRORS_IN_A_ROW_MAX: usize = 3;

#[derive(clap::Args)]
pub struct MutantsBenchArgs {
    /// Mutants sampled (seeded) from cargo-mutants' listing.
    #[arg(long, default_value_t = 40, conflicts_with = "viable")]
    pub sample: usize,
    /// Instead of --sample: go down the seeded order until this many
    /// mutants pass the node's own tests.
    #[arg(long)]
    pub viable: Option<usize>,
    /// Every mutant of the listing instead of a sample.
    #[arg(long)]
    pub all: bool,
    /// Seed of the sample and first seed of each mutant's runs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Runs of the spec per mutant before it counts as survived (0: only
    /// build and test each mutant, filling the node-tests cache).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Spec to run against each mutant (default: the default spec).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Overrides the spec's schedule.time_limit.
    #[arg(long)]
    pub time_limit: Option<String>,
    /// No new mutant is started after this long (e.g. 3h).
    #[arg(long, default_value = "4h")]
    pub budget: String,
    /// The faultline checkout to mutate (it is copied, never changed).
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Results root: the bench writes <store>/bench-mutants/<time>/ and
    /// keeps its scratch copy and node-tests cache in <store>/bench-mutants/.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// The scratch copy (default <store>/bench-mutants/scratch): a second
    /// bench on the same store needs one of its own, and shares the cache.
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    /// Keep the mutants the node's own tests catch (faster; the score then
    /// includes mutants a unit test would have found).
    #[arg(long)]
    pub skip_node_tests: bool,
    /// Take the spec outcomes (caught, or survived as many runs) of an
    /// earlier bench's results folder instead of running the spec again;
    /// refused unless its runs used the same spec.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Only the mutants whose name (`file:line:column: change`) contains
    /// this text, in the seeded order (repeatable: any of them): to try
    /// chosen survivors again under a changed spec.
    #[arg(long, value_name = "TEXT")]
    pub only: Vec<String>,
}

/// What happened to one mutant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// It does not build.
    Unviable,
    /// The node's own `cargo test` fails (`by`: the first failing test)
    /// or hangs (`by`: "timeout").
    CaughtByNodeTests { by: String },
    /// It passed the node's tests and `--runs 0` asked for no more.
    PassedNodeTests,
    /// A run of the spec came back invalid.
    Caught { run: u32, seed: u64, checkers: Vec<String>, elapsed_ms: u64 },
    /// Every run was valid or unknown.
    Survived { runs: u32, unknown: u32 },
    /// The harness could not run it (the error).
    Error { message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MutantResult {
    pub mutant: Mutant,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The bench's JSON: its parameters, every mutant's outcome and the score.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub seed: u64,
    pub listed: usize,
    /// Mutants taken from the seeded order (tried or not started).
    pub sampled: usize,
    pub runs: u32,
    pub spec: String,
    pub results: Vec<MutantResult>,
    pub unviable: usize,
    pub caught_by_node_tests: usize,
    /// Passed the node's tests (tried by the spec or, with --runs 0, not).
    pub passed_node_tests: usize,
    pub tried: usize,
    pub caught: usize,
    /// Sampled mutants not started: the budget ran out.
    pub not_started: usize,
    /// Outcomes taken from an earlier bench (`--resume`), and its folder.
    #[serde(default)]
    pub resumed: usize,
    #[serde(default)]
    pub resumed_from: Option<PathBuf>,
    /// `--only`: the texts that chose the mutants (empty: a sample).
    #[serde(default)]
    pub only: Vec<String>,
    /// The control run of the unmutated node (valid or unknown; an invalid
    /// one stops the bench before any mutant).
    #[serde(default)]
    pub control: Option<Verdict>,
}

pub fn run(args: MutantsBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!((1..=SAMPLE_MAX).contains(&args.sample), "--sample must be in 1..={SAMPLE_MAX}");
    anyhow::ensure!(args.viable.is_none_or(|n| (1..=SAMPLE_MAX).contains(&n)), "--viable must be in 1..={SAMPLE_MAX}");
    anyhow::ensure!(args.runs <= RUNS_MAX, "--runs must be in 0..={RUNS_MAX}");
    let budget_ms = parse_duration_ms(&args.budget).map_err(|e| anyhow::anyhow!("--budget: {e}"))?;
    let workspace = args.workspace.canonicalize().map_err(|e| anyhow::anyhow!("--workspace {}: {e}", args.workspace.display()))?;
    anyhow::ensure!(workspace.join("cluster-node/Cargo.toml").exists(), "--workspace {}: not a faultline checkout", workspace.display());
    let spec = base_spec(&args)?;
    let listed = mutant::list(&workspace)?;
    let root = args.store.join("bench-mutants");
    let out = root.join(crate::results::store::timestamp(std::time::SystemTime::now()));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let scratch_dir = args.scratch.clone().unwrap_or_else(|| root.join("scratch"));
    let mut scratch = Scratch::sync(&workspace, &scratch_dir, runtime.handle().clone())?;
    let mut cache = NodeTestsCache::open(&root.join("node-tests.jsonl"), &workspace)?;
    let resumed = match &args.resume {
        Some(dir) => Resumed::load(dir, &spec)?,
        None => Resumed::default(),
    };
    let mut order = mutant::order(listed.len(), args.all, args.seed);
    if !args.only.is_empty() {
        order.retain(|&i| mutant::named_by(&listed[i], &args.only));
        anyhow::ensure!(!order.is_empty(), "--only: no mutant of the {} listed has a name containing {:?}", listed.len(), args.only);
    }
    if args.viable.is_none() && !args.all {
        order.truncate(args.sample);
    }
    let target = match args.viable {
        Some(viable) => format!("mutants until {viable} pass the node's tests"),
        None => format!("{} of {} mutants", order.len(), listed.len()),
    };
    messages::progress(format_args!(
        "bench mutants: {target}, {} run(s) each, seed {}, {} known to the node-tests cache, {} spec outcomes to resume, results in {}",
        args.runs,
        args.seed,
        cache.len(),
        resumed.len(),
        out.display()
    ));
    let started = Instant::now();
    let control_verdict = if args.runs > 0 {
        let verdict = match control(&runtime, &args, &spec, &mut scratch, &out.join("control")) {
            Err(error) if error.is::<Interrupted>() => {
                messages::error("bench mutants: interrupted during the control run");
                return Ok(ExitCode::from(crate::EXIT_HARNESS_ERROR));
            }
            other => other?,
        };
        messages::progress(format_args!("bench mutants: control run of the unmutated node: {} ({:.0} s)", verdict.name(), started.elapsed().as_secs_f64()));
        Some(verdict)
    } else {
        None
    };
    let bar = indicatif::ProgressBar::new(args.viable.unwrap_or(order.len()) as u64);
    let mut results: Vec<(usize, MutantResult)> = Vec::new();
    let mut taken = 0;
    let mut resumed_count = 0;
    let mut interrupted = false;
    let mut errors_in_a_row = 0;
    for &index in &order {
        let passed = results.iter().filter(|(_, r)| passed_node_tests(&r.outcome)).count();
        if started.elapsed() >= Duration::from_millis(budget_ms) || args.viable.is_some_and(|viable| passed >= viable) {
            break;
        }
        taken += 1;
        let mutant = &listed[index];
        bar.set_message(mutant.name.clone());
        let dir = out.join(format!("mutant-{index}"));
        if cache.get(mutant).is_none() {
            cache.reload(&workspace)?;
        }
        let earlier = resumed.get(&mutant.name, args.runs);
        resumed_count += usize::from(earlier.is_some());
        let mut bench = Bench { runtime: &runtime, args: &args, spec: &spec, scratch: &mut scratch, cache: &mut cache };
        let tried = match earlier {
            Some(outcome) => Ok(outcome),
            None => bench.try_mutant(&dir, mutant),
        };
        let outcome = match tried {
            Ok(outcome) => outcome,
            // The run shut its cluster down; the bench ends with what it has.
            Err(error) if error.is::<Interrupted>() => {
                interrupted = true;
                break;
            }
            Err(error) => Outcome::Error { message: format!("{error:#}") },
        };
        bar.inc(if args.viable.is_none() || passed_node_tests(&outcome) { 1 } else { 0 });
        errors_in_a_row = if matches!(outcome, Outcome::Error { .. }) { errors_in_a_row + 1 } else { 0 };
        let result = MutantResult { mutant: mutant.clone(), outcome };
        append_line(&out.join("results.jsonl"), &result)?;
        results.push((index, result));
        if errors_in_a_row >= ERRORS_IN_A_ROW_MAX {
            break;
        }
    }
    bar.finish_and_clear();
    results.sort_by_key(|(index, _)| *index);
    let sampled = if args.viable.is_some() { taken } else { order.len() };
    let mut report = summarize(&args, &spec, listed.len(), sampled, results.into_iter().map(|(_, r)| r).collect());
    report.resumed = resumed_count;
    report.control = control_verdict;
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("mutants.json"), serde_json::to_string_pretty(&report)?)?;
    print!("{}", table(&report));
    if interrupted {
        messages::error("bench mutants: interrupted; the table stops at the mutant it was running");
        return Ok(ExitCode::from(crate::EXIT_HARNESS_ERROR));
    }
    if errors_in_a_row >= ERRORS_IN_A_ROW_MAX {
        messages::error(format_args!(
            "bench mutants: stopped after {ERRORS_IN_A_ROW_MAX} mutants in a row the harness could not run (see their errors in the table)"
        ));
        return Ok(ExitCode::from(crate::EXIT_HARNESS_ERROR));
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM ended a run of the spec.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted;

/// Each outcome as it comes, so a bench stopped early keeps its figures.
fn append_line(path: &Path, result: &MutantResult) -> anyhow::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(file, "{}", serde_json::to_string(result)?)?;
    Ok(())
}

fn passed_node_tests(outcome: &Outcome) -> bool {
    !matches!(outcome, Outcome::Unviable | Outcome::CaughtByNodeTests { .. })
}

/// The spec each mutant runs: `--spec` or the default one.
fn base_spec(args: &MutantsBenchArgs) -> anyhow::Result<SpecFile> {
    let mut spec = match &args.spec {
        Some(path) => SpecFile::read(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => SpecFile::default(),
    };
    if spec.cluster.system != faultline_node::REGISTRATION.name {
        bail!("bench mutants mutates faultline-node; the spec's system is {}", spec.cluster.system);
    }
    if let Some(limit) = &args.time_limit {
        spec.schedule.time_limit = limit.clone();
    }
    spec.name = "mutant".to_string();
    Ok(spec)
}

/// What trying one mutant needs.
struct Bench<'a> {
    runtime: &'a tokio::runtime::Runtime,
    args: &'a MutantsBenchArgs,
    spec: &'a SpecFile,
    scratch: &'a mut Scratch,
    cache: &'a mut NodeTestsCache,
}

impl Bench<'_> {
    /// Applies, tries and reverts one mutant; the node's tests are skipped
    /// when the cache already knows what they say.
    fn try_mutant(&mut self, dir: &Path, mutant: &Mutant) -> anyhow::Result<Outcome> {
        let test = !self.args.skip_node_tests;
        match self.cache.get(mutant) {
            Some(Filter::Unviable) if test => return Ok(Outcome::Unviable),
            Some(Filter::Caught { by }) if test => return Ok(Outcome::CaughtByNodeTests { by: by.clone() }),
            Some(Filter::Passed) if self.args.runs == 0 => return Ok(Outcome::PassedNodeTests),
            _ => {}
        }
        std::fs::create_dir_all(dir)?;
        if test && self.cache.get(mutant).is_none() {
            self.scratch.measure_node_tests(&dir.join("node-tests-unmutated.log"))?;
        }
        let path = self.scratch.dir.join(&mutant.file);
        let original = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        std::fs::write(&path, mutant::apply(&original, mutant)?)?;
        let outcome = self.judge(dir, mutant);
        std::fs::write(&path, original)?;
        outcome
    }

    fn judge(&mut self, dir: &Path, mutant: &Mutant) -> anyhow::Result<Outcome> {
        if !self.args.skip_node_tests && self.cache.get(mutant).is_none() {
            let filter = filter(self.scratch, dir, mutant)?;
            self.cache.record(mutant, filter.clone())?;
            match filter {
                Filter::Unviable => return Ok(Outcome::Unviable),
                Filter::Caught { by } => return Ok(Outcome::CaughtByNodeTests { by }),
                Filter::Passed if self.args.runs == 0 => return Ok(Outcome::PassedNodeTests),
                Filter::Passed => {}
            }
        }
        let binary = dir.join("faultline-node");
        if !self.scratch.build_node(&dir.join("build.log"), &binary)? {
            return Ok(Outcome::Unviable);
        }
        run_spec(self.runtime, self.args, self.spec, dir, &binary, self.args.runs)
    }
}

/// Builds the node's tests with the mutant applied, then runs them.
fn filter(scratch: &mut Scratch, dir: &Path, mutant: &Mutant) -> anyhow::Result<Filter> {
    if !scratch.build_tests(&dir.join("build.log"))? {
        return Ok(Filter::Unviable);
    }
    Ok(match scratch.node_tests(&dir.join("node-tests.log"))? {
        CargoEnd::Succeeded => Filter::Passed,
        CargoEnd::Failed { first_failure } => Filter::Caught { by: first_failure.unwrap_or_else(|| "a failing test".into()) },
        CargoEnd::TimedOut => Filter::Caught { by: "timeout".into() },
    })
    .inspect(|filter| tracing::debug!(mutant = %mutant.name, ?filter, "node tests"))
}

/// The spec against the mutant's binary, up to `--runs` times.
fn run_spec(runtime: &tokio::runtime::Runtime, args: &MutantsBenchArgs, spec: &SpecFile, dir: &Path, binary: &Path, runs: u32) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut unknown = 0;
    for run_index in 0..runs {
        let mut spec = spec.clone();
        spec.seed = Some(args.seed + u64::from(run_index));
        spec.store = dir.join("runs");
        spec.set_node_binary(binary);
        let plan = TestPlan::from_spec(&spec, args.seed).map_err(|e| anyhow::anyhow!("{e}"))?;
        let results = match runtime.block_on(run::run(&plan, RunOptions { quiet: true })) {
            Ok(outcome) => outcome.results,
            Err(failure) if matches!(failure.error, RunError::Interrupted { .. }) => return Err(Interrupted.into()),
            Err(failure) => anyhow::bail!("{}", failure.error),
        };
        match results.verdict.unwrap_or(Verdict::Unknown) {
            Verdict::Invalid => {
                let checkers = results.checks.checkers.iter().filter(|c| c.verdict == Verdict::Invalid);
                return Ok(Outcome::Caught {
                    run: run_index + 1,
                    seed: plan.seed,
                    checkers: checkers.map(|c| c.name.clone()).collect(),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                });
            }
            Verdict::Unknown => unknown += 1,
            Verdict::Valid => {}
        }
    }
    Ok(Outcome::Survived { runs, unknown })
}

/// One run of the spec (the first seed) against the unmutated node before
/// any mutant: a harness that cannot run the spec here, or a spec the
/// correct node fails, would make every outcome meaningless.
fn control(runtime: &tokio::runtime::Runtime, args: &MutantsBenchArgs, spec: &SpecFile, scratch: &mut Scratch, dir: &Path) -> anyhow::Result<Verdict> {
    std::fs::create_dir_all(dir)?;
    let binary = dir.join("faultline-node");
    let log = dir.join("build.log");
    anyhow::ensure!(scratch.build_node(&log, &binary)?, "bench mutants: the unmutated node does not build; see {}", log.display());
    let outcome = match run_spec(runtime, args, spec, dir, &binary, 1) {
        Ok(outcome) => outcome,
        Err(error) if error.is::<Interrupted>() => return Err(error),
        Err(error) => bail!("bench mutants: the spec cannot run against the unmutated node: {error:#}"),
    };
    match outcome {
        Outcome::Caught { checkers, .. } => bail!(
            "bench mutants: the spec finds the unmutated node invalid ({}; see {}); a score against it would mean nothing",
            checkers.join(", "),
            dir.join("runs").display()
        ),
        Outcome::Survived { unknown: 0, .. } => Ok(Verdict::Valid),
        _ => Ok(Verdict::Unknown),
    }
}

fn summarize(args: &MutantsBenchArgs, spec: &SpecFile, listed: usize, sampled: usize, results: Vec<MutantResult>) -> Report {
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    let unviable = count(|o| matches!(o, Outcome::Unviable));
    let caught_by_node_tests = count(|o| matches!(o, Outcome::CaughtByNodeTests { .. }));
    let passed_node_tests = count(passed_node_tests) - count(|o| matches!(o, Outcome::Error { .. }));
    let caught = count(|o| matches!(o, Outcome::Caught { .. }));
    let tried = caught + count(|o| matches!(o, Outcome::Survived { .. }));
    Report {
        seed: args.seed,
        listed,
        sampled,
        runs: args.runs,
        spec: format!(
            "{} ({} runs)",
            args.spec.as_ref().map_or("default".to_string(), |p| p.display().to_string()),
            spec.schedule.time_limit
        ),
        not_started: sampled - results.len(),
        results,
        unviable,
        caught_by_node_tests,
        passed_node_tests,
        tried,
        caught,
        resumed: 0,
        resumed_from: args.resume.clone(),
        only: args.only.clone(),
        control: None,
    }
}

/// The printed table (the mutants that passed the node's tests; the
/// JSON has every one) and the score.
pub fn table(report: &Report) -> String {
    let mut out = format!("{:<14} {:<8} {:>9}  {}\n", "outcome", "run", "time", "mutant (checkers)");
    for result in report.results.iter().filter(|r| passed_node_tests(&r.outcome)) {
        let (outcome, run, time, detail) = match &result.outcome {
            Outcome::Unviable | Outcome::CaughtByNodeTests { .. } => continue,
            Outcome::PassedNodeTests => ("passed tests", "-".to_string(), "-".to_string(), String::new()),
            Outcome::Caught { run, checkers, elapsed_ms, .. } => {
                ("CAUGHT", run.to_string(), format!("{:.1}s", *elapsed_ms as f64 / 1000.0), format!(" ({})", checkers.join(",")))
            }
            Outcome::Survived { runs, unknown } => ("survived", format!("-/{runs}"), "-".to_string(), format!(" ({unknown} unknown)")),
            Outcome::Error { message } => ("ERROR", "-".to_string(), "-".to_string(), format!(" ({message})")),
        };
        out.push_str(&format!("{outcome:<14} {run:<8} {time:>9}  {}{detail}\n", result.mutant.name));
    }
    let percent = if report.tried == 0 { 0.0 } else { 100.0 * report.caught as f64 / report.tried as f64 };
    out.push_str(&format!(
        "mutants: {} listed, {} sampled (seed {}), {} unviable, {} caught by the node's tests, {} passed them, {} not started (budget or signal)\n",
        report.listed,
        report.sampled,
        report.seed,
        report.unviable,
        report.caught_by_node_tests,
        report.passed_node_tests,
        report.not_started
    ));
    if let Some(control) = report.control {
        out.push_str(&format!("control: the unmutated node's run of the spec was {}\n", control.name()));
    }
    if !report.only.is_empty() {
        out.push_str(&format!("only: the mutants whose names contain {:?}, not a sample\n", report.only));
    }
    if let Some(from) = &report.resumed_from {
        out.push_str(&format!("resumed: {} spec outcomes taken from {}\n", report.resumed, from.display()));
    }
    out.push_str(&format!(
        "score: {} of {} caught ({percent:.0} %) by the {} spec, up to {} run(s) each\n",
        report.caught, report.tried, report.spec, report.runs
    ));
    out
}
