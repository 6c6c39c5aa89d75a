//! `faultline bench mutants`: how many bugs nobody planted a spec catches.
//!
//! cargo-mutants lists mutants of faultline-node's replication and
//! durability code; a seeded sample of them is applied one at a time to a
//! scratch copy of the workspace. A mutant that does not build is
//! unviable; one the node's own `cargo test` catches is dropped (the
//! harness must earn its keep on the rest); every other one runs the spec
//! (the default spec unless `--spec`) up to `--runs` times, seeds `seed`,
//! `seed + 1`, ..., and is caught at its first `invalid` verdict. The
//! score is caught / tried. The sample is reproducible from its seed and
//! the listing (same source, same cargo-mutants version).
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use faultline_checkers::Verdict;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::fields::parse_duration_ms;
use crate::messages;
use crate::plan::{SpecFile, TestPlan};
use crate::run::{self, RunOptions};
use crate::systems::faultline_node;

/// The node code mutated: replication, the log, the server's paths.
const MUTATED_FILES: [&str; 3] = ["cluster-node/src/raft/**", "cluster-node/src/wal/**", "cluster-node/src/server/**"];
/// Bounds on one mutant's build and on the node's own tests with it.
const BUILD_TIMEOUT_MS: u64 = 15 * 60_000;
const NODE_TESTS_TIMEOUT_MS: u64 = 15 * 60_000;
const SAMPLE_MAX: usize = 10_000;
const RUNS_MAX: u32 = 20;

#[derive(clap::Args)]
pub struct MutantsBenchArgs {
    /// Mutants sampled (seeded) from cargo-mutants' listing.
    #[arg(long, default_value_t = 40)]
    pub sample: usize,
    /// Every mutant of the listing instead of a sample.
    #[arg(long)]
    pub all: bool,
    /// Seed of the sample and first seed of each mutant's runs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Runs of the spec per mutant before it counts as survived.
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
    /// Results root: the bench writes <store>/bench-mutants/<time>/.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Keep the mutants the node's own tests catch (faster; the score then
    /// includes mutants a unit test would have found).
    #[arg(long)]
    pub skip_node_tests: bool,
}

/// One mutant, as cargo-mutants lists it (fields faultline uses).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mutant {
    pub name: String,
    pub file: String,
    pub replacement: String,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Span {
    pub start: LineColumn,
    pub end: LineColumn,
}

/// 1-based line and column (in characters), as cargo-mutants prints them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LineColumn {
    pub line: usize,
    pub column: usize,
}

/// What happened to one mutant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// It does not build.
    Unviable,
    /// The node's own `cargo test` fails (or hangs) with it.
    CaughtByNodeTests,
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
    pub sampled: usize,
    pub runs: u32,
    pub spec: String,
    pub results: Vec<MutantResult>,
    pub unviable: usize,
    pub caught_by_node_tests: usize,
    pub tried: usize,
    pub caught: usize,
    /// Sampled mutants not started: the budget ran out.
    pub not_started: usize,
}

