//! The runner: executes one validated `TestPlan` against a real cluster.
//!
//! Phases, in order (each bounded):
//! 1. results folder with `spec.yaml` and `seed`; the cluster starts.
//! 2. main phase: client tasks run the workload (rate-limited, time-limited)
//!    while the nemesis follows its seeded schedule.
//! 3. final heal, then the liveness probe (a write must succeed within
//!    `liveness_timeout_ms`), then the recovery period.
//! 4. final reads by fresh clients; then, for a system that reports a
//!    digest of each node's state, the replicas are compared once settled.
//! 5. the cluster is shut down (no child left); the history is read back
//!    once and every check runs ([`decide`]).
//!
//! SIGINT/SIGTERM at any point: stop, shut the cluster down, keep what was
//! recorded, exit 3. A run that fails after its folder exists still writes
//! `results.json` (naming the error) and hands back what it has.
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use faultline_checkers::Verdict;

use crate::cluster::{ClockConfig, Cluster, ClusterConfig, ClusterError, Db, HostsConfig, VolumeConfig};
use crate::messages;
use crate::nemesis::{Fault, FaultFamily, NemesisError};
use crate::plan::TestPlan;
use crate::proxy::ProxyStats;
use crate::report::Timeline;
use crate::results::{Results, RunDir, StoreError};
use crate::verdict::{compose, Check, Checks};

pub mod clients;
pub mod decide;
pub mod nemesis_groups;
pub mod nemesis_task;
mod outcome;
pub mod phases;
pub mod progress;
pub mod recorder;
mod signals;

pub use outcome::{RunFailure, RunOutcome};
use signals::Signals;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Nemesis(#[from] NemesisError),
    #[error(transparent)]
    Schedule(#[from] crate::nemesis::recorded::ScheduleFileError),
    #[error("history {path}: {message}")]
    History { path: PathBuf, message: String },
    #[error("{0}")]
    PowerLoss(String),
    #[error("{0}")]
    Clock(String),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("interrupted by {signal}; the cluster is shut down; partial history in {dir}")]
    Interrupted { signal: &'static str, dir: PathBuf },
}

/// How the run talks to the user.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// No progress display (start and end lines are still printed).
    pub quiet: bool,
}

/// Unsynced bytes a node's lazyfs mount holds before writing back itself.
const LAZYFS_DIRTY_MAX_MIB: u64 = 64;
/// Pause between leader probes before the test starts.
const LEADER_POLL_MS: u64 = 50;
/// Pause between liveness probes that did not succeed.
const LIVENESS_RETRY_MS: u64 = 50;

/// Run the plan. `Ok` carries the results whatever the verdict; `Err` a
/// harness error, with what the run left when it had a folder.
pub async fn run(plan: &TestPlan, options: RunOptions) -> Result<RunOutcome, RunFailure> {
    let started = Instant::now();
    let fitted = fit_to_machine(plan, Machine::of(plan));
    let plan = fitted.as_ref().unwrap_or(plan);
    let run_dir = RunDir::create(&plan.store_dir, &plan.name, SystemTime::now())
        .map_err(|error| RunFailure { error: error.into(), partial: None })?;
    match run_in(plan, options, &run_dir, started).await {
        Ok(outcome) => Ok(outcome),
        Err((error, proxy)) => Err(failed(plan, &run_dir, started, error, proxy)),
    }
}

