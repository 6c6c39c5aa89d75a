//! The nemesis task: follows the seeded schedule (quiet, fault, heal, ...),
//! or a recorded one, until the end of the main phase, recording every
//! action in the history as process `nemesis` with an invoke and a
//! completion, and every fault with its targets for `schedule.jsonl`.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_checkers::EventType;
use serde_json::json;

pub use super::nemesis_groups::NemesisGroup;
use super::recorder::{nemesis_event, Recorder};
use crate::cluster::{Cluster, NodeState};
use crate::nemesis::recorded::RecordedEvent;
use crate::nemesis::{choose_among_members, node_names, Fault, Nemesis, Schedule, ScheduleStep, Targets, TargetsBy};

/// The nemesis state the progress display shows (`healthy`, `kill-leader`).
pub type NemesisState = Arc<Mutex<String>>;

/// Longest single sleep, so an interrupt is noticed promptly.
const SLEEP_SLICE_MS: u64 = 100;
/// Bound on waiting for a leader before a fault that runs alone and aims
/// at the leader: several election timeouts.
const LEADER_WAIT_MS: u64 = 4_000;
/// Time between those leader polls.
const LEADER_POLL_MS: u64 = 50;

pub fn set_state(state: &NemesisState, text: &str) {
    let mut guard = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    guard.clear();
    guard.push_str(text);
}

/// Sleep until `until` or `end`, whichever is first; false if stopped.
async fn sleep_until(until: Instant, end: Instant, stop: &AtomicBool) -> bool {
    let until = until.min(end);
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let slice = (until - Instant::now()).min(Duration::from_millis(SLEEP_SLICE_MS));
        tokio::time::sleep(slice).await;
    }
    !stop.load(Ordering::Relaxed)
}

/// Where one group is in its cycle.
enum Cycle {
    /// Quiet until `until`, then `step.fault` is injected.
    Quiet { until: Instant, step: ScheduleStep },
    /// A fault in force until `until`, then this group heals.
    Faulted { until: Instant },
    /// The schedule has nothing more.
    Done,
}

impl Cycle {
    fn after_heal(schedule: &mut Schedule, now: Instant, start: Instant) -> Cycle {
        match schedule.next_step(now.saturating_duration_since(start).as_millis() as u64) {
            Some(step) => Cycle::Quiet { until: now + Duration::from_millis(step.quiet_ms), step },
            None => Cycle::Done,
        }
    }

    fn until(&self) -> Option<Instant> {
        match self {
            Cycle::Quiet { until, .. } | Cycle::Faulted { until } => Some(*until),
            Cycle::Done => None,
        }
    }
}

/// The earliest action due, and its group: of every group, or of the one
/// whose scripted scenario runs `alone`.
fn next_due(cycles: &[Cycle], alone: Option<usize>) -> Option<(Instant, usize)> {
    let due = |(group, cycle): (usize, &Cycle)| cycle.until().filter(|_| alone.is_none_or(|g| g == group)).map(|until| (until, group));
    cycles.iter().enumerate().filter_map(due).min()
}

/// Every group but `scenario` and the `spaced` ones waits `held` longer for
/// its next fault: the other families' clocks stop while a fault runs
/// alone, so each keeps its share of the run. A family spaced on purpose
/// keeps its clock: with the membership races and `clock-isolate-leader`
/// alone, the revote race ran in 12 of 19 control runs (20 of 20 before
/// `clock-isolate-leader`), and once it ran on, the fsync errors of
/// every 8-14 s in 5 of 11.
fn postpone(cycles: &mut [Cycle], scenario: usize, held: Duration, spaced: &[bool]) {
    for (group, cycle) in cycles.iter_mut().enumerate() {
        if let (Cycle::Quiet { until, .. }, false) = (cycle, group == scenario || spaced.get(group) == Some(&true)) {
            *until += held;
        }
    }
}

