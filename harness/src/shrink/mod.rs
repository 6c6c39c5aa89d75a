//! `faultline shrink`: the search for a smaller test that still fails the
//! same way, as pure functions over a [`Candidate`] and an oracle that
//! runs one (the command supplies the oracle: real runs of the harness).
//!
//! The passes, in order, each keeping what still fails:
//! 1. fewer fault events: delta debugging (Zeller's ddmin) over the events;
//! 2. shorter faults, then shorter quiet periods (every gap halved while
//!    a group's faults still follow each other), then a time limit that
//!    ends a second after the last heal;
//! 3. a smaller workload: fewer keys, fewer clients, a lower rate;
//! 4. fewer nodes, smallest first, among the odd counts the system's spec
//!    accepts and every fault can run on: a fault that named nodes hits
//!    the same nodes where they still exist (renumbered otherwise, the
//!    recorded leader with them); a partition's grudge and a scenario's
//!    roles are drawn again by their own mode on the smaller cluster.
//!
//! The oracle answers `Some(true)` (fails the same way), `Some(false)`, or
//! `None` when the budget is spent: the search stops and keeps the smallest
//! failing candidate found so far.
use crate::nemesis::recorded::RecordedEvent;
use crate::nemesis::Targets;

pub mod record;
pub mod report;
pub mod runner;
pub mod search;

/// Shortest a fault is made to last.
pub const FAULT_MS_MIN: u64 = 100;
/// Shortest test the time limit pass goes down to.
pub const TIME_LIMIT_MS_MIN: u64 = 2_000;
/// What the time limit keeps after the last heal, for the operations that
/// show the failure to complete.
pub const AFTER_LAST_HEAL_MS: u64 = 1_000;
/// Lowest rate the workload pass tries.
pub const RATE_PER_S_MIN: f64 = 10.0;

/// One test to try: a schedule and the knobs the passes turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub events: Vec<RecordedEvent>,
    pub time_limit_ms: u64,
    pub keys_active: u32,
    pub concurrency: usize,
    pub rate_per_s: f64,
    pub nodes: usize,
}

impl Candidate {
    /// The fewest nodes every fault of this schedule runs on.
    pub fn nodes_min(&self) -> usize {
        self.events.iter().map(|event| event.fault.nodes_min()).max().unwrap_or(1)
    }

    /// The same schedule on `nodes` nodes (fewer than now).
    pub fn with_nodes(&self, nodes: usize) -> Candidate {
        assert!(nodes <= self.nodes, "the node pass only removes nodes");
        let events = self.events.iter().map(|event| event_on(event, nodes)).collect();
        Candidate { events, nodes, ..self.clone() }
    }

    /// When the last fault is healed (0 without faults).
    pub fn last_heal_ms(&self) -> u64 {
        self.events.iter().map(|event| event.at_ms + event.duration_ms).max().unwrap_or(0)
    }

    /// Every fault `factor` as long (at least [`FAULT_MS_MIN`]); a fault
    /// never grows.
    pub fn with_faults_scaled(&self, factor: f64) -> Candidate {
        let mut next = self.clone();
        for event in &mut next.events {
            let scaled = ((event.duration_ms as f64) * factor) as u64;
            event.duration_ms = scaled.max(FAULT_MS_MIN).min(event.duration_ms);
        }
        next
    }

    /// Every quiet gap before a fault `factor` as long: events keep their
    /// order, and a fault still starts after the one before it in its group
    /// is healed.
    pub fn with_gaps_scaled(&self, factor: f64) -> Candidate {
        let mut next = self.clone();
        next.events.sort_by_key(|event| event.at_ms);
        let mut previous_old = 0;
        let mut previous_new = 0;
        for index in 0..next.events.len() {
            let gap = next.events[index].at_ms - previous_old;
            let mut at = previous_new + ((gap as f64) * factor) as u64;
            let group = next.events[index].group.clone();
            if let Some(before) = next.events[..index].iter().rev().find(|event| event.group == group) {
                at = at.max(before.at_ms + before.duration_ms);
            }
            previous_old = next.events[index].at_ms;
            next.events[index].at_ms = at.min(previous_old);
            previous_new = next.events[index].at_ms;
        }
        next
    }

    /// The time limit a second after the last heal, never longer than now
    /// and never under `floor_ms` (at least [`TIME_LIMIT_MS_MIN`]; a spec
    /// also wants it above the client's operation timeout).
    pub fn with_time_limit_fitted(&self, floor_ms: u64) -> Candidate {
        let fitted = (self.last_heal_ms() + AFTER_LAST_HEAL_MS).max(floor_ms).max(TIME_LIMIT_MS_MIN);
        Candidate { time_limit_ms: fitted.min(self.time_limit_ms), ..self.clone() }
    }

    /// A line for progress and tables: `4 events, 12.0 s of faults, last
    /// healed at 9.5 s, 10.0 s limit, 4 keys, 10 clients, 200/s, 5 nodes`.
    pub fn describe(&self) -> String {
        let faulted_ms: u64 = self.events.iter().map(|event| event.duration_ms).sum();
        format!(
            "{} events, {:.1} s of faults, last healed at {:.1} s, {:.1} s limit, {} keys, {} clients, {}/s, {} nodes",
            self.events.len(),
            faulted_ms as f64 / 1e3,
            self.last_heal_ms() as f64 / 1e3,
            self.time_limit_ms as f64 / 1e3,
            self.keys_active,
            self.concurrency,
            self.rate_per_s,
            self.nodes
        )
    }
}

