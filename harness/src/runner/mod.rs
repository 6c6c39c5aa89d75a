//! The runner: executes one validated `TestPlan` against a real cluster.
//!
//! Phases, in order (each bounded):
//! 1. results folder with `spec.yaml` and `seed`; the cluster starts.
//! 2. main phase: client tasks run the workload (rate-limited, time-limited)
//!    while the nemesis follows its seeded schedule.
//! 3. final heal, then the liveness probe (a write must succeed within
//!    `liveness_timeout_ms`), then the recovery period.
//! 4. final reads by fresh clients.
//! 5. the cluster is shut down (no child left) and the history, read back
//!    from `history.jsonl`, is checked with the checks beyond it.
//!
//! SIGINT/SIGTERM at any point: stop, shut the cluster down, keep what was
//! recorded, exit 3.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use faultline_checkers::{compose, Event, Named};
use faultline_workloads::{stagger, time_limit, FinalReads, Generator};
use tokio::signal::unix::{signal, SignalKind};

use crate::checks::{self, Liveness};
use crate::client::{ClientConfig, Outcome};
use crate::cluster::{Cluster, ClusterConfig, ClusterError, VolumeConfig};
use crate::proxy::ProxyStats;
use crate::nemesis::{FaultFamily, Mix, NemesisError, Schedule};
use crate::messages;
use crate::plan::TestPlan;
use crate::store::{RunDir, StoreError};

pub mod clients;
pub mod history;
pub mod nemesis_task;
pub mod progress;
pub mod results;

use clients::ClientPool;
use history::Recorder;
use nemesis_task::{set_state, NemesisGroup, NemesisRun, NemesisState};
use progress::{Feed, Progress};
pub use results::Results;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Nemesis(#[from] NemesisError),
    #[error("history {path}: {message}")]
    History { path: PathBuf, message: String },
    #[error("{0}")]
    PowerLoss(String),
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

/// Run the plan; `Ok` carries the results (whatever the verdict).
pub async fn run(plan: &TestPlan, options: RunOptions) -> Result<Results, RunError> {
    let started = Instant::now();
    let run_dir = RunDir::create(&plan.store_dir, &plan.name, SystemTime::now())?;
    run_dir.write("spec.yaml", &plan.resolved.to_yaml())?;
    run_dir.write("seed", &format!("{}\n", plan.seed))?;
    run_dir.update_latest()?;
    messages::run_started(&plan.name, plan.seed, &run_dir.path);
    let mut signals = Signals::install()?;
    let cluster = tokio::select! {
        cluster = start_cluster(plan, &run_dir) => cluster?,
        name = signals.next() => return Err(RunError::Interrupted { signal: name, dir: run_dir.path.clone() }),
    };
    let outcome = run_on_cluster(plan, options, &cluster, &run_dir, &mut signals).await;
    let exits = cluster.unexpected_exits();
    let failed_restarts = cluster.failed_restarts();
    let proxy_stats = cluster.proxy().stats();
    let log_paths = cluster.log_paths();
    let mut log_patterns = cluster.log_error_patterns();
    cluster.shutdown().await;
    if let Err(error) = &outcome {
        // Keep a note beside the partial history; the run itself failed.
        let _ = run_dir.write("summary.txt", &format!("faultline test {}: ERROR\nseed        {}\nerror       {error}\n", plan.name, plan.seed));
    }
    let liveness = outcome?;
    log_patterns.extend(plan.checks.log_error_patterns.iter().cloned());
    let checks = decide(plan, &run_dir, liveness, (&exits, &failed_restarts), &log_paths, &log_patterns).await?;
    let results = conclude(plan, &run_dir, checks, started, proxy_stats);
    run_dir.write("results.json", &serde_json::to_string_pretty(&results).unwrap_or_default())?;
    run_dir.write("summary.txt", &results.summary())?;
    Ok(results)
}

async fn start_cluster(plan: &TestPlan, run_dir: &RunDir) -> Result<Cluster, RunError> {
    let db = plan.cluster.system.db()?;
    let mut config = ClusterConfig::new(plan.cluster.nodes, run_dir.nodes_dir(), plan.seed);
    config.ready_timeout_ms = plan.cluster.ready_timeout_ms;
    if plan.nemesis.faults.iter().any(|fault| fault.family() == FaultFamily::Power) {
        faultline_lazyfs::available().map_err(RunError::PowerLoss)?;
        let program = crate::cluster::faultline_binary()
            .map_err(|error| RunError::PowerLoss(format!("power-loss needs the faultline binary to serve lazyfs: {error}")))?;
        config.volumes = Some(VolumeConfig { program, dirty_max_mib: LAZYFS_DIRTY_MAX_MIB });
    }
    let cluster = Cluster::start(db, config).await?;
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
        if crate::nemesis::leader::find_leader(cluster).await.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(LEADER_POLL_MS)).await;
    }
    messages::no_leader(timeout_ms);
}

