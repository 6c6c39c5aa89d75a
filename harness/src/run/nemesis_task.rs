//! The nemesis task: follows the seeded schedule (quiet, fault, heal, ...),
//! or a recorded one, until the end of the main phase, recording every
//! action in the history as process `nemesis` with an invoke and a
//! completion, and every fault with its targets for `schedule.jsonl`.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_checkers::EventType;
use serde_json::json;

use super::recorder::{nemesis_event, Recorder};
use crate::cluster::{Cluster, NodeState};
use crate::nemesis::recorded::{RecordedEvent, ONE_AT_A_TIME};
use crate::nemesis::{choose_among_members, node_names, Fault, FaultFamily, Mix, Nemesis, NemesisError, Schedule, ScheduleStep, Targets, TargetsBy};
use crate::plan::TestPlan;

/// The nemesis state the progress display shows (`healthy`, `kill-leader`).
pub type NemesisState = Arc<Mutex<String>>;

/// Longest single sleep, so an interrupt is noticed promptly.
const SLEEP_SLICE_MS: u64 = 100;
/// Least quiet time before a scripted scenario in a concurrent schedule
/// with other families: a scenario holds the cluster alone for seconds, so
/// one every 8-14 s (a 30 s run gets one or two) leaves the other families
/// most of the run.
const SCRIPTED_QUIET_MS: (u64, u64) = (8_000, 14_000);
/// Least quiet time before a membership race that runs alone: it holds
/// the cluster for a fault's length, so a 30 s run gets about four.
const ALONE_QUIET_MS: (u64, u64) = (3_000, 6_000);

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

/// One schedule and the nemesis it drives. Tests run one group for all
/// faults, or (`nemesis.concurrent`) one group per fault family, so faults
/// of different families overlap.
pub struct NemesisGroup {
    pub mix: Mix,
    pub schedule: Schedule,
    /// The family's name in a concurrent schedule, else `all`.
    pub label: String,
    /// `heal-<family>` in a concurrent schedule, else `heal`.
    pub heal_name: String,
}

