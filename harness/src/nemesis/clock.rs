//! Clock faults, as Jepsen's clock nemesis has them, through libfaketime
//! preloaded into every node (`cluster/clock.rs`): every node skewed by its
//! own offset within ±`nemesis.clock_offset_max`, one node's clock bumped
//! once (the leader's set back, the direction that stretches a lease read
//! from the wall clock), one node's clock strobing between the real time
//! and the bound, or one node's clock running at half or double speed. The
//! heal puts every clock back.
//!
//! `clock-isolate-leader` stages the fault a lease read from the wall clock
//! fails under: the leader is cut off from the other nodes (its clients
//! still reach it), its clock set back, and the fault holds once the others
//! have elected a leader of their own, so their writes land while the old
//! leader may still answer reads. The cut comes first: a leader set back
//! while still joined misses its heartbeats (with the monotonic clock
//! faked), and the new leader's first message would end its term before
//! the others wrote anything. Left to chance beside a partition family,
//! the two rarely met on one leader that stayed up (`mutants.md`).
//!
//! Strobe and rate are driven from here: a task rewrites the node's offset
//! every `nemesis.clock_strobe_period` until the heal (libfaketime's own
//! rate counts from the process's start, which a restart moves).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::partition::isolate;
use super::scenarios::{poll_leader, ELECTION_WAIT_MS};
use super::{choose_then_apply, leader_or, node_name, node_names, ClockMode, Effect, Fault, FaultFamily, Nemesis, NemesisError, Targets};
use crate::cluster::{BoxFuture, Cluster};
use crate::proxy::Grudge;

/// Most rewrites one strobe or rate task makes (at the shortest period,
/// 1 ms, about 10 minutes).
const TASK_STEPS_MAX: u64 = 600_000;
/// The owner of `clock-isolate-leader`'s network cut.
const CLOCK_OWNER: &str = "clock";
/// How long `clock-isolate-leader` holds once the others elected, before
/// the schedule's own fault time: the old leader's clients leave it only
/// when an operation times out (`client.op_timeout`, 1 s by default), and
/// come back to it as new processes one in n; until then nobody writes
/// on the other side, and its reads have nothing to miss.
const HOLD_AFTER_ELECTION_MS: u64 = 1_500;

/// `nemesis.clock_offset_max`, `clock_strobe_period`, `clock_fake_monotonic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSettings {
    pub offset_ms_max: u64,
    pub strobe_period_ms: u64,
    pub fake_monotonic: bool,
}

impl Default for ClockSettings {
    fn default() -> Self {
        ClockSettings { offset_ms_max: 10_000, strobe_period_ms: 200, fake_monotonic: false }
    }
}

/// What a fault does to each node's clock (pure: the rng decides).
#[derive(Debug, Clone, PartialEq)]
pub enum ClockPlan {
    /// Fixed offsets, one per node named.
    Offsets(Vec<(usize, i64)>),
    /// The node's offset alternates between 0 and `offset_ms`.
    Strobe { node: usize, offset_ms: i64 },
    /// The node's clock runs at `rate` from now on.
    Rate { node: usize, rate: f64 },
}

pub fn plan_clocks(rng: &mut ChaCha8Rng, mode: ClockMode, targets: &[usize], offset_ms_max: u64) -> ClockPlan {
    let bound = offset_ms_max as i64;
    let node = targets.first().copied().unwrap_or(0);
    match mode {
        ClockMode::Skew => ClockPlan::Offsets(targets.iter().map(|node| (*node, rng.random_range(-bound..=bound))).collect()),
        ClockMode::Bump => ClockPlan::Offsets(vec![(node, if rng.random_bool(0.5) { bound } else { -bound })]),
        ClockMode::BumpLeader | ClockMode::IsolateLeader => ClockPlan::Offsets(vec![(node, -bound)]),
        ClockMode::Strobe => ClockPlan::Strobe { node, offset_ms: if rng.random_bool(0.5) { bound } else { -bound } },
        ClockMode::Rate => ClockPlan::Rate { node, rate: if rng.random_bool(0.5) { 0.5 } else { 2.0 } },
    }
}

/// The offset a strobe or rate task writes `elapsed_ms` after it began.
pub fn task_offset_ms(plan: &ClockPlan, elapsed_ms: u64, period_ms: u64) -> i64 {
    match plan {
        ClockPlan::Strobe { offset_ms, .. } if (elapsed_ms / period_ms.max(1)) % 2 == 0 => *offset_ms,
        ClockPlan::Strobe { .. } => 0,
        ClockPlan::Rate { rate, .. } => ((rate - 1.0) * elapsed_ms as f64) as i64,
        ClockPlan::Offsets(_) => 0,
    }
}