/// Why stopping `nodes` too, with `down` not running now, would leave
/// fewer than a majority of `members` running, if it would. A fault on a
/// cluster with every other node up always acts: a one- or two-node
/// cluster has no minority to lose, and its kills are the test.
fn majority_lost(members: &[usize], down: &[usize], nodes: &[usize]) -> Option<String> {
    if down.iter().all(|node| nodes.contains(node)) {
        return None;
    }
    let running_after = members.iter().filter(|node| !down.contains(node) && !nodes.contains(node)).count();
    let majority = members.len() / 2 + 1;
    (running_after < majority).then(|| {
        format!("it would leave {running_after} of {} members running ({} not running now)", members.len(), node_names(down).join(", "))
    })
}

/// The faults injected so far, for `schedule.jsonl`; shared so that an
/// interrupted run still writes what it did.
pub type Injected = Arc<Mutex<Vec<RecordedEvent>>>;

pub struct NemesisRun<'a> {
    pub groups: Vec<NemesisGroup>,
    pub cluster: &'a Cluster,
    pub recorder: &'a Recorder,
    pub state: NemesisState,
    pub stop: &'a AtomicBool,
    /// The history's time zero.
    pub start: Instant,
    /// Whether the system names its leader (asked before every fault).
    pub names_leader: bool,
    /// How recorded targets are aimed.
    pub targets_by: TargetsBy,
    /// Skip a fault that would stop one node too many
    /// (`nemesis.keep_majority_running`).
    pub keep_majority_running: bool,
    pub injected: Injected,
}