pub fn run(args: MutantsBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!((1..=SAMPLE_MAX).contains(&args.sample), "--sample must be in 1..={SAMPLE_MAX}");
    anyhow::ensure!((1..=RUNS_MAX).contains(&args.runs), "--runs must be in 1..={RUNS_MAX}");
    let budget_ms = parse_duration_ms(&args.budget).map_err(|e| anyhow::anyhow!("--budget: {e}"))?;
    let workspace = args.workspace.canonicalize().with_context(|| format!("--workspace {}", args.workspace.display()))?;
    anyhow::ensure!(workspace.join("cluster-node/Cargo.toml").exists(), "--workspace {}: not a faultline checkout", workspace.display());
    let spec = base_spec(&args)?;
    let listed = list_mutants(&workspace)?;
    let sample = sample(&listed, args.sample, args.all, args.seed);
    let out = args.store.join("bench-mutants").join(crate::results::store::timestamp(std::time::SystemTime::now()));
    let scratch = out.join("scratch");
    copy_workspace(&workspace, &scratch)?;
    messages::progress(format_args!(
        "bench mutants: {} of {} mutants, {} run(s) each, seed {}, results in {}",
        sample.len(),
        listed.len(),
        args.runs,
        args.seed,
        out.display()
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let started = Instant::now();
    let bar = indicatif::ProgressBar::new(sample.len() as u64);
    let mut results = Vec::new();
    for (index, mutant) in sample.iter().enumerate() {
        if started.elapsed() >= Duration::from_millis(budget_ms) {
            break;
        }
        bar.set_message(mutant.name.clone());
        let outcome = try_mutant(&runtime, &args, &spec, &scratch, &out.join(format!("mutant-{index}")), mutant)
            .unwrap_or_else(|error| Outcome::Error { message: format!("{error:#}") });
        bar.inc(1);
        results.push(MutantResult { mutant: mutant.clone(), outcome });
    }
    bar.finish_and_clear();
    let report = summarize(&args, &spec, listed.len(), sample.len(), results);
    std::fs::write(out.join("mutants.json"), serde_json::to_string_pretty(&report)?)?;
    print!("{}", table(&report));
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(ExitCode::SUCCESS)
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

/// `cargo mutants --list --json` over the mutated files.
fn list_mutants(workspace: &Path) -> anyhow::Result<Vec<Mutant>> {
    let mut command = Command::new("cargo");
    command.current_dir(workspace).args(["mutants", "--list", "--json", "--package", "faultline-node"]);
    for file in MUTATED_FILES {
        command.args(["--file", file]);
    }
    let output = command.stderr(Stdio::piped()).output().context("running cargo mutants")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("no such command") {
            bail!("cargo-mutants is not installed: cargo install cargo-mutants --locked");
        }
        bail!("cargo mutants --list failed: {}", stderr.lines().last().unwrap_or("no output"));
    }
    serde_json::from_slice(&output.stdout).context("reading cargo mutants' JSON listing")
}

/// A seeded sample, in listing order (so a run reads top to bottom).
pub fn sample(listed: &[Mutant], size: usize, all: bool, seed: u64) -> Vec<Mutant> {
    let mut indices: Vec<usize> = (0..listed.len()).collect();
    if !all {
        indices.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        indices.truncate(size);
        indices.sort_unstable();
    }
    indices.into_iter().map(|index| listed[index].clone()).collect()
}

/// A copy of the checkout's sources (no target/, .git/ or store/).
fn copy_workspace(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if [".git", "target", "store", "mutants.out"].iter().any(|skip| name == *skip) {
            continue;
        }
        let (source, dest) = (entry.path(), to.join(&name));
        if entry.file_type()?.is_dir() {
            copy_workspace(&source, &dest)?;
        } else if entry.file_type()?.is_file() {
            std::fs::copy(&source, &dest).with_context(|| format!("copying {}", source.display()))?;
        }
    }
    Ok(())
}

/// Applies, tries and reverts one mutant.
fn try_mutant(
    runtime: &tokio::runtime::Runtime,
    args: &MutantsBenchArgs,
    spec: &SpecFile,
    scratch: &Path,
    dir: &Path,
    mutant: &Mutant,
) -> anyhow::Result<Outcome> {
    let path = scratch.join(&mutant.file);
    let original = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    std::fs::write(&path, apply(&original, mutant)?)?;
    let outcome = judge(runtime, args, spec, scratch, dir);
    std::fs::write(&path, original)?;
    outcome
}

fn judge(
    runtime: &tokio::runtime::Runtime,
    args: &MutantsBenchArgs,
    spec: &SpecFile,
    scratch: &Path,
    dir: &Path,
) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(dir)?;
    if !cargo(scratch, &["build", "--release", "-p", "faultline-node"], &dir.join("build.log"), BUILD_TIMEOUT_MS)? {
        return Ok(Outcome::Unviable);
    }
    if !args.skip_node_tests
        && !cargo(scratch, &["test", "--release", "-p", "faultline-node"], &dir.join("node-tests.log"), NODE_TESTS_TIMEOUT_MS)?
    {
        return Ok(Outcome::CaughtByNodeTests);
    }
    let binary = dir.join("faultline-node");
    std::fs::copy(scratch.join("target/release/faultline-node"), &binary)?;
    let started = Instant::now();
    let mut unknown = 0;
    for run_index in 0..args.runs {
        let mut spec = spec.clone();
        spec.seed = Some(args.seed + u64::from(run_index));
        spec.store = dir.join("runs");
        spec.cluster.options.insert("node_binary".into(), binary.display().to_string().into());
        let plan = TestPlan::from_spec(&spec, args.seed).map_err(|e| anyhow::anyhow!("{e}"))?;
        let results = runtime.block_on(run::run(&plan, RunOptions { quiet: true })).map_err(|e| anyhow::anyhow!("{e}"))?.results;
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
    Ok(Outcome::Survived { runs: args.runs, unknown })
}

/// Runs cargo in `dir`, output to `log`, killed after `timeout_ms`
/// (which counts as a failure: a hang). True when it succeeded.
fn cargo(dir: &Path, cargo_args: &[&str], log: &Path, timeout_ms: u64) -> anyhow::Result<bool> {
    let log_file = std::fs::File::create(log)?;
    let mut child = Command::new("cargo")
        .current_dir(dir)
        .args(cargo_args)
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .context("running cargo")?;
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.success());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `source` with the mutant's span replaced.
pub fn apply(source: &str, mutant: &Mutant) -> anyhow::Result<String> {
    let start = offset(source, mutant.span.start).with_context(|| format!("{}: span start out of the file", mutant.name))?;
    let end = offset(source, mutant.span.end).with_context(|| format!("{}: span end out of the file", mutant.name))?;
    anyhow::ensure!(start <= end, "{}: span ends before it starts", mutant.name);
    Ok(format!("{}{}{}", &source[..start], mutant.replacement, &source[end..]))
}

/// Byte offset of a 1-based line and character column.
fn offset(source: &str, at: LineColumn) -> Option<usize> {
    let line_start: usize = source.split_inclusive('\n').take(at.line.checked_sub(1)?).map(str::len).sum();
    let line = source[line_start..].split('\n').next()?;
    let column = at.column.checked_sub(1)?;
    match line.char_indices().nth(column) {
        Some((byte, _)) => Some(line_start + byte),
        None if column == line.chars().count() => Some(line_start + line.len()),
        None => None,
    }
}

fn summarize(args: &MutantsBenchArgs, spec: &SpecFile, listed: usize, sampled: usize, results: Vec<MutantResult>) -> Report {
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    let unviable = count(|o| matches!(o, Outcome::Unviable));
    let caught_by_node_tests = count(|o| matches!(o, Outcome::CaughtByNodeTests));
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
        tried,
        caught,
    }
}