impl NemesisGroup {
    /// The nemesis schedules of a plan: one for all its faults, or with
    /// `nemesis.concurrent` one per fault family (each with its own seeded
    /// schedule), so a partition can be in force while a node is down.
    pub fn for_plan(plan: &TestPlan) -> Result<Vec<NemesisGroup>, NemesisError> {
        let schedule = |faults: Vec<crate::nemesis::Fault>, seed: u64| {
            Schedule::new(
                faults,
                (plan.nemesis.fault_duration_ms_min, plan.nemesis.fault_duration_ms_max),
                (plan.nemesis.heal_duration_ms_min, plan.nemesis.heal_duration_ms_max),
                seed,
            )
            .with_leader_share(plan.nemesis.leader_share)
        };
        if let Some((recorded, _)) = &plan.nemesis.recorded {
            return recorded
                .groups()
                .into_iter()
                .map(|(label, events)| {
                    let faults: Vec<Fault> = events.iter().map(|event| event.fault).collect();
                    let mix = Mix::standard(&faults, plan.seed, &plan.nemesis.settings, &plan.nemesis.custom)?;
                    let heal_name = RecordedEvent::heal_name(&label);
                    Ok(NemesisGroup { mix, schedule: Schedule::recorded(events), label, heal_name })
                })
                .collect();
        }
        let faults = &plan.nemesis.faults;
        if !plan.nemesis.concurrent {
            let mix = Mix::standard(faults, plan.seed, &plan.nemesis.settings, &plan.nemesis.custom)?;
            let label = ONE_AT_A_TIME.to_string();
            let heal_name = RecordedEvent::heal_name(&label);
            return Ok(vec![NemesisGroup { mix, schedule: schedule(faults.clone(), plan.seed), label, heal_name }]);
        }
        let mut families: Vec<FaultFamily> = faults.iter().map(|fault| fault.family()).collect();
        families.sort_unstable();
        families.dedup();
        let alone = families.len() == 1;
        families
            .into_iter()
            .map(|family| {
                let faults: Vec<_> = faults.iter().copied().filter(|fault| fault.family() == family).collect();
                let mix = Mix::standard(&faults, plan.seed, &plan.nemesis.settings, &plan.nemesis.custom)?;
                // Each family's schedule gets a stream of its own.
                let seed = plan.seed ^ (0x6661_6d69_6c79_0000 + family.stream());
                let label = family.name().to_string();
                let heal_name = RecordedEvent::heal_name(&label);
                let mut schedule = schedule(faults.clone(), seed);
                let held_alone = match (faults.iter().all(|fault| fault.is_scripted()), faults.iter().all(|fault| fault.runs_alone())) {
                    (true, _) => Some(SCRIPTED_QUIET_MS),
                    (false, true) => Some(ALONE_QUIET_MS),
                    (false, false) => None,
                };
                let asked = plan.nemesis.family_heal_ms.iter().find(|(named, _)| *named == family).map(|(_, range)| *range);
                for quiet_ms in [held_alone, asked].into_iter().flatten().filter(|_| !alone) {
                    schedule = schedule.with_quiet_ms_min(quiet_ms);
                }
                Ok(NemesisGroup { mix, schedule, label, heal_name })
            })
            .collect()
    }
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

/// Every group but `scenario` waits `held` longer for its next fault: the
/// other families' clocks stop while a scripted scenario runs alone.
fn postpone(cycles: &mut [Cycle], scenario: usize, held: Duration) {
    for (group, cycle) in cycles.iter_mut().enumerate() {
        if let (Cycle::Quiet { until, .. }, false) = (cycle, group == scenario) {
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
                        postpone(&mut cycles, group, began.elapsed());
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
        let leader = match self.names_leader {
            true => self.cluster.leader().await,
            false => None,
        };
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
    use crate::plan::SpecFile;
    use crate::plan::TestPlan;

    fn plan(concurrent: bool) -> TestPlan {
        let mut spec = SpecFile::default();
        spec.nemesis.faults = vec!["partition-halves".into(), "kill-leader".into(), "kill-random".into()];
        spec.nemesis.concurrent = concurrent;
        TestPlan::from_spec(&spec, 1).unwrap()
    }

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
        postpone(&mut cycles, 1, Duration::from_millis(500));
        assert_eq!(cycles[0].until(), Some(at(600)), "a quiet group waits as long as the scenario held the cluster");
        assert_eq!(cycles[1].until(), Some(at(900)), "the scenario's own group is not moved");
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

    #[test]
    fn scripted_and_named_families_beside_others_wait_longer_between_faults() {
        let mut spec = SpecFile::default();
        spec.nemesis.faults = vec!["kill".into(), "revote-power-loss".into()];
        spec.nemesis.concurrent = true;
        let mut groups = NemesisGroup::for_plan(&TestPlan::from_spec(&spec, 1).unwrap()).unwrap();
        let quiet = |group: &mut NemesisGroup| group.schedule.next_step(0).unwrap().quiet_ms;
        assert_eq!(groups[1].label, "revote");
        for _ in 0..20 {
            assert!((SCRIPTED_QUIET_MS.0..=SCRIPTED_QUIET_MS.1).contains(&quiet(&mut groups[1])));
            assert!(quiet(&mut groups[0]) < SCRIPTED_QUIET_MS.0, "the other families keep the spec's range");
        }
        spec.nemesis.faults = vec!["kill".into(), "corrupt-bitflip".into(), "disk-fsync-eio-majority".into()];
        let mut groups = NemesisGroup::for_plan(&TestPlan::from_spec(&spec, 1).unwrap()).unwrap();
        let labels: Vec<&str> = groups.iter().map(|group| group.label.as_str()).collect();
        assert_eq!(labels, ["kill", "corrupt", "disk"]);
        for _ in 0..20 {
            assert!((3_000..=6_000).contains(&quiet(&mut groups[1])), "file corruption, as the default spec asks");
            assert!((8_000..=14_000).contains(&quiet(&mut groups[2])), "disk errors, as the default spec asks");
            assert!(quiet(&mut groups[0]) < 3_000, "kill keeps the spec's range");
        }
        spec.nemesis.family_heal_durations.clear();
        let mut groups = NemesisGroup::for_plan(&TestPlan::from_spec(&spec, 1).unwrap()).unwrap();
        assert!((0..3).all(|_| quiet(&mut groups[2]) < 3_000), "a spec that asks for nothing keeps its range");
        spec.nemesis.faults = vec!["kill".into(), "membership-race".into(), "membership-add-minority".into()];
        let mut groups = NemesisGroup::for_plan(&TestPlan::from_spec(&spec, 1).unwrap()).unwrap();
        assert_eq!(groups[1].label, "membership");
        assert!((0..20).all(|_| (ALONE_QUIET_MS.0..=ALONE_QUIET_MS.1).contains(&quiet(&mut groups[1]))), "membership races run alone, every 3-6 s");
        spec.nemesis.faults = vec!["kill".into(), "membership-race".into(), "membership-add".into()];
        let mut groups = NemesisGroup::for_plan(&TestPlan::from_spec(&spec, 1).unwrap()).unwrap();
        assert!((0..20).any(|_| quiet(&mut groups[1]) < ALONE_QUIET_MS.0), "a family with a fault that runs beside others keeps the spec's range");
        spec.nemesis.faults = vec!["revote".into()];
        let mut alone = NemesisGroup::for_plan(&TestPlan::from_spec(&spec, 1).unwrap()).unwrap();
        assert!(quiet(&mut alone[0]) < SCRIPTED_QUIET_MS.0, "a scenario on its own keeps the spec's range");
    }

    #[test]
    fn a_concurrent_nemesis_gets_one_schedule_per_family() {
        let groups = NemesisGroup::for_plan(&plan(true)).unwrap();
        let names: Vec<&str> = groups.iter().map(|g| g.heal_name.as_str()).collect();
        assert_eq!(names, ["heal-kill", "heal-partition"]);
        let one = NemesisGroup::for_plan(&plan(false)).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].heal_name, "heal");
    }
}