/// SIGINT and SIGTERM as one stream.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, RunError> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).map_err(RunError::Signals)?,
            terminate: signal(SignalKind::terminate()).map_err(RunError::Signals)?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// Phases 2-4 with the history open; returns the liveness probe's result.
async fn run_on_cluster(
    plan: &TestPlan,
    options: RunOptions,
    cluster: &Cluster,
    run_dir: &RunDir,
    signals: &mut Signals,
) -> Result<Liveness, RunError> {
    let start = Instant::now();
    let history_error = |e: std::io::Error| RunError::History { path: run_dir.history_path(), message: e.to_string() };
    let (recorder, writer) = Recorder::open(&run_dir.history_path(), start).map_err(history_error)?;
    let stop = Arc::new(AtomicBool::new(false));
    let nemesis_state: NemesisState = Arc::new(std::sync::Mutex::new("healthy".to_string()));
    let phase = Arc::new(std::sync::Mutex::new("running"));
    let feed = Feed {
        counts: recorder.counts.clone(),
        nemesis: nemesis_state.clone(),
        start,
        time_limit_ms: plan.schedule.time_limit_ms,
        phase: phase.clone(),
    };
    let progress = Progress::start(feed, options.quiet);
    let groups = nemesis_groups(plan)?;
    let phases = Phases { plan, cluster, recorder: &recorder, stop: &stop, nemesis_state, phase, start };
    let outcome = tokio::select! {
        liveness = phases.run(groups) => Ok(liveness),
        name = signals.next() => {
            stop.store(true, Ordering::Relaxed);
            Err(RunError::Interrupted { signal: name, dir: run_dir.path.clone() })
        }
    };
    progress.finish().await;
    recorder.close().await;
    drop(recorder);
    let written = tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|e| RunError::History { path: run_dir.history_path(), message: e.to_string() })?
        .map_err(|_| RunError::History { path: run_dir.history_path(), message: "writer panicked".to_string() })?;
    if let Some(message) = written.error {
        return Err(RunError::History { path: run_dir.history_path(), message });
    }
    outcome
}

/// The nemesis schedules of a plan: one for all its faults, or with
/// `nemesis.concurrent` one per fault family (each with its own seeded
/// schedule), so a partition can be in force while a node is down.
fn nemesis_groups(plan: &TestPlan) -> Result<Vec<NemesisGroup>, NemesisError> {
    let schedule = |faults: Vec<crate::nemesis::Fault>, seed: u64| {
        Schedule::new(
            faults,
            (plan.nemesis.fault_duration_ms_min, plan.nemesis.fault_duration_ms_max),
            (plan.nemesis.heal_duration_ms_min, plan.nemesis.heal_duration_ms_max),
            seed,
        )
    };
    let faults = &plan.nemesis.faults;
    if !plan.nemesis.concurrent {
        let mix = Mix::standard(faults, plan.seed, plan.nemesis.link)?;
        return Ok(vec![NemesisGroup { mix, schedule: schedule(faults.clone(), plan.seed), heal_name: "heal".into() }]);
    }
    let mut families: Vec<FaultFamily> = faults.iter().map(|fault| fault.family()).collect();
    families.sort_unstable();
    families.dedup();
    families
        .into_iter()
        .map(|family| {
            let faults: Vec<_> = faults.iter().copied().filter(|fault| fault.family() == family).collect();
            let mix = Mix::standard(&faults, plan.seed, plan.nemesis.link)?;
            // Each family's schedule gets a stream of its own.
            let seed = plan.seed ^ (0x6661_6d69_6c79_0000 + family as u64);
            Ok(NemesisGroup { mix, schedule: schedule(faults, seed), heal_name: format!("heal-{}", family.name()) })
        })
        .collect()
}

