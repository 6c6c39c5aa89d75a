//! `faultline test`: run a faulted test and check its history.
//!
//! Flags override the spec file (`--spec`), which overrides the defaults;
//! `--set section.field=value` reaches every field the dedicated flags do
//! not. Bad input is one line on stderr and exit 3, before anything starts.
use std::path::PathBuf;
use std::process::ExitCode;

use crate::check_cmd::OutputFormat;
use crate::runner::{self, RunError, RunOptions};
use crate::spec::{SpecFile, TestPlan};
use crate::EXIT_HARNESS_ERROR;

/// Run a faulted test against a cluster and check its history.
///
/// With no flags: 5 faultline-node nodes, 30 s of the kv workload under
/// kill, pause and partition faults, then heal, recovery and final reads.
/// Exit code: 0 valid, 1 invalid, 2 unknown, 3 harness error. See
/// harness/docs/test.md for every spec field.
#[derive(clap::Args, Debug, Default)]
pub struct TestArgs {
    /// YAML spec file (fields: name, seed, store, cluster, client,
    /// workload, nemesis, schedule, checkers).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Test name: results go to <store>/<name>/<timestamp>/.
    #[arg(long)]
    pub name: Option<String>,
    /// register | cas-register | kv | set | append.
    #[arg(long, value_name = "KIND")]
    pub workload: Option<String>,
    /// Comma-separated faults: kill, pause, partition, link (families),
    /// single faults such as kill-leader or partition-ring, mix, or none.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub nemesis: Option<Vec<String>>,
    /// Cluster size.
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Length of the faulted phase, e.g. 30s, 500ms, 2m.
    #[arg(long, value_name = "DURATION")]
    pub time_limit: Option<String>,
    /// Operations per second over all clients.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Client processes at once.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Seed for every random choice (workload, schedule, faults); drawn
    /// and printed when absent. The same seed replays the same test.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Results root directory (default: store).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Path of the faultline-node binary.
    #[arg(long, value_name = "PATH")]
    pub node_binary: Option<PathBuf>,
    /// Override any spec field: --set client.op_timeout=2s (repeatable).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
    /// Validate the spec and print it as resolved, then exit.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
    /// Also write JUnit XML: one test case per checker.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// `json`: print the results (results.json) on stdout instead of the
    /// summary; the other lines go to stderr.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<OutputFormat>,
}

impl TestArgs {
    /// The overrides these flags make, as `field path = YAML value`.
    pub fn overrides(&self) -> Result<Vec<(String, String)>, String> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut put = |path: &str, value: String| out.push((path.to_string(), value));
        if let Some(name) = &self.name {
            put("name", yaml_string(name));
        }
        if let Some(workload) = &self.workload {
            put("workload.kind", yaml_string(workload));
        }
        if let Some(nemesis) = &self.nemesis {
            let items: Vec<String> = nemesis.iter().map(|n| yaml_string(n.trim())).collect();
            put("nemesis.faults", format!("[{}]", items.join(", ")));
        }
        if let Some(nodes) = self.nodes {
            put("cluster.nodes", nodes.to_string());
        }
        if let Some(time_limit) = &self.time_limit {
            put("schedule.time_limit", yaml_string(time_limit));
        }
        if let Some(rate) = self.rate {
            put("schedule.rate", rate.to_string());
        }
        if let Some(concurrency) = self.concurrency {
            put("schedule.concurrency", concurrency.to_string());
        }
        if let Some(seed) = self.seed {
            put("seed", seed.to_string());
        }
        if let Some(store) = &self.store {
            put("store", yaml_string(&store.display().to_string()));
        }
        if let Some(binary) = &self.node_binary {
            put("cluster.node_binary", yaml_string(&binary.display().to_string()));
        }
        for assignment in &self.set {
            let (path, value) = assignment
                .split_once('=')
                .ok_or_else(|| format!("--set {assignment:?} is not FIELD=VALUE"))?;
            out.push((path.trim().to_string(), value.to_string()));
        }
        Ok(out)
    }

    /// Spec file, then flags, then validation: the plan, or one line of error.
    pub fn plan(&self) -> Result<TestPlan, String> {
        let base = match &self.spec {
            Some(path) => SpecFile::read(path).map_err(|e| e.to_string())?,
            None => SpecFile::default(),
        };
        let spec = base.with_overrides(&self.overrides()?).map_err(|e| e.to_string())?;
        TestPlan::from_spec(&spec, fresh_seed()).map_err(|e| e.to_string())
    }
}

/// A quoted YAML scalar, so `--workload 123` stays a string.
fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// The one place a seed is drawn from outside the test: clock and pid.
/// It is printed at the start and end, so the run can be replayed.
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // splitmix64 finalizer, to spread clock bits over the whole seed.
    let mut z = nanos ^ (u64::from(std::process::id()) << 32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % 1_000_000_000
}

pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let plan = match args.plan() {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("faultline: error: {message}");
            return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
        }
    };
    if args.dry_run {
        print!("{}", plan.resolved.to_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let json = args.format == Some(OutputFormat::Json);
    let options = RunOptions { quiet: args.quiet };
    let redirect = StdoutToStderr::new(json);
    let results = runtime.block_on(runner::run(&plan, options));
    let results = match results {
        Ok(results) => results,
        Err(error) => {
            eprintln!("faultline: error: {error}");
            eprintln!("faultline: seed {}", plan.seed);
            // An interrupted run still leaves its history: report it.
            if let RunError::Interrupted { dir, .. } = &error {
                let _ = write_report(dir, args.junit.as_deref(), true);
            }
            return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
        }
    };
    let reported = write_report(&results.run_dir, args.junit.as_deref(), json);
    drop(redirect);
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", results.summary());
        println!("faultline: verdict {}, seed {}", results.verdict.name(), results.seed);
    }
    // A missing report or JUnit file fails a valid run (CI relies on
    // them) but never hides an invalid or unknown verdict.
    if !reported && results.exit_code == crate::EXIT_VALID {
        return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
    }
    Ok(ExitCode::from(results.exit_code))
}

/// `report.html` in the results folder (and JUnit when asked); says where,
/// on stderr when stdout is data. False when it could not be written.
fn write_report(run_dir: &std::path::Path, junit: Option<&std::path::Path>, to_stderr: bool) -> bool {
    match crate::report::finish_run(run_dir, junit) {
        Ok(stats) => {
            let line = format!("faultline: report {}", stats.path.display());
            if to_stderr {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            true
        }
        Err(error) => {
            eprintln!("faultline: error: {error}");
            false
        }
    }
}

/// With `--format json`, stdout must carry the JSON document alone: while
/// this guard lives, file descriptor 1 points at stderr, so the run's other
/// lines go there; dropping it restores stdout.
struct StdoutToStderr {
    saved: Option<std::os::fd::RawFd>,
}

impl StdoutToStderr {
    fn new(active: bool) -> StdoutToStderr {
        use std::io::Write;
        if !active {
            return StdoutToStderr { saved: None };
        }
        let _ = std::io::stdout().flush();
        let saved = nix::unistd::dup(1).ok();
        if saved.is_some() && nix::unistd::dup2(2, 1).is_err() {
            eprintln!("faultline: warning: cannot point stdout at stderr; the JSON follows other lines");
        }
        StdoutToStderr { saved }
    }
}

impl Drop for StdoutToStderr {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        if let Some(saved) = self.saved.take() {
            let _ = nix::unistd::dup2(saved, 1);
            let _ = nix::unistd::close(saved);
        }
    }
}