/// `event` on a cluster of `nodes`: the nodes it hit and the recorded
/// leader keep their numbers where they exist and take free numbers
/// otherwise, so the fault hits as many nodes in the same roles; targets
/// that do not fit, grudges and roles are left to the nemesis to draw.
fn event_on(event: &RecordedEvent, nodes: usize) -> RecordedEvent {
    let mut next = event.clone();
    let mut kept: Vec<usize> = match &event.targets {
        Some(Targets::Nodes(hit)) => hit.clone(),
        Some(_) => {
            next.targets = None;
            Vec::new()
        }
        None => Vec::new(),
    };
    kept.extend(event.leader.filter(|leader| !kept.contains(leader)));
    if kept.len() > nodes {
        next.targets = None;
        next.leader = None;
        return next;
    }
    let mut free = (0..nodes).filter(|node| !kept.contains(node));
    let moved: Vec<(usize, usize)> = kept.iter().filter(|node| **node >= nodes).map(|node| (*node, free.next().unwrap_or(0))).collect();
    let map = |node: usize| moved.iter().find(|(from, _)| *from == node).map_or(node, |(_, to)| *to);
    if let Some(Targets::Nodes(hit)) = &mut next.targets {
        hit.iter_mut().for_each(|node| *node = map(*node));
        hit.sort_unstable();
    }
    next.leader = event.leader.map(map);
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::Fault;

    pub(crate) fn event(at_ms: u64, duration_ms: u64, group: &str) -> RecordedEvent {
        RecordedEvent {
            at_ms,
            fault: Fault::parse_name("kill-random").unwrap()[0],
            duration_ms,
            group: group.to_string(),
            targets: None,
            leader: None,
        }
    }

    fn candidate(events: Vec<RecordedEvent>) -> Candidate {
        Candidate { events, time_limit_ms: 30_000, keys_active: 4, concurrency: 10, rate_per_s: 200.0, nodes: 5 }
    }

    #[test]
    fn fewer_nodes_keep_the_hit_nodes_and_their_roles() {
        let mut kill = event(0, 500, "kill");
        kill.targets = Some(Targets::Nodes(vec![1, 4]));
        kill.leader = Some(3);
        let mut partition = event(1_000, 500, "partition");
        partition.fault = Fault::parse_name("partition-halves").unwrap()[0];
        partition.targets = Some(Targets::Grudge(crate::nemesis::partition::isolate(4, 5)));
        partition.leader = Some(0);
        let mut wide = event(2_000, 500, "kill");
        wide.targets = Some(Targets::Nodes(vec![0, 2, 4]));
        wide.leader = Some(1);
        let three = candidate(vec![kill, partition, wide]).with_nodes(3);
        assert_eq!(three.nodes, 3);
        let [kill, partition, wide] = &three.events[..] else { panic!("{:?}", three.events) };
        assert_eq!(kill.targets, Some(Targets::Nodes(vec![0, 1])), "n2 stays, n5 takes the free n1");
        assert_eq!(kill.leader, Some(2), "the follower that led stays the leader, renumbered");
        assert_eq!((partition.targets.clone(), partition.leader), (None, Some(0)), "a grudge is drawn again");
        assert_eq!((wide.targets.clone(), wide.leader), (None, None), "four nodes do not fit in three");
        assert_eq!(three.nodes_min(), 2, "partition-halves needs two nodes");
        assert_eq!(candidate(Vec::new()).nodes_min(), 1);
    }

    #[test]
    fn faults_shrink_to_a_floor_and_never_grow() {
        let shrunk = candidate(vec![event(0, 1_000, "kill"), event(2_000, 150, "kill")]).with_faults_scaled(0.5);
        let durations: Vec<u64> = shrunk.events.iter().map(|e| e.duration_ms).collect();
        assert_eq!(durations, [500, 100]);
        let tiny = candidate(vec![event(0, 50, "kill")]).with_faults_scaled(0.5);
        assert_eq!(tiny.events[0].duration_ms, 50, "a fault under the floor stays as it is");
    }

    #[test]
    fn gaps_shrink_but_a_group_still_heals_before_its_next_fault() {
        let events = vec![event(4_000, 3_000, "kill"), event(5_000, 500, "pause"), event(9_000, 1_000, "kill")];
        let shrunk = candidate(events).with_gaps_scaled(0.5);
        let starts: Vec<u64> = shrunk.events.iter().map(|e| e.at_ms).collect();
        // 4000 -> 2000; pause 1000 later -> 500 later; the kill at 9000 is
        // 4000 after the pause -> 2000 later = 4500, but the first kill is
        // healed at 5000.
        assert_eq!(starts, [2_000, 2_500, 5_000]);
        for (index, e) in shrunk.events.iter().enumerate() {
            for before in shrunk.events[..index].iter().filter(|b| b.group == e.group) {
                assert!(e.at_ms >= before.at_ms + before.duration_ms);
            }
        }
    }

    #[test]
    fn the_time_limit_ends_a_second_after_the_last_heal() {
        let c = candidate(vec![event(2_000, 3_000, "kill")]);
        assert_eq!(c.with_time_limit_fitted(0).time_limit_ms, 6_000);
        assert_eq!(candidate(vec![event(0, 100, "kill")]).with_time_limit_fitted(0).time_limit_ms, TIME_LIMIT_MS_MIN);
        let short = Candidate { time_limit_ms: 4_000, ..c.clone() };
        assert_eq!(short.with_time_limit_fitted(0).time_limit_ms, 4_000, "never longer");
        assert_eq!(c.with_time_limit_fitted(7_000).time_limit_ms, 7_000, "never under the floor");
        assert!(short.describe().starts_with("1 events, 3.0 s of faults, last healed at 5.0 s, 4.0 s limit, 4 keys"), "{}", short.describe());
    }
}