struct Phases<'a> {
    plan: &'a TestPlan,
    cluster: &'a Cluster,
    recorder: &'a Recorder,
    stop: &'a Arc<AtomicBool>,
    nemesis_state: NemesisState,
    phase: Arc<std::sync::Mutex<&'static str>>,
    start: Instant,
}

impl Phases<'_> {
    fn set_phase(&self, name: &'static str) {
        if let Ok(mut phase) = self.phase.lock() {
            *phase = name;
        }
    }

    fn pool(&self, process_next: &Arc<AtomicU64>) -> ClientPool {
        let config = ClientConfig {
            addrs: (0..self.cluster.nodes()).map(|node| self.cluster.client_addr(node)).collect(),
            kind: self.plan.workload.config.kind,
            op_timeout_ms: self.plan.client.op_timeout_ms,
            connect_timeout_ms: self.plan.client.connect_timeout_ms,
            redirects_max: self.plan.client.redirects_max,
        };
        ClientPool {
            recorder: self.recorder.clone(),
            config: Arc::new(config),
            clients: self.plan.cluster.system.clients(),
            process_next: process_next.clone(),
            stop: self.stop.clone(),
        }
    }

    async fn run(&self, groups: Vec<NemesisGroup>) -> Liveness {
        let plan = self.plan;
        let process_next = Arc::new(AtomicU64::new(0));
        let pool = self.pool(&process_next);
        let time_limit = Duration::from_millis(plan.schedule.time_limit_ms);
        let workload: Box<dyn Generator> = match &plan.workload.generator {
            Some(generator) => generator(plan.seed),
            None => Box::new(plan.workload.config.generator(plan.seed)),
        };
        let main: Box<dyn Generator> = Box::new(time_limit_ns(
            plan.schedule.time_limit_ms,
            stagger(plan.seed ^ 0x5354_4147, plan.gap_mean_ns(), workload),
        ));
        let clients_deadline = self.start + time_limit + Duration::from_millis(2 * plan.client.op_timeout_ms + 1_000);
        let mut nemesis = NemesisRun {
            groups,
            cluster: self.cluster,
            recorder: self.recorder,
            state: self.nemesis_state.clone(),
            stop: self.stop,
        };
        tokio::join!(
            pool.run(main, plan.schedule.concurrency, self.start, clients_deadline),
            nemesis.run(self.start + time_limit),
        );
        self.set_phase("healing");
        nemesis.heal_all().await;
        self.set_phase("liveness");
        let liveness = self.probe_liveness(&pool).await;
        self.set_phase("recovery");
        tokio::time::sleep(Duration::from_millis(plan.schedule.recovery_ms)).await;
        self.set_phase("final reads");
        self.final_reads(&pool).await;
        liveness
    }

    /// Writes to a key of its own until one succeeds or the bound passes.
    async fn probe_liveness(&self, pool: &ClientPool) -> Liveness {
        let healed = Instant::now();
        let deadline = healed + Duration::from_millis(self.plan.checks.liveness_timeout_ms);
        let process = pool.process_next.fetch_add(1, Ordering::Relaxed);
        let mut client = (pool.clients)(pool.config.clone(), process);
        let mut liveness =
            Liveness { timeout_ms: self.plan.checks.liveness_timeout_ms, recovered_after_ms: None, attempts: 0, last_error: None };
        while Instant::now() < deadline && !self.stop.load(Ordering::Relaxed) {
            liveness.attempts += 1;
            let probe = faultline_workloads::Invocation {
                f: "put".to_string(),
                key: Some("faultline-liveness".to_string()),
                value: serde_json::json!(format!("probe-{}", liveness.attempts)),
            };
            let remaining_ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
            let attempt = tokio::time::timeout(Duration::from_millis(remaining_ms.max(1)), client.invoke(&probe)).await;
            match attempt.map(|completion| completion.outcome) {
                Ok(Outcome::Ok(_)) => {
                    liveness.recovered_after_ms = Some(healed.elapsed().as_millis() as u64);
                    return liveness;
                }
                Ok(Outcome::Fail(error) | Outcome::Info(error)) => liveness.last_error = Some(error),
                Err(_) => liveness.last_error = Some("timeout".to_string()),
            }
            client.become_process(pool.process_next.fetch_add(1, Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(LIVENESS_RETRY_MS)).await;
        }
        liveness
    }

    async fn final_reads(&self, pool: &ClientPool) {
        let plan = self.plan;
        let keys = self.recorder.keys().await;
        if keys.is_empty() {
            return;
        }
        let attempts_max = plan.checks.final_read_attempts_max;
        let workers = plan.schedule.concurrency.min(keys.len());
        let rounds = keys.len().div_ceil(workers) as u64 * u64::from(attempts_max);
        let deadline = Instant::now() + Duration::from_millis(rounds * (plan.client.op_timeout_ms + 50) + 1_000);
        let reads = FinalReads::new(plan.workload.config.kind, &keys, attempts_max);
        pool.run(Box::new(reads), workers, Instant::now(), deadline).await;
        set_state(&self.nemesis_state, "healthy");
    }
}