/// Everything after the folder exists. An error comes back with what the
/// proxy saw, for the results of the failed run.
async fn run_in(
    plan: &TestPlan,
    options: RunOptions,
    run_dir: &RunDir,
    started: Instant,
) -> Result<RunOutcome, (RunError, ProxyStats)> {
    let no_proxy = |error: RunError| (error, ProxyStats::default());
    run_dir.write("spec.yaml", &plan.resolved.to_yaml()).map_err(|e| no_proxy(e.into()))?;
    run_dir.write("seed", &format!("{}\n", plan.seed)).map_err(|e| no_proxy(e.into()))?;
    run_dir.update_latest().map_err(|e| no_proxy(e.into()))?;
    messages::run_started(&plan.name, plan.seed, &run_dir.path);
    let mut signals = Signals::install().map_err(no_proxy)?;
    let cluster = tokio::select! {
        cluster = start_cluster(plan, run_dir) => cluster.map_err(no_proxy)?,
        name = signals.next() => return Err(no_proxy(RunError::Interrupted { signal: name, dir: run_dir.path.clone() })),
    };
    let settled = phases::run_on_cluster(plan, options, &cluster, run_dir, &mut signals).await;
    let facts = decide::ClusterFacts {
        exits: cluster.unexpected_exits(),
        failed_restarts: cluster.failed_restarts(),
        log_paths: cluster.log_paths(),
        log_patterns: cluster.log_error_patterns().into_iter().chain(plan.checks.log_error_patterns.iter().cloned()).collect(),
    };
    let proxy = cluster.proxy().stats();
    cluster.shutdown().await;
    let with_proxy = |error: RunError| (error, proxy.clone());
    let settled = settled.map_err(with_proxy)?;
    let (checks, timeline) = decide::decide(plan, run_dir.history_path(), settled, facts).await.map_err(with_proxy)?;
    let results = conclude(plan, run_dir, compose(checks), &timeline, started, proxy.clone());
    results.save(run_dir).map_err(|error| with_proxy(error.into()))?;
    Ok(RunOutcome { dir: run_dir.path.clone(), results, timeline })
}

/// The results of a run a harness error ended, saved beside whatever
/// history it had, so the report and `faultline report` can show both.
fn failed(plan: &TestPlan, run_dir: &RunDir, started: Instant, error: RunError, proxy: ProxyStats) -> RunFailure {
    let timeline = Timeline::read(&run_dir.history_path()).unwrap_or_default();
    let mut results = conclude(plan, run_dir, Checks::default(), &timeline, started, proxy);
    results.error = Some(error.to_string());
    // The error is what the caller reports; a second one writing the
    // results would hide it.
    let _ = results.save(run_dir);
    RunFailure { error, partial: Some(Box::new(RunOutcome { dir: run_dir.path.clone(), results, timeline })) }
}

/// Why this machine cannot inject a kind of fault (`Ok` when it can).
struct Machine {
    lazyfs: Result<(), String>,
    clock: Result<(), String>,
    /// Whether the cluster can take a scripted scenario (odd, on the
    /// proxy, a system that names its leader).
    scripted: Result<(), String>,
    /// Whether the system declares a membership procedure.
    membership: Result<(), String>,
    /// Whether the nodes' files and processes are on this machine (no
    /// `cluster.hosts`), which corrupt, disk and clock faults act on.
    local: Result<(), String>,
}

impl Machine {
    /// Asks only what the plan's optional faults need: a plan without
    /// `clock-...?` never builds its system's `Db` here.
    fn of(plan: &TestPlan) -> Machine {
        let listed = matches!(plan.cluster.hosts, Some(HostsConfig::Listed(_)));
        // Listed hosts are asked only when the spec names a fault without
        // `?`: the default test must not fail on hosts that cannot.
        let lazyfs = match listed {
            true => Err("optional power-loss is left out on listed hosts".to_string()),
            false => faultline_lazyfs::available(),
        };
        let optional_clock = plan.nemesis.optional.iter().any(|fault| fault.family() == FaultFamily::Clock);
        let clock = match (listed, optional_clock) {
            (_, false) => Ok(()),
            (true, true) => Err("optional clock faults are left out on listed hosts".to_string()),
            (false, true) => clock_available(plan),
        };
        let scripted = crate::plan::scripted_fits(&plan.cluster);
        let system = &plan.cluster.system;
        let membership = match system.capabilities().membership {
            true => Ok(()),
            false => Err(format!("system {} declares no procedure to add and remove nodes", system.name())),
        };
        let local = match plan.cluster.hosts {
            Some(_) => Err("they act on nodes' files and processes on this machine, and cluster.hosts runs nodes elsewhere".to_string()),
            None => Ok(()),
        };
        Machine { lazyfs, clock, scripted, membership, local }
    }
}

