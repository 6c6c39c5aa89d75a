//! `faultline test`: run a faulted test and check its history.
//!
//! Flags override the spec file (`--spec`), which overrides the defaults;
//! `--set section.field=value` reaches every field the dedicated flags do
//! not. Bad input is one line on stderr and exit 3, before anything starts.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cmd::OutputFormat;
use crate::nemesis::recorded::RecordedSchedule;
use crate::nemesis::TargetsBy;
use crate::report;
use crate::run::{self, RunFailure, RunOptions, RunOutcome};
use crate::plan::{fresh_seed, SpecFile, TestPlan};
use crate::{messages, EXIT_HARNESS_ERROR};

/// Every spec field with its default, for `--help` (the same file is
/// quoted in harness/docs/test.md; a test keeps the two equal).
pub const SPEC_FIELDS_HELP: &str = concat!(
    "Spec fields (YAML; each can be set with --set section.field=value), with their defaults:\n\n",
    include_str!("../../docs/spec-reference.yaml")
);

/// Run a faulted test against a cluster and check its history.
///
/// With no flags: 5 faultline-node nodes, 30 s of the kv workload with a
/// fifth of its operations list-append transactions (where the system runs
/// transactions) under kill, pause, partition and power-loss (with root and
/// /dev/fuse) faults, each family on its own schedule, half of them aimed
/// at the leader, none leaving fewer than a majority running unless it
/// takes a majority on purpose; every 3-6 s a killed node restarted on a
/// data file with one bit flipped; every 8-14 s fsync failing on a
/// majority (with /dev/fuse); alone, a membership race every 3-6 s (on
/// systems that change membership), the leader cut off with its clock set
/// back every 3-6 s (with libfaketime, on systems that report their clock)
/// and once or twice a run the scripted revote race with the voter's
/// power cut; then heal, recovery, final reads and the
/// convergence check.
/// Exit code: 0 valid, 1 invalid, 2 unknown, 3 harness error. See
/// harness/docs/test.md for every spec field.
#[derive(clap::Args, Debug, Default)]
#[command(after_long_help = SPEC_FIELDS_HELP)]
pub struct TestArgs {
    /// YAML spec file (fields: name, seed, store, cluster, client,
    /// workload, nemesis, schedule, checkers).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Test name: results go to STORE/NAME/TIMESTAMP/.
    #[arg(long)]
    pub name: Option<String>,
    /// register | cas-register | kv | set | append | list-append |
    /// rw-register | bank: the whole workload, without the no-flag test's
    /// list-append transactions (add some with --set
    /// workload.transactions=list-append).
    #[arg(long, value_name = "KIND")]
    pub workload: Option<String>,
    /// Comma-separated faults: kill, pause, partition, link, power-loss,
    /// membership, corrupt, disk, clock (families), single faults such as
    /// kill-leader, membership-race, partition-ring, corrupt-bitflip (a
    /// killed node's file damaged before it starts again), disk-fsync-eio
    /// or clock-isolate-leader (clock faults need libfaketime and a program
    /// that reads the clock through libc: not Go, not static; each node is
    /// checked), revote (a scenario: one voter restarted between two
    /// elections of one term), figure-8 (the Raft paper's figure-8 order),
    /// mix (all but power-loss, membership, corrupt, disk, clock and those
    /// two scenarios), or none.
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
    /// and printed when absent. The same seed draws the same operations
    /// and faults, not the same thread and network timing (which node
    /// leads when a fault is due); --schedule fixes the faults' times and
    /// targets.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Results root directory (default: store).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Path of the node binary (`cluster.node_binary`, for the systems
    /// that take one: faultline-node, etcd).
    #[arg(long, value_name = "PATH")]
    pub node_binary: Option<PathBuf>,
    /// Override any spec field: --set client.op_timeout=2s (repeatable).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
    /// Follow this schedule (a results folder's `schedule.jsonl`, or one
    /// written by hand) instead of drawing one: its faults at its times,
    /// at its targets. See harness/docs/schedule.md.
    #[arg(long, value_name = "FILE")]
    pub schedule: Option<PathBuf>,
    /// How --schedule aims a recorded fault: `role` (default: the leader
    /// now where the leader was hit, a follower where a follower was) or
    /// `node` (the same node numbers, whoever leads).
    #[arg(long, value_name = "role|node", requires = "schedule")]
    pub schedule_targets: Option<String>,
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
        let plan = TestPlan::from_spec(&spec, fresh_seed()).map_err(|e| e.to_string())?;
        let Some(path) = &self.schedule else { return Ok(plan) };
        let by: TargetsBy = self.schedule_targets.as_deref().unwrap_or("role").parse().map_err(|e| format!("--schedule-targets {e}"))?;
        let schedule =
            RecordedSchedule::read(path, plan.cluster.nodes, plan.schedule.time_limit_ms).map_err(|e| e.to_string())?;
        plan.follow_schedule(schedule, by).map_err(|e| e.to_string())
    }

    /// The dedicated flags, set on the spec's typed fields.
    fn apply_flags(&self, spec: &mut SpecFile) {
        if let Some(name) = &self.name {
            spec.name = name.clone();
        }
        // The whole workload, as the Rust API's `Test::workload`: a
        // `--workload register` test is a register test.
        if let Some(workload) = &self.workload {
            spec.workload.kind = workload.clone();
            (spec.workload.transactions, spec.workload.transactions_share) = (None, None);
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
            spec.set_node_binary(binary);
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
    let redirect = StdoutToStderr::new(json);
    let outcome = match runtime.block_on(run::run(&plan, RunOptions { quiet: args.quiet })) {
        Ok(outcome) => outcome,
        Err(failure) => {
            messages::error(&failure.error);
            messages::run_failed_seed(plan.seed);
            report_failure(&plan, &failure, args.junit.as_deref());
            return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
        }
    };
    let results = &outcome.results;
    let reported = write_report(&outcome, args.junit.as_deref(), json);
    drop(redirect);
    if json {
        println!("{}", serde_json::to_string_pretty(results)?);
    } else {
        print!("{}", results.summary());
        if let Some(verdict) = results.verdict {
            messages::run_verdict(verdict, results.seed);
        }
    }
    // A missing report or JUnit file fails a valid run (CI relies on
    // them) but never hides an invalid or unknown verdict.
    if !reported && results.exit_code == crate::EXIT_VALID {
        return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
    }
    Ok(ExitCode::from(results.exit_code))
}

/// A failed run still leaves its history when it got as far as a folder:
/// its report shows the history and the error in place of verdicts, and
/// JUnit (when asked) fails with a `harness` case either way, so CI never
/// reads the run as passed. Problems writing them are printed: the exit
/// code is already a harness error.
fn report_failure(plan: &TestPlan, failure: &RunFailure, junit: Option<&Path>) {
    let written = match (&failure.partial, junit) {
        (Some(partial), _) => {
            report::write_run(&partial.results, &partial.dir, &partial.timeline, None, junit).map(|stats| Some(stats.path))
        }
        (None, Some(junit)) => {
            let title = format!("faultline test {}", plan.name);
            report::write_junit_without_run(junit, title, plan.seed, &failure.error.to_string()).map(|()| None)
        }
        (None, None) => Ok(None),
    };
    match written {
        Ok(Some(page)) => messages::report_written(&page, true),
        Ok(None) => {}
        Err(error) => messages::error(error),
    }
}

/// `report.html` in the results folder (and JUnit when asked); says where,
/// on stderr when stdout is data. False when it could not be written.
fn write_report(outcome: &RunOutcome, junit: Option<&Path>, to_stderr: bool) -> bool {
    match report::write_run(&outcome.results, &outcome.dir, &outcome.timeline, None, junit) {
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
    use crate::run::RunError;

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

    #[test]
    fn the_workload_flag_names_the_whole_workload() {
        let default = TestArgs::default().plan().unwrap();
        assert!(default.workload.config.transactions.is_some(), "the no-flag test mixes in transactions");
        let register = TestArgs { workload: Some("register".into()), ..TestArgs::default() }.plan().unwrap();
        assert_eq!(register.workload.config.transactions, None, "--workload register is a register test");
        let set = vec!["workload.transactions=list-append".to_string()];
        let mixed = TestArgs { workload: Some("register".into()), set, ..TestArgs::default() }.plan().unwrap();
        assert!(mixed.workload.config.transactions.is_some(), "--set adds them back");
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("faultline-test-cmd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn plan_in(store: &Path, seed: u64) -> TestPlan {
        let spec = SpecFile { store: store.to_path_buf(), name: "t".into(), seed: Some(seed), ..SpecFile::default() };
        TestPlan::from_spec(&spec, 0).expect("the default spec validates")
    }

    #[test]
    fn a_failure_with_a_folder_reports_its_history_and_the_error() {
        let store = scratch("with-folder");
        let plan = plan_in(&store, 11);
        let dir = store.join("t/20250101T000000");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("seed"), "11\n").unwrap();
        std::fs::write(
            dir.join("history.jsonl"),
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"a\",\"value\":null,\"time_ns\":1}\n",
        )
        .unwrap();
        let partial = RunOutcome::load(&dir).expect("a folder with a history is a (partial) outcome");
        assert_eq!(partial.results.error.as_deref(), Some("the run did not finish (results.json is missing)"));
        let failure = RunFailure { error: RunError::PowerLoss("node 2 exited".into()), partial: Some(Box::new(partial)) };
        let junit = store.join("junit.xml");
        report_failure(&plan, &failure, Some(&junit));
        let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
        assert!(html.contains("class=\"verdict harness-error\">HARNESS ERROR<"), "badge");
        assert!(html.contains("all 1 operations"), "the history is drawn");
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(xml.contains("name=\"harness\"") && xml.contains("errors=\"1\""), "{xml}");
        let _ = std::fs::remove_dir_all(&store);
    }

    #[test]
    fn a_failure_without_a_folder_still_fails_junit() {
        let store = scratch("without-folder");
        let plan = plan_in(&store, 12);
        let failure = RunFailure { error: RunError::PowerLoss("power-loss needs root".into()), partial: None };
        let junit = store.join("junit.xml");
        report_failure(&plan, &failure, Some(&junit));
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(xml.contains("<testsuite name=\"faultline test t\"") && xml.contains("tests=\"1\""), "{xml}");
        assert!(xml.contains("<property name=\"seed\" value=\"12\"/>"), "{xml}");
        assert!(xml.contains("message=\"power-loss needs root\""), "{xml}");
        let _ = std::fs::remove_dir_all(&store);
    }
}
