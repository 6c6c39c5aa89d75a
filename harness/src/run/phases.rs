//! Phases 2-4 of a run, with the history open: the main phase (clients
//! and nemesis together), the final heal, the liveness probe, the recovery
//! period and the final reads.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_workloads::{stagger, time_limit, FinalReads, Generator};

use crate::client::{ClientConfig, Outcome};
use crate::cluster::Cluster;
use crate::nemesis::recorded::{self, SCHEDULE_FILE};
use crate::nemesis::node_name;
use crate::plan::TestPlan;
use crate::results::RunDir;
use crate::verdict::liveness::{Liveness, Miss};
use crate::verdict::Convergence;

use super::clients::ClientPool;
use super::nemesis_task::{set_state, Injected, NemesisGroup, NemesisRun, NemesisState};
use super::progress::{Feed, Progress};
use super::recorder::Recorder;
use super::signals::Signals;
use super::{RunError, RunOptions, LIVENESS_RETRY_MS};

/// What the phases after the faults saw: the liveness probe, and the
/// replicas' digests once settled (for a system that reports them).
pub struct Settled {
    pub liveness: Liveness,
    pub convergence: Option<Convergence>,
}

/// Phases 2-4 with the history open.
pub(super) async fn run_on_cluster(
    plan: &TestPlan,
    options: RunOptions,
    cluster: &Cluster,
    run_dir: &RunDir,
    signals: &mut Signals,
) -> Result<Settled, RunError> {
    let start = Instant::now();
    let history_error = |e: std::io::Error| RunError::History { path: run_dir.history_path(), message: e.to_string() };
    let hosts = cluster
        .host_addresses()
        .iter()
        .enumerate()
        .map(|(node, address)| (crate::nemesis::node_name(node), address.to_string()))
        .collect();
    let (recorder, writer) = Recorder::open(&run_dir.history_path(), start, hosts).map_err(history_error)?;
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
    let groups = NemesisGroup::for_plan(plan)?;
    let injected = Injected::default();
    let phases = Phases { plan, cluster, recorder: &recorder, stop: &stop, nemesis_state, phase, start, injected: injected.clone() };
    let outcome = tokio::select! {
        settled = phases.run(groups) => Ok(settled),
        name = signals.next() => {
            stop.store(true, Ordering::Relaxed);
            Err(RunError::Interrupted { signal: name, dir: run_dir.path.clone() })
        }
    };
    progress.finish().await;
    let events = std::mem::take(&mut *injected.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    let scheduled = recorded::write(&run_dir.path.join(SCHEDULE_FILE), &plan.schedule_header(), &events);
    recorder.close().await;
    drop(recorder);
    let written = tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|e| RunError::History { path: run_dir.history_path(), message: e.to_string() })?
        .map_err(|_| RunError::History { path: run_dir.history_path(), message: "writer panicked".to_string() })?;
    if let Some(message) = written.error {
        return Err(RunError::History { path: run_dir.history_path(), message });
    }
    // An interruption is the error to report; a schedule that could not be
    // written comes next.
    let settled = outcome?;
    scheduled?;
    Ok(settled)
}

struct Phases<'a> {
    plan: &'a TestPlan,
    cluster: &'a Cluster,
    recorder: &'a Recorder,
    stop: &'a Arc<AtomicBool>,
    nemesis_state: NemesisState,
    phase: Arc<std::sync::Mutex<&'static str>>,
    start: Instant,
    injected: Injected,
}

impl Phases<'_> {
    fn set_phase(&self, name: &'static str) {
        if let Ok(mut phase) = self.phase.lock() {
            *phase = name;
        }
    }

    fn pool(&self, process_next: &Arc<AtomicU64>) -> ClientPool {
        let config = ClientConfig {
            addrs: (0..self.cluster.slots()).map(|node| self.cluster.client_addr(node)).collect(),
            kind: self.plan.workload.config.kind,
            transactions: self.plan.workload.config.transactions.map(|share| share.kind),
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

    async fn run(&self, groups: Vec<NemesisGroup>) -> Settled {
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
            start: self.start,
            names_leader: plan.cluster.system.capabilities().leader,
            targets_by: plan.nemesis.recorded.as_ref().map(|(_, by)| *by).unwrap_or_default(),
            keep_majority_running: plan.nemesis.keep_majority_running,
            injected: self.injected.clone(),
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
        let convergence = match plan.cluster.system.capabilities().digest {
            true => {
                self.set_phase("convergence");
                let removed = self.follow_reported_members().await;
                let mut convergence = Convergence::probe(self.cluster, plan.checks.convergence_timeout_ms).await;
                convergence.removed_by_system = removed.into_iter().map(node_name).collect();
                Some(convergence)
            }
            false => None,
        };
        Settled { liveness, convergence }
    }

    /// A membership change the harness gave up on may still commit, after
    /// the last heal (a removal 22 s after its request timed out, seen):
    /// the replicas that must agree are the members the system reports
    /// now. Those it no longer reports are stopped and left out; returns
    /// them.
    async fn follow_reported_members(&self) -> Vec<usize> {
        let reported = match self.plan.nemesis.changes_membership() {
            true => self.cluster.reported_members().await,
            false => None,
        };
        let Some(reported) = reported else { return Vec::new() };
        match self.cluster.forget_removed(&reported).await {
            Ok(gone) => gone,
            Err(error) => {
                tracing::warn!(%error, "could not stop a member the system removed");
                Vec::new()
            }
        }
    }

    /// Writes to a key of its own until one succeeds or the bound passes.
    async fn probe_liveness(&self, pool: &ClientPool) -> Liveness {
        let healed = Instant::now();
        let deadline = healed + Duration::from_millis(self.plan.checks.liveness_timeout_ms);
        let process = pool.process_next.fetch_add(1, Ordering::Relaxed);
        let mut client = (pool.clients)(pool.config.clone(), process);
        let mut liveness = Liveness::new(self.plan.checks.liveness_timeout_ms);
        while Instant::now() < deadline && !self.stop.load(Ordering::Relaxed) {
            liveness.attempts += 1;
            let probe = match &self.plan.workload.liveness_write {
                Some(write) => write(liveness.attempts),
                None => faultline_workloads::Invocation {
                    f: "put".to_string(),
                    key: Some("faultline-liveness".to_string()),
                    value: serde_json::json!(format!("probe-{}", liveness.attempts)),
                },
            };
            let remaining_ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
            let attempt = tokio::time::timeout(Duration::from_millis(remaining_ms.max(1)), client.invoke(&probe)).await;
            match attempt.map(|completion| completion.outcome) {
                Ok(Outcome::Ok(_)) => {
                    liveness.recovered_after_ms = Some(healed.elapsed().as_millis() as u64);
                    return liveness;
                }
                Ok(Outcome::Fail(error)) => liveness.missed(Miss::Fail(error)),
                Ok(Outcome::Info(error)) => liveness.missed(Miss::Info(error)),
                Err(_) => liveness.missed(Miss::Timeout),
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
        let config = &plan.workload.config;
        let reads = FinalReads::new(config.kind, &keys, attempts_max).with_transactions(config.transactions.map(|share| share.kind));
        pool.run(Box::new(reads), workers, Instant::now(), deadline).await;
        set_state(&self.nemesis_state, "healthy");
    }
}

fn time_limit_ns<G: Generator>(time_limit_ms: u64, inner: G) -> impl Generator {
    time_limit(time_limit_ms.saturating_mul(1_000_000), inner)
}