/// Whether optional clock faults can run (`clock_library`, asked before
/// the run's folder exists).
fn clock_available(plan: &TestPlan) -> Result<(), String> {
    let db = plan.cluster.system.db().map_err(|error| error.to_string())?;
    clock_library(plan, db.as_ref()).map(|_| ())
}

/// libfaketime's path, when clock faults can run: the system reports its
/// nodes' clocks, so the harness can tell whether libfaketime reaches
/// them, and the library is installed.
fn clock_library(plan: &TestPlan, db: &dyn Db) -> Result<PathBuf, String> {
    if !db.has_clock_probe() {
        return Err(format!(
            "system {} cannot report its nodes' clocks (Db::clock_ms), so faultline cannot tell whether libfaketime reaches them",
            plan.cluster.system.name()
        ));
    }
    crate::cluster::find_libfaketime()
}

/// The plan without the optional faults (`power-loss?`, `clock-...?`,
/// `revote-power-loss?`, `membership?`, `corrupt?`, `disk?`) this machine
/// or cluster cannot take, said on stderr and in the resolved spec; `None`
/// when nothing is left out. A required fault it cannot inject fails the
/// run later, in `start_cluster`, with the reason.
fn fit_to_machine(plan: &TestPlan, machine: Machine) -> Option<TestPlan> {
    let local = (|fault: &Fault| matches!(fault.family(), FaultFamily::Corrupt | FaultFamily::Disk | FaultFamily::Clock))
        as fn(&Fault) -> bool;
    let membership = (|fault: &Fault| fault.family() == FaultFamily::Membership) as fn(&Fault) -> bool;
    let power = (|fault: &Fault| fault.needs_volumes()) as fn(&Fault) -> bool;
    let clock = (|fault: &Fault| fault.family() == FaultFamily::Clock) as fn(&Fault) -> bool;
    let scripted = (|fault: &Fault| fault.is_scripted()) as fn(&Fault) -> bool;
    let kinds = [
        (local, machine.local, "corrupt, disk and clock faults"),
        (membership, machine.membership, "membership changes"),
        (power, machine.lazyfs, "power-loss and disk faults"),
        (clock, machine.clock, "clock faults"),
        (scripted, machine.scripted, "scripted scenarios (revote, figure-8)"),
    ];
    let mut fitted: Option<TestPlan> = None;
    for (kind, can, what) in kinds {
        let current = fitted.as_ref().unwrap_or(plan);
        if let Some(next) = leave_out(current, kind, can, what) {
            fitted = Some(next);
        }
    }
    leave_out_transactions(fitted.as_ref().unwrap_or(plan)).or(fitted)
}

/// `plan` without its optional transaction share (`list-append?`), when
/// its system has no transactional client.
fn leave_out_transactions(plan: &TestPlan) -> Option<TestPlan> {
    let share = plan.workload.config.transactions?;
    let system = &plan.cluster.system;
    if !plan.workload.transactions_optional || system.capabilities().transactions {
        return None;
    }
    messages::warning(format_args!(
        "{} transactions left out of this run: system {} has no transactional client",
        share.kind,
        system.name()
    ));
    let mut fitted = plan.clone();
    fitted.workload.config.transactions = None;
    fitted.resolved.workload.transactions = None;
    Some(fitted)
}

/// `plan` without the faults of one kind, when all of them are optional
/// and the machine cannot inject them.
fn leave_out(plan: &TestPlan, kind: fn(&Fault) -> bool, can: Result<(), String>, what: &str) -> Option<TestPlan> {
    let all_optional = plan.nemesis.faults.iter().filter(|f| kind(f)).all(|f| plan.nemesis.optional.contains(f));
    if !plan.nemesis.faults.iter().any(kind) || !all_optional {
        return None;
    }
    let reason = can.err()?;
    messages::warning(format_args!("{what} left out of this run: {reason}"));
    let mut fitted = plan.clone();
    fitted.nemesis.faults.retain(|fault| !kind(fault));
    fitted.resolved.nemesis.faults.retain(|name| {
        let name = name.trim().strip_suffix('?').unwrap_or(name);
        Fault::parse_name(name).map_or(true, |faults| !faults.iter().any(kind))
    });
    Some(fitted)
}