impl NemesisRun<'_> {
    /// Follow every group's schedule until `end`, each at its own pace;
    /// leaves no fault in force. Deterministic for a seed: the next action
    /// is always the earliest one due (ties go to the first group).
    pub async fn run(&mut self, end: Instant) {
        let now = Instant::now();
        let start = self.start;
        let mut cycles: Vec<Cycle> = self.groups.iter_mut().map(|g| Cycle::after_heal(&mut g.schedule, now, start)).collect();
        // The fault running alone, if any (its group, and when it began): a
        // scripted scenario or a staged membership race, each of which
        // needs the network as it set it.
        let mut alone: Option<(usize, Instant)> = None;
        // Each pass either returns or performs one action that moves its
        // group's `until` forward (quiet and fault times are positive), so
        // the loop ends by `end`.
        loop {
            let Some((until, group)) = next_due(&cycles, alone.map(|(group, _)| group)) else {
                sleep_until(end, end, self.stop).await;
                return;
            };
            if !sleep_until(until, end, self.stop).await || Instant::now() >= end {
                break;
            }
            cycles[group] = match std::mem::replace(&mut cycles[group], Cycle::Done) {
                Cycle::Quiet { step, .. } => {
                    let fault_ms = step.fault_ms;
                    if step.fault.runs_alone() {
                        self.clear_for_scenario(group, &mut cycles).await;
                        alone = Some((group, Instant::now()));
                    }
                    self.inject(group, step).await;
                    Cycle::Faulted { until: Instant::now() + Duration::from_millis(fault_ms) }
                }
                Cycle::Faulted { .. } => {
                    self.heal_group(group).await;
                    if let Some((_, began)) = alone.take() {
                        let spaced: Vec<bool> = self.groups.iter().map(|group| group.spaced).collect();
                        postpone(&mut cycles, group, began.elapsed(), &spaced);
                    }
                    Cycle::after_heal(&mut self.groups[group].schedule, Instant::now(), start)
                }
                Cycle::Done => Cycle::Done,
            };
            self.show_state(&cycles);
        }
        for (group, cycle) in cycles.iter().enumerate() {
            if matches!(cycle, Cycle::Faulted { .. }) {
                self.heal_group(group).await;
            }
        }
        set_state(&self.state, "healthy");
    }

    /// Heals every other group's fault in force before a scripted scenario
    /// starts; their next faults wait until it heals (`postpone`).
    async fn clear_for_scenario(&mut self, scenario: usize, cycles: &mut [Cycle]) {
        for (group, cycle) in cycles.iter_mut().enumerate() {
            if group != scenario && matches!(cycle, Cycle::Faulted { .. }) {
                self.heal_group(group).await;
                *cycle = Cycle::after_heal(&mut self.groups[group].schedule, Instant::now(), self.start);
            }
        }
    }

    fn show_state(&self, cycles: &[Cycle]) {
        let faults: Vec<&str> = cycles
            .iter()
            .zip(&self.groups)
            .filter(|(c, _)| matches!(c, Cycle::Faulted { .. }))
            .map(|(_, g)| g.heal_name.as_str())
            .collect();
        let text = if faults.is_empty() { "healthy".to_string() } else { format!("faulted ({})", faults.join(", ")) };
        set_state(&self.state, &text);
    }

    /// Inject one step's fault: at its recorded targets (aimed as asked),
    /// or at the targets its nemesis chooses now; the leader is asked
    /// first, so the schedule says which role each target had.
    async fn inject(&mut self, group: usize, step: ScheduleStep) {
        let fault = step.fault;
        let at_ms = self.start.elapsed().as_millis() as u64;
        set_state(&self.state, fault.name());
        self.recorder.record(nemesis_event(EventType::Invoke, fault.name(), json!(null))).await;
        let leader = self.leader_for(fault).await;
        let members = self.cluster.members();
        let mix = &mut self.groups[group].mix;
        let targets = match &step.recorded {
            Some((targets, leader_then)) => Some(targets.aimed(self.targets_by, *leader_then, leader)),
            None => choose_among_members(mix, fault, &members, leader),
        };
        // A recorded schedule holds only what was injected: it replays all.
        let guarded = self.keep_majority_running && step.recorded.is_none() && fault.stops_a_minority();
        if let (true, Some(Targets::Nodes(nodes))) = (guarded, &targets) {
            let down: Vec<usize> = members.iter().copied().filter(|node| self.cluster.node_state(*node) != NodeState::Running).collect();
            if let Some(why) = majority_lost(&members, &down, nodes) {
                let skipped = json!({ "skipped": why, "nodes": node_names(nodes) });
                self.recorder.record(nemesis_event(EventType::Ok, fault.name(), skipped)).await;
                return;
            }
        }
        let event = RecordedEvent {
            at_ms,
            fault,
            duration_ms: step.fault_ms,
            group: self.groups[group].label.clone(),
            targets: targets.clone(),
            leader,
        };
        self.injected.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(event);
        let mix = &mut self.groups[group].mix;
        let applied = match targets {
            Some(targets) => mix.apply(fault, targets, self.cluster).await,
            None => mix.invoke(fault, self.cluster).await,
        };
        let completion = match applied {
            Ok(effect) => nemesis_event(EventType::Ok, fault.name(), effect),
            Err(error) => {
                let mut event = nemesis_event(EventType::Info, fault.name(), json!(null));
                event.error = Some(error.to_string());
                event
            }
        };
        self.recorder.record(completion).await;
    }

    /// The leader the members name, if the system names one. A fault that
    /// runs alone and aims at the leader (`clock-isolate-leader`) waits up
    /// to `LEADER_WAIT_MS` for one: the heals that cleared the cluster for
    /// it often leave it electing, and a node drawn at random in its place
    /// stages nothing (measured, seeds 1-8: 8 of 18 windows cut off a node
    /// the clients were not writing through; 1 of 19 with the wait).
    async fn leader_for(&self, fault: Fault) -> Option<usize> {
        if !self.names_leader {
            return None;
        }
        let wait_ms = if fault.runs_alone() && fault.is_leader_targeted() { LEADER_WAIT_MS } else { 0 };
        let deadline = Instant::now() + Duration::from_millis(wait_ms);
        loop {
            let leader = self.cluster.leader().await;
            if leader.is_some() || Instant::now() >= deadline || self.stop.load(Ordering::Relaxed) {
                return leader;
            }
            tokio::time::sleep(Duration::from_millis(LEADER_POLL_MS)).await;
        }
    }

    /// Undo what one group has in force.
    async fn heal_group(&mut self, group: usize) {
        let f = self.groups[group].heal_name.clone();
        self.recorder.record(nemesis_event(EventType::Invoke, &f, json!(null))).await;
        let completion = match self.groups[group].mix.heal(self.cluster).await {
            Ok(effect) => nemesis_event(EventType::Ok, &f, effect),
            Err(error) => {
                let mut event = nemesis_event(EventType::Info, &f, json!(null));
                event.error = Some(error.to_string());
                event
            }
        };
        self.recorder.record(completion).await;
    }

    /// Undo every fault of every group: the final heal of the test.
    pub async fn heal_all(&mut self) {
        let f = "final-heal";
        self.recorder.record(nemesis_event(EventType::Invoke, f, json!(null))).await;
        let mut effects = Vec::new();
        let mut errors = Vec::new();
        for group in &mut self.groups {
            match group.mix.heal(self.cluster).await {
                Ok(effect) => effects.push(effect),
                Err(error) => errors.push(error.to_string()),
            }
        }
        let effect = match effects.len() {
            1 => effects.remove(0),
            _ => json!(effects),
        };
        let completion = if errors.is_empty() {
            nemesis_event(EventType::Ok, f, effect)
        } else {
            let mut event = nemesis_event(EventType::Info, f, effect);
            event.error = Some(errors.join("; "));
            event
        };
        self.recorder.record(completion).await;
        set_state(&self.state, "healthy");
    }
}