pub struct ClockNemesis {
    rng: ChaCha8Rng,
    settings: ClockSettings,
    /// Nodes whose clocks are off now.
    moved: Vec<usize>,
    /// Stops the running strobe or rate task.
    task_stop: Option<Arc<AtomicBool>>,
    /// Whether `clock-isolate-leader`'s cut is in force.
    cut: bool,
}

impl ClockNemesis {
    pub fn new(rng: ChaCha8Rng, settings: ClockSettings) -> Self {
        ClockNemesis { rng, settings, moved: Vec::new(), task_stop: None, cut: false }
    }

    /// `clock-isolate-leader` on `leader`: cut off, then set back by
    /// `plan`; returns `HOLD_AFTER_ELECTION_MS` after the other members
    /// name a leader, or after `ELECTION_WAIT_MS` if they name none (the
    /// history says which).
    async fn isolate_leader(&mut self, leader: usize, plan: ClockPlan, cluster: &Cluster) -> Result<Effect, NemesisError> {
        self.cut = true;
        cluster.partition(CLOCK_OWNER, &isolate(leader, cluster.slots())).await?;
        let mut effect = self.apply_plan(plan, cluster)?;
        let others: Vec<usize> = cluster.members().into_iter().filter(|node| *node != leader).collect();
        let elected = poll_leader(cluster, &others, Option::is_some, ELECTION_WAIT_MS).await.flatten();
        if elected.is_some() {
            tokio::time::sleep(Duration::from_millis(HOLD_AFTER_ELECTION_MS)).await;
        }
        effect["isolated"] = json!(node_name(leader));
        effect["others_elected"] = json!(elected.map(node_name));
        Ok(effect)
    }

    fn start_task(&mut self, plan: ClockPlan, node: usize, cluster: &Cluster) {
        let stop = Arc::new(AtomicBool::new(false));
        self.task_stop = Some(stop.clone());
        let cluster = cluster.clone();
        let period_ms = self.settings.strobe_period_ms;
        tokio::spawn(async move {
            let started = Instant::now();
            for _ in 0..TASK_STEPS_MAX {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let offset_ms = task_offset_ms(&plan, started.elapsed().as_millis() as u64, period_ms);
                // A node removed or the cluster gone ends the task.
                if cluster.set_clock(node, offset_ms, 1.0).is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(period_ms)).await;
            }
        });
    }

    fn apply_plan(&mut self, plan: ClockPlan, cluster: &Cluster) -> Result<Effect, NemesisError> {
        match plan {
            ClockPlan::Offsets(offsets) => {
                for (node, offset_ms) in &offsets {
                    self.moved.push(*node);
                    cluster.set_clock(*node, *offset_ms, 1.0)?;
                }
                let named: serde_json::Map<String, serde_json::Value> =
                    offsets.iter().map(|(node, offset)| (node_name(*node), json!(offset))).collect();
                Ok(json!({ "clock-offsets-ms": named }))
            }
            ClockPlan::Strobe { node, offset_ms } => {
                self.moved.push(node);
                self.start_task(plan, node, cluster);
                Ok(json!({ "clock-strobe": node_name(node), "offset-ms": offset_ms, "period-ms": self.settings.strobe_period_ms }))
            }
            ClockPlan::Rate { node, rate } => {
                self.moved.push(node);
                self.start_task(plan, node, cluster);
                Ok(json!({ "clock-rate": node_name(node), "rate": rate }))
            }
        }
    }
}

impl Nemesis for ClockNemesis {
    fn handles(&self) -> Vec<FaultFamily> {
        vec![FaultFamily::Clock]
    }