/// The printed table and score.
pub fn table(report: &Report) -> String {
    let mut out = format!("{:<14} {:<8} {:>9}  {}\n", "outcome", "run", "time", "mutant (checkers)");
    for result in &report.results {
        let (outcome, run, time, detail) = match &result.outcome {
            Outcome::Unviable => ("unviable", "-".to_string(), "-".to_string(), String::new()),
            Outcome::CaughtByNodeTests => ("node tests", "-".to_string(), "-".to_string(), String::new()),
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
        "mutants: {} listed, {} sampled (seed {}), {} unviable, {} caught by the node's tests, {} not started (budget)\n",
        report.listed, report.sampled, report.seed, report.unviable, report.caught_by_node_tests, report.not_started
    ));
    out.push_str(&format!(
        "score: {} of {} caught ({percent:.0} %) by the {} spec, up to {} run(s) each\n",
        report.caught, report.tried, report.spec, report.runs
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mutant(start: (usize, usize), end: (usize, usize), replacement: &str) -> Mutant {
        Mutant {
            name: "m".into(),
            file: "f.rs".into(),
            replacement: replacement.into(),
            span: Span {
                start: LineColumn { line: start.0, column: start.1 },
                end: LineColumn { line: end.0, column: end.1 },
            },
        }
    }

    #[test]
    fn a_mutant_replaces_its_span_only() {
        let source = "fn a() -> bool {\n    x > 1\n}\n";
        assert_eq!(apply(source, &mutant((2, 7), (2, 8), ">=")).unwrap(), "fn a() -> bool {\n    x >= 1\n}\n");
        assert_eq!(apply(source, &mutant((1, 16), (3, 2), "{ true }")).unwrap(), "fn a() -> bool { true }\n");
        assert!(apply(source, &mutant((9, 1), (9, 2), "x")).is_err(), "a span out of the file is an error");
    }

    #[test]
    fn the_sample_is_seeded_and_in_listing_order() {
        let listed: Vec<Mutant> = (0..100).map(|i| Mutant { name: i.to_string(), ..mutant((1, 1), (1, 1), "") }).collect();
        let names = |seed| sample(&listed, 10, false, seed).into_iter().map(|m| m.name.parse::<u32>().unwrap()).collect::<Vec<_>>();
        assert_eq!(names(7), names(7));
        assert_ne!(names(7), names(8));
        assert!(names(7).windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(sample(&listed, 10, true, 7).len(), 100);
    }
}