fn has_clock_faults(plan: &TestPlan) -> bool {
    plan.nemesis.faults.iter().any(|fault| fault.family() == FaultFamily::Clock)
}

async fn start_cluster(plan: &TestPlan, run_dir: &RunDir) -> Result<Cluster, RunError> {
    let db = plan.cluster.system.db()?;
    let mut config = ClusterConfig::new(plan.cluster.nodes, run_dir.nodes_dir(), plan.seed);
    config.ready_timeout_ms = plan.cluster.ready_timeout_ms;
    config.hosts = plan.cluster.hosts.clone();
    if plan.nemesis.changes_membership() {
        config.spares = crate::nemesis::membership::SPARES;
    }
    if plan.nemesis.faults.iter().any(|fault| fault.needs_volumes()) {
        // On listed hosts, the hosts' own daemons say whether they can.
        if !matches!(plan.cluster.hosts, Some(HostsConfig::Listed(_))) {
            faultline_lazyfs::available().map_err(RunError::PowerLoss)?;
        }
        let program = crate::cluster::faultline_binary()
            .map_err(|error| RunError::PowerLoss(format!("power-loss needs the faultline binary to serve lazyfs: {error}")))?;
        config.volumes = Some(VolumeConfig { program, dirty_max_mib: LAZYFS_DIRTY_MAX_MIB });
    }
    if has_clock_faults(plan) {
        let library = clock_library(plan, db.as_ref()).map_err(|reason| RunError::Clock(format!("{reason}; clock faults refused")))?;
        messages::warning(format_args!(
            "clock faults reach only programs that read the clock through libc (not Go programs such as etcd, not static binaries); each node is checked once"
        ));
        config.clock = Some(ClockConfig { library, fake_monotonic: plan.nemesis.settings.clock.fake_monotonic });
    }
    let cluster = Cluster::start(db, config).await?;
    if has_clock_faults(plan) {
        if let Err(error) = cluster.verify_clocks().await {
            cluster.shutdown().await;
            return Err(RunError::Clock(error.to_string()));
        }
    }
    if plan.nemesis.faults.contains(&Fault::Link(crate::nemesis::LinkMode::Delay)) {
        if let Err(error) = cluster.check_link_delay().await {
            cluster.shutdown().await;
            return Err(error.into());
        }
    }
    // A system without a leader query cannot be waited for.
    if plan.cluster.system.capabilities().leader {
        wait_for_leader(&cluster, plan.cluster.ready_timeout_ms).await;
    }
    Ok(cluster)
}

/// Time zero is when the cluster has a leader, so the first operations do
/// not all fail with `not_leader`. A cluster that never elects one is not
/// a harness error: the test goes on and its history shows it.
async fn wait_for_leader(cluster: &Cluster, timeout_ms: u64) {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    while Instant::now() < deadline {
        if cluster.leader().await.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(LEADER_POLL_MS)).await;
    }
    messages::no_leader(timeout_ms);
}