#[cfg(test)]
mod tests {
    use super::*;


    #[test]
    fn a_scripted_scenario_runs_alone_and_stops_the_others_clocks() {
        let now = Instant::now();
        let step = ScheduleStep { quiet_ms: 1, fault: Fault::Revote, fault_ms: 1, recorded: None };
        let at = |ms: u64| now + Duration::from_millis(ms);
        let mut cycles = vec![
            Cycle::Quiet { until: at(100), step: step.clone() },
            Cycle::Faulted { until: at(900) },
            Cycle::Done,
        ];
        assert_eq!(next_due(&cycles, None), Some((at(100), 0)), "the earliest of all");
        assert_eq!(next_due(&cycles, Some(1)), Some((at(900), 1)), "only the scenario's heal");
        assert_eq!(next_due(&cycles, Some(2)), None, "a finished group holds nothing");
        postpone(&mut cycles, 1, Duration::from_millis(500), &[false, false, false]);
        assert_eq!(cycles[0].until(), Some(at(600)), "a quiet group waits as long as the scenario held the cluster");
        assert_eq!(cycles[1].until(), Some(at(900)), "the scenario's own group is not moved");
        postpone(&mut cycles, 1, Duration::from_millis(500), &[true, false, false]);
        assert_eq!(cycles[0].until(), Some(at(600)), "a scripted scenario's spacing runs on in wall time");
    }

    #[test]
    fn a_fault_that_would_stop_the_majority_is_named_and_others_pass() {
        let five = [0, 1, 2, 3, 4];
        assert_eq!(majority_lost(&five, &[], &[0, 1]), None, "two of five down leave three running");
        assert_eq!(majority_lost(&five, &[3], &[0]), None);
        assert_eq!(majority_lost(&five, &[3], &[3]), None, "a node already down costs nothing more");
        let why = majority_lost(&five, &[3, 4], &[0]).expect("a third node down of five");
        assert_eq!(why, "it would leave 2 of 5 members running (n4, n5 not running now)");
        assert!(majority_lost(&[0, 1, 2], &[], &[1]).is_none());
        assert!(majority_lost(&[0, 1, 2], &[2], &[1]).is_some());
        assert!(majority_lost(&[0, 1, 2, 3], &[2], &[1]).is_some(), "two of four are no majority");
        assert_eq!(majority_lost(&[0], &[], &[0]), None, "a lone node is killed: nothing else is down");
        assert_eq!(majority_lost(&[0, 1], &[], &[1]), None);
        assert!(majority_lost(&[0, 1], &[0], &[1]).is_some(), "the second of two");
    }

    #[test]
    fn only_faults_that_stop_a_minority_are_guarded() {
        let guarded = |name: &str| Fault::parse_names(&[name]).unwrap().iter().all(|fault| fault.stops_a_minority());
        for name in ["kill-leader", "kill-minority", "pause", "power-loss-leader", "disk-fsync-eio", "disk-torn-write", "membership-crash"] {
            assert!(guarded(name), "{name}");
        }
        let free = |name: &str| Fault::parse_names(&[name]).unwrap().iter().all(|fault| !fault.stops_a_minority());
        for name in ["kill-majority", "power-loss-majority", "power-loss-all", "disk-fsync-eio-majority", "partition", "clock", "disk-slow", "revote"] {
            assert!(free(name), "{name}: a majority on purpose, or no node stopped");
        }
    }

}
