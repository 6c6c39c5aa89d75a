//! `faultline test`: run a faulted test and check its history.
//!
//! Flags override the spec file (`--spec`), which overrides the defaults;
//! `--set section.field=value` reaches every field the dedicated flags do
//! not. Bad input is one line on stderr and exit 3, before anything starts.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cmd::OutputFormat;
use crate::report::{ReportInput, ReportStats};
use crate::runner::{self, RunError, RunOptions};
use crate::plan::{SpecFile, TestPlan};
use crate::{messages, EXIT_HARNESS_ERROR};

/// Every spec field with its default, for `--help` (the same file is
/// quoted in harness/docs/test.md; a test keeps the two equal).
pub const SPEC_FIELDS_HELP: &str = concat!(
    "Spec fields (YAML; each can be set with --set section.field=value), with their defaults:\n\n",
    include_str!("../../docs/spec-reference.yaml")
);

/// Run a faulted test against a cluster and check its history.
///
/// With no flags: 5 faultline-node nodes, 30 s of the kv workload under
/// kill, pause and partition faults, then heal, recovery and final reads.
/// Exit code: 0 valid, 1 invalid, 2 unknown, 3 harness error. See
/// harness/docs/test.md for every spec field.
#[derive(clap::Args, Debug, Default)]
#[command(after_long_help = SPEC_FIELDS_HELP)]
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
    /// Comma-separated faults: kill, pause, partition, link, power-loss
    /// (families), single faults such as kill-leader or partition-ring,
    /// revote (a scenario: one voter restarted between two elections of one
    /// term), figure-8 (the Raft paper's figure-8 order), mix (all but
    /// power-loss and those two scenarios), or none.
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
    /// Spec file, then flags, then `--set`, then validation: the plan, or
    /// one line of error.
    pub fn plan(&self) -> Result<TestPlan, String> {
        let mut spec = match &self.spec {
            Some(path) => SpecFile::read(path).map_err(|e| e.to_string())?,
            None => SpecFile::default(),
        };
        self.apply_flags(&mut spec);
        let spec = spec.with_overrides(&self.set_overrides()?).map_err(|e| e.to_string())?;
        TestPlan::from_spec(&spec, fresh_seed()).map_err(|e| e.to_string())
    }

    /// The dedicated flags, set on the spec's typed fields.
    fn apply_flags(&self, spec: &mut SpecFile) {
        if let Some(name) = &self.name {
            spec.name = name.clone();
        }
        if let Some(workload) = &self.workload {
            spec.workload.kind = workload.clone();
        }
        if let Some(nemesis) = &self.nemesis {
            spec.nemesis.faults = nemesis.iter().map(|name| name.trim().to_string()).collect();
        }
        if let Some(nodes) = self.nodes {
            spec.cluster.nodes = nodes;
        }
        if let Some(time_limit) = &self.time_limit {
            spec.schedule.time_limit = time_limit.clone();
        }
        if let Some(rate) = self.rate {
            spec.schedule.rate = rate;
        }
        if let Some(concurrency) = self.concurrency {
            spec.schedule.concurrency = concurrency;
        }
        if let Some(seed) = self.seed {
            spec.seed = Some(seed);
        }
        if let Some(store) = &self.store {
            spec.store = store.clone();
        }
        // A field of the system's own: the system reads it, or refuses it.
        if let Some(binary) = &self.node_binary {
            spec.cluster.options.insert("node_binary".into(), binary.display().to_string().into());
        }
    }

    /// `--set FIELD=VALUE`, as (path, YAML value) pairs.
    fn set_overrides(&self) -> Result<Vec<(String, String)>, String> {
        self.set
            .iter()
            .map(|assignment| {
                let (path, value) = assignment
                    .split_once('=')
                    .ok_or_else(|| format!("--set {assignment:?} is not FIELD=VALUE"))?;
                Ok((path.trim().to_string(), value.to_string()))
            })
            .collect()
    }
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
            messages::error(message);
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
    let latest_before = latest_target(&plan);
    let results = runtime.block_on(runner::run(&plan, options));
    let results = match results {
        Ok(results) => results,
        Err(error) => {
            messages::error(&error);
            messages::run_failed_seed(plan.seed);
            // A failed run still leaves its history (when it got that far):
            // report it, and tell CI through JUnit that the run did not pass.
            let run_dir = failed_run_dir(&plan, &error, latest_before.as_deref());
            if let Some(stats) = report_failed_run(&plan, run_dir.as_deref(), args.junit.as_deref(), &error.to_string()) {
                messages::report_written(&stats.path, true);
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
        messages::run_verdict(results.verdict, results.seed);
    }
    // A missing report or JUnit file fails a valid run (CI relies on
    // them) but never hides an invalid or unknown verdict.
    if !reported && results.exit_code == crate::EXIT_VALID {
        return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
    }
    Ok(ExitCode::from(results.exit_code))
}

/// Where `<store>/<name>/latest` points, read before the run starts so a
/// failed run can tell whether it moved the link.
fn latest_target(plan: &TestPlan) -> Option<PathBuf> {
    std::fs::read_link(plan.store_dir.join(&plan.name).join("latest")).ok()
}

/// The results folder of a failed run, if it got one. Interruptions and
/// history errors name it; for the other errors it is the `latest` link,
/// taken only when this run moved it and the folder holds this run's seed,
/// so an older run's folder is never reported as this one.
fn failed_run_dir(plan: &TestPlan, error: &RunError, latest_before: Option<&Path>) -> Option<PathBuf> {
    match error {
        RunError::Interrupted { dir, .. } => return Some(dir.clone()),
        RunError::History { path, .. } => return path.parent().map(Path::to_path_buf),
        _ => {}
    }
    let test_dir = plan.store_dir.join(&plan.name);
    let target = std::fs::read_link(test_dir.join("latest")).ok()?;
    if latest_before == Some(target.as_path()) {
        return None;
    }
    let dir = test_dir.join(target);
    let seed = std::fs::read_to_string(dir.join("seed")).ok()?;
    (seed.trim() == plan.seed.to_string()).then_some(dir)
}

/// `report.html` of a failed run (when its folder has a history) showing
/// the error instead of verdicts, and JUnit (when asked) with a failing
/// `harness` case. Problems writing them are printed, not returned: the
/// exit code is already a harness error.
fn report_failed_run(plan: &TestPlan, run_dir: Option<&Path>, junit: Option<&Path>, error: &str) -> Option<ReportStats> {
    let fallback = ReportInput {
        title: format!("faultline test {}", plan.name),
        seed: Some(plan.seed),
        ..ReportInput::default()
    };
    match crate::report::finish_failed_run(run_dir, junit, fallback, error) {
        Ok(stats) => stats,
        Err(report_error) => {
            messages::error(report_error);
            None
        }
    }
}

/// `report.html` in the results folder (and JUnit when asked); says where,
/// on stderr when stdout is data. False when it could not be written.
fn write_report(run_dir: &std::path::Path, junit: Option<&std::path::Path>, to_stderr: bool) -> bool {
    match crate::report::finish_run(run_dir, junit) {
        Ok(stats) => {
            messages::report_written(&stats.path, to_stderr);
            true
        }
        Err(error) => {
            messages::error(error);
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
            messages::warning("cannot point stdout at stderr; the JSON follows other lines");
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

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str = include_str!("../../docs/spec-reference.yaml");

    #[test]
    fn the_field_reference_is_the_default_spec_and_the_docs_quote_it() {
        let reference = SpecFile::from_yaml(REFERENCE, "spec-reference.yaml").expect("the reference is a valid spec");
        let reference = TestPlan::from_spec(&reference, 0).expect("the reference is a valid plan").resolved;
        let default = TestPlan::from_spec(&SpecFile::default(), 1234).expect("the default is a valid plan").resolved;
        assert_eq!(reference, default, "the reference must show every default");
        // Every field the resolved spec has is named in the reference.
        let tree = serde_json::to_value(&default).unwrap();
        for (section, fields) in tree.as_object().unwrap() {
            assert!(REFERENCE.contains(&format!("{section}:")), "{section} missing");
            for field in fields.as_object().map(|f| f.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
                assert!(REFERENCE.contains(&format!("  {field}:")), "{section}.{field} missing from the reference");
            }
        }
        let docs = include_str!("../../docs/test.md");
        assert!(docs.contains(REFERENCE), "harness/docs/test.md must quote spec-reference.yaml verbatim");
    }

    fn plan_in(store: &Path, seed: u64) -> TestPlan {
        let spec = SpecFile { store: store.to_path_buf(), name: "t".into(), seed: Some(seed), ..SpecFile::default() };
        TestPlan::from_spec(&spec, 0).expect("the default spec validates")
    }

    /// `<store>/t/<leaf>/` with a seed and a two-line history, and `latest`
    /// pointing at it, as the runner leaves a run that failed halfway.
    fn failed_run(store: &Path, leaf: &str, seed: u64) -> PathBuf {
        let dir = store.join("t").join(leaf);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("seed"), format!("{seed}\n")).unwrap();
        std::fs::write(
            dir.join("history.jsonl"),
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":1}\n\
             {\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":2}\n",
        )
        .unwrap();
        let latest = store.join("t/latest");
        let _ = std::fs::remove_file(&latest);
        std::os::unix::fs::symlink(leaf, &latest).unwrap();
        dir
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("faultline-test-cmd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn failed_run_report_and_junit_after_a_cluster_error() {
        let store = scratch("cluster-error");
        let plan = plan_in(&store, 11);
        let before = latest_target(&plan);
        let dir = failed_run(&store, "20250101T000000", 11);
        let error = RunError::PowerLoss("node 2 exited while the history was recorded".into());
        let found = failed_run_dir(&plan, &error, before.as_deref());
        assert_eq!(found.as_deref(), Some(store.join("t/20250101T000000").as_path()));
        let junit = store.join("junit.xml");
        let stats = report_failed_run(&plan, found.as_deref(), Some(&junit), &error.to_string()).expect("a page");
        assert_eq!(stats.path, dir.join("report.html"));
        let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
        assert!(html.contains("class=\"verdict harness-error\">HARNESS ERROR<"), "badge");
        assert!(html.contains("harness error: node 2 exited while the history was recorded"), "message");
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(xml.contains("tests=\"1\" failures=\"0\" errors=\"1\""), "{xml}");
        assert!(xml.contains("name=\"harness\""), "{xml}");
        assert!(xml.contains("message=\"node 2 exited while the history was recorded\""), "{xml}");
        let _ = std::fs::remove_dir_all(&store);
    }

    #[test]
    fn failed_run_report_never_lands_in_an_older_run() {
        let store = scratch("older-run");
        let plan = plan_in(&store, 11);
        let older = failed_run(&store, "20240101T000000", 11);
        let before = latest_target(&plan);
        let error = RunError::PowerLoss("no lazyfs".into());
        // The failed run never moved `latest`: the folder there is not its own.
        assert_eq!(failed_run_dir(&plan, &error, before.as_deref()), None);
        // A moved link to a folder with another seed belongs to another run.
        failed_run(&store, "20250101T000000", 12);
        assert_eq!(failed_run_dir(&plan, &error, before.as_deref()), None);
        // Without a folder, JUnit still says the run did not pass.
        let junit = store.join("junit.xml");
        assert!(report_failed_run(&plan, None, Some(&junit), &error.to_string()).is_none());
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(xml.contains("<testsuite name=\"faultline test t\" tests=\"1\" failures=\"0\" errors=\"1\">"), "{xml}");
        assert!(xml.contains("<property name=\"seed\" value=\"11\"/>"), "{xml}");
        assert!(!older.join("report.html").exists(), "the older run's folder is untouched");
        let _ = std::fs::remove_dir_all(&store);
    }

    #[test]
    fn failed_run_report_after_a_history_error_uses_its_folder() {
        let store = scratch("history-error");
        let plan = plan_in(&store, 11);
        let dir = failed_run(&store, "20250101T000000", 11);
        let error = RunError::History { path: dir.join("history.jsonl"), message: "disk full".into() };
        assert_eq!(failed_run_dir(&plan, &error, None), Some(dir.clone()));
        report_failed_run(&plan, Some(&dir), None, &error.to_string()).expect("a page");
        let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
        assert!(html.contains("disk full"), "the history error is on the page");
        let _ = std::fs::remove_dir_all(&store);
    }
}