    fn invoke<'a>(&'a mut self, fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(choose_then_apply(self, fault, cluster))
    }

    fn choose(&mut self, fault: Fault, nodes: usize, leader: Option<usize>) -> Option<Targets> {
        let Fault::Clock(mode) = fault else { return None };
        Some(Targets::Nodes(match mode {
            ClockMode::Skew => (0..nodes).collect(),
            ClockMode::BumpLeader | ClockMode::IsolateLeader => vec![leader_or(&mut self.rng, nodes, leader)],
            ClockMode::Bump | ClockMode::Strobe | ClockMode::Rate => vec![self.rng.random_range(0..nodes)],
        }))
    }

    fn apply<'a>(&'a mut self, fault: Fault, targets: Targets, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let (Fault::Clock(mode), Targets::Nodes(targets)) = (fault, targets) else {
                return Err(NemesisError::Unhandled(fault));
            };
            let plan = plan_clocks(&mut self.rng, mode, &targets, self.settings.offset_ms_max);
            match (mode, targets.first()) {
                (ClockMode::IsolateLeader, Some(&leader)) => self.isolate_leader(leader, plan, cluster).await,
                _ => self.apply_plan(plan, cluster),
            }
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            if let Some(stop) = self.task_stop.take() {
                stop.store(true, Ordering::Release);
            }
            // The network first: the old leader learns of the new term at
            // once, and its lease ends with its term.
            let cut = std::mem::take(&mut self.cut);
            if cut {
                cluster.partition(CLOCK_OWNER, &Grudge::new()).await?;
            }
            let mut moved = std::mem::take(&mut self.moved);
            if moved.is_empty() {
                return Ok(if cut { json!({ "network": "healed" }) } else { Effect::Null });
            }
            moved.sort_unstable();
            moved.dedup();
            // The task may write once more after the flag: reset after a beat.
            tokio::time::sleep(Duration::from_millis(self.settings.strobe_period_ms.min(1_000) + 5)).await;
            for node in &moved {
                cluster.set_clock(*node, 0, 1.0)?;
            }
            let mut effect = json!({ "clocks-reset": node_names(&moved) });
            if cut {
                effect["network"] = json!("healed");
            }
            Ok(effect)
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn plans_stay_within_the_bound_and_bump_the_leader_back() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let ClockPlan::Offsets(offsets) = plan_clocks(&mut rng, ClockMode::Skew, &[0, 1, 2, 3, 4], 1_000) else { panic!() };
        assert_eq!(offsets.len(), 5);
        assert!(offsets.iter().all(|(_, offset)| offset.abs() <= 1_000));
        assert_eq!(plan_clocks(&mut rng, ClockMode::BumpLeader, &[2], 1_000), ClockPlan::Offsets(vec![(2, -1_000)]));
        let ClockPlan::Offsets(bump) = plan_clocks(&mut rng, ClockMode::Bump, &[1], 1_000) else { panic!() };
        assert_eq!(bump[0].1.abs(), 1_000);
        let ClockPlan::Rate { rate, .. } = plan_clocks(&mut rng, ClockMode::Rate, &[1], 1_000) else { panic!() };
        assert!(rate == 0.5 || rate == 2.0);
    }

    #[test]
    fn isolate_leader_aims_at_the_leader_and_sets_it_back() {
        let mut nemesis = ClockNemesis::new(ChaCha8Rng::seed_from_u64(5), ClockSettings::default());
        let fault = Fault::Clock(ClockMode::IsolateLeader);
        assert_eq!(nemesis.choose(fault, 5, Some(3)), Some(Targets::Nodes(vec![3])));
        let Some(Targets::Nodes(drawn)) = nemesis.choose(fault, 5, None) else { panic!("a node is drawn without a leader") };
        assert!(drawn.len() == 1 && drawn[0] < 5, "{drawn:?}");
        let plan = plan_clocks(&mut ChaCha8Rng::seed_from_u64(5), ClockMode::IsolateLeader, &[3], 2_000);
        assert_eq!(plan, ClockPlan::Offsets(vec![(3, -2_000)]), "back, the direction that stretches a lease");
        assert!(fault.runs_alone() && fault.is_leader_targeted() && !fault.stops_a_minority());
        assert_eq!(fault.nodes_min(), 3, "the others must elect without it");
    }

    #[test]
    fn strobe_alternates_and_rate_drifts() {
        let strobe = ClockPlan::Strobe { node: 0, offset_ms: 500 };
        assert_eq!(task_offset_ms(&strobe, 0, 100), 500);
        assert_eq!(task_offset_ms(&strobe, 150, 100), 0);
        assert_eq!(task_offset_ms(&strobe, 250, 100), 500);
        let slow = ClockPlan::Rate { node: 0, rate: 0.5 };
        assert_eq!(task_offset_ms(&slow, 2_000, 100), -1_000, "half speed: 2 s pass as 1 s");
        let fast = ClockPlan::Rate { node: 0, rate: 2.0 };
        assert_eq!(task_offset_ms(&fast, 2_000, 100), 2_000);
    }
}