fn time_limit_ns<G: Generator>(time_limit_ms: u64, inner: G) -> impl Generator {
    time_limit(time_limit_ms.saturating_mul(1_000_000), inner)
}

/// Phase 5: read the history back and run every check.
async fn decide(
    plan: &TestPlan,
    run_dir: &RunDir,
    liveness: Liveness,
    exits: (&[crate::cluster::UnexpectedExit], &[crate::cluster::FailedRestart]),
    log_paths: &[PathBuf],
    log_patterns: &[String],
) -> Result<Vec<Named>, RunError> {
    let events = read_history(&run_dir.history_path())?;
    let need = plan.workload.config.kind.checker();
    let budget_ms = plan.checks.check_timeout_ms;
    let mut named = tokio::task::spawn_blocking(move || {
        let mut named = vec![checks::check_history(&events, need, budget_ms)];
        if need.durability {
            named.push(checks::check_durability(&events));
        }
        named
    })
    .await
    .map_err(|e| RunError::History { path: run_dir.history_path(), message: format!("checker task: {e}") })?;
    let (hits, count) = checks::scan_logs(log_paths, log_patterns);
    named.extend([liveness.named(), checks::logs::named(&hits, count, log_patterns), checks::unexpected_exits(exits.0, exits.1)]);
    Ok(named)
}

fn read_history(path: &std::path::Path) -> Result<Vec<Event>, RunError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RunError::History { path: path.to_path_buf(), message: e.to_string() })?;
    text.lines()
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|e| RunError::History {
                path: path.to_path_buf(),
                message: format!("line {}: {e}", index + 1),
            })
        })
        .collect()
}

fn conclude(plan: &TestPlan, run_dir: &RunDir, checks: Vec<Named>, started: Instant, proxy: ProxyStats) -> Results {
    let reasons = checks.iter().filter_map(checks::reason).collect();
    let composed = compose(checks);
    let counts = count_events(&run_dir.history_path());
    Results {
        name: plan.name.clone(),
        seed: plan.seed,
        verdict: composed.verdict,
        exit_code: results::exit_code(composed.verdict),
        reasons,
        counts,
        workload: plan.workload_name().to_string(),
        nemesis: plan.resolved.nemesis.faults.clone(),
        nodes: plan.cluster.nodes,
        time_limit_ms: plan.schedule.time_limit_ms,
        elapsed_ms: started.elapsed().as_millis() as u64,
        run_dir: run_dir.path.clone(),
        checks: composed,
        proxy,
    }
}

/// Counts from the recorded history (what the checkers saw).
fn count_events(path: &std::path::Path) -> history::CountsSnapshot {
    let counts = history::Counts::default();
    if let Ok(events) = read_history(path) {
        for event in &events {
            counts.count(event);
        }
    }
    counts.snapshot()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::SpecFile;

    fn plan(concurrent: bool) -> TestPlan {
        let mut spec = SpecFile::default();
        spec.nemesis.faults = vec!["partition-halves".into(), "kill-leader".into(), "kill-random".into()];
        spec.nemesis.concurrent = concurrent;
        TestPlan::from_spec(&spec, 1).unwrap()
    }

    #[test]
    fn a_concurrent_nemesis_gets_one_schedule_per_family() {
        let groups = nemesis_groups(&plan(true)).unwrap();
        let names: Vec<&str> = groups.iter().map(|g| g.heal_name.as_str()).collect();
        assert_eq!(names, ["heal-kill", "heal-partition"]);
        let one = nemesis_groups(&plan(false)).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].heal_name, "heal");
    }
}