/// The results of the run: checks composed, counts from the history as read
/// back (what the checks judged).
fn conclude(plan: &TestPlan, run_dir: &RunDir, checks: Checks, timeline: &Timeline, started: Instant, proxy: ProxyStats) -> Results {
    let reasons = checks.checkers.iter().filter_map(Check::reason_text).collect();
    let verdict: Option<Verdict> = checks.verdict;
    Results {
        name: plan.name.clone(),
        seed: plan.seed,
        system: plan.cluster.system.name().to_string(),
        verdict,
        exit_code: Results::exit_code_of(verdict),
        error: None,
        reasons,
        counts: timeline.counts,
        workload: plan.workload_summary(),
        nemesis: plan.resolved.nemesis.faults.clone(),
        nodes: plan.cluster.nodes,
        time_limit_ms: plan.schedule.time_limit_ms,
        elapsed_ms: started.elapsed().as_millis() as u64,
        start_unix_ns: timeline.start_unix_ns,
        hosts: timeline.hosts.clone(),
        run_dir: run_dir.path.clone(),
        checks,
        proxy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::SpecFile;

    fn plan(faults: &[&str]) -> TestPlan {
        let mut spec = SpecFile::default();
        spec.nemesis.faults = faults.iter().map(|name| name.to_string()).collect();
        TestPlan::from_spec(&spec, 1).unwrap()
    }

    #[test]
    fn optional_power_loss_is_left_out_only_where_lazyfs_cannot_run() {
        let optional = plan(&["kill", "power-loss?"]);
        assert!(fit_to_machine(&optional, can(Ok(()), Ok(()))).is_none(), "a machine that can keeps it");
        let fitted = fit_to_machine(&optional, can(Err("power-loss needs root".into()), Ok(()))).expect("left out");
        assert!(fitted.nemesis.faults.iter().all(|fault| fault.family() == FaultFamily::Kill), "{:?}", fitted.nemesis.faults);
        assert_eq!(fitted.resolved.nemesis.faults, ["kill"], "the saved spec says what ran");
        let required = plan(&["kill", "power-loss"]);
        assert!(fit_to_machine(&required, can(Err("no".into()), Ok(()))).is_none(), "a required fault is start_cluster's error");
    }

    fn can(lazyfs: Result<(), String>, clock: Result<(), String>) -> Machine {
        Machine { lazyfs, clock, scripted: Ok(()), membership: Ok(()), local: Ok(()) }
    }

    #[test]
    fn optional_membership_and_file_faults_are_left_out_where_the_system_or_hosts_cannot_take_them() {
        let all = plan(&["kill", "membership?", "corrupt?", "disk?"]);
        assert!(fit_to_machine(&all, can(Ok(()), Ok(()))).is_none(), "faultline-node on this machine keeps them");
        let no_procedure = Machine { membership: Err("system x declares no procedure".into()), ..can(Ok(()), Ok(())) };
        let fitted = fit_to_machine(&all, no_procedure).expect("membership left out");
        assert_eq!(fitted.resolved.nemesis.faults, ["kill", "corrupt?", "disk?"]);
        assert!(fitted.nemesis.faults.iter().all(|fault| fault.family() != FaultFamily::Membership), "{:?}", fitted.nemesis.faults);
        let hosts = Machine { local: Err("cluster.hosts".into()), ..can(Ok(()), Ok(())) };
        let fitted = fit_to_machine(&all, hosts).expect("file faults left out");
        assert_eq!(fitted.resolved.nemesis.faults, ["kill", "membership?"]);
        let required = plan(&["kill", "corrupt"]);
        let hosts = Machine { local: Err("cluster.hosts".into()), ..can(Ok(()), Ok(())) };
        assert!(fit_to_machine(&required, hosts).is_none(), "a required fault is the plan's error");
        let generic = "cluster:\n  system: generic\n  nodes: 3\n  generic:\n    start: exec x\n    client: external\n    client_command: exec y\nnemesis:\n  faults: [kill, membership?]\n";
        let generic = TestPlan::from_spec(&SpecFile::from_yaml(generic, "t").unwrap(), 1).expect("optional membership plans");
        let reason = Machine::of(&generic).membership.expect_err("generic declares no membership procedure");
        assert!(reason.contains("generic"), "{reason}");
        assert_eq!(fit_to_machine(&generic, Machine::of(&generic)).expect("left out").resolved.nemesis.faults, ["kill"]);
    }

    #[test]
    fn an_optional_transaction_share_is_left_out_where_the_system_has_no_transactions() {
        let generic = "cluster:\n  system: generic\n  nodes: 3\n  generic:\n    start: exec x\n    client: external\n    client_command: exec y\nworkload:\n  kind: kv\n  transactions: list-append?\n";
        let optional = TestPlan::from_spec(&SpecFile::from_yaml(generic, "t").unwrap(), 1).expect("an optional share plans");
        assert!(optional.workload.config.transactions.is_some());
        let fitted = fit_to_machine(&optional, Machine::of(&optional)).expect("left out");
        assert_eq!((fitted.workload.config.transactions, fitted.resolved.workload.transactions), (None, None));
        let required = generic.replace("list-append?", "list-append");
        let error = TestPlan::from_spec(&SpecFile::from_yaml(&required, "t").unwrap(), 1).expect_err("a required share is refused");
        assert!(error.to_string().contains("has no transactional client"), "{error}");
        let transactional = generic.replace("    client_command: exec y\n", "    client_command: exec y\n    transactions: true\n");
        let kept = TestPlan::from_spec(&SpecFile::from_yaml(&transactional, "t").unwrap(), 1).unwrap();
        assert!(leave_out_transactions(&kept).is_none(), "a system with transactions keeps them");
    }

    #[test]
    fn optional_scenarios_are_left_out_only_where_the_cluster_cannot_take_them() {
        let both = plan(&["kill", "power-loss?", "revote-power-loss?", "figure-8?"]);
        assert!(fit_to_machine(&both, can(Ok(()), Ok(()))).is_none(), "an odd cluster whose system names its leader keeps them");
        let even = Machine { scripted: Err("needs an odd cluster size".into()), ..can(Ok(()), Ok(())) };
        let fitted = fit_to_machine(&both, even).expect("scenarios left out");
        assert_eq!(fitted.resolved.nemesis.faults, ["kill", "power-loss?"]);
        assert!(!fitted.nemesis.faults.iter().any(|fault| fault.is_scripted()), "{:?}", fitted.nemesis.faults);
        let no_root = fit_to_machine(&both, can(Err("no root".into()), Ok(()))).expect("power left out");
        assert_eq!(no_root.resolved.nemesis.faults, ["kill", "figure-8?"], "revote-power-loss needs the volumes too");
        assert_eq!(Machine::of(&both).scripted, Ok(()), "the default cluster: 5 faultline-node nodes");
    }

    #[test]
    fn optional_clock_faults_are_left_out_only_where_they_cannot_run() {
        let both = plan(&["kill", "power-loss?", "clock-bump-leader?"]);
        assert!(fit_to_machine(&both, can(Ok(()), Ok(()))).is_none(), "a machine that can keeps them");
        let fitted = fit_to_machine(&both, can(Ok(()), Err("no libfaketime".into()))).expect("clock left out");
        assert!(fitted.nemesis.faults.iter().all(|fault| fault.family() != FaultFamily::Clock), "{:?}", fitted.nemesis.faults);
        assert!(fitted.nemesis.faults.iter().any(|fault| fault.needs_volumes()), "power loss stays");
        assert_eq!(fitted.resolved.nemesis.faults, ["kill", "power-loss?"]);
        let neither = fit_to_machine(&both, can(Err("no root".into()), Err("no libfaketime".into()))).expect("both left out");
        assert_eq!(neither.resolved.nemesis.faults, ["kill"]);
        let required = plan(&["kill", "clock-bump-leader"]);
        assert!(fit_to_machine(&required, can(Ok(()), Err("no".into()))).is_none(), "a required fault is start_cluster's error");
    }

    #[test]
    fn a_system_without_a_clock_probe_cannot_take_clock_faults() {
        let mut spec = SpecFile::default();
        spec.cluster.system = "etcd".to_string();
        spec.nemesis.faults = vec!["kill".to_string(), "clock-bump-leader?".to_string()];
        let etcd = TestPlan::from_spec(&spec, 1).unwrap();
        let reason = Machine::of(&etcd).clock.expect_err("etcd has no clock probe");
        assert!(reason.contains("etcd"), "{reason}");
    }
}
