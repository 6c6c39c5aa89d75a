//! When to break things: a seeded sequence of (quiet, fault, duration)
//! steps, or the steps of a recorded schedule. Fault and heal alternate;
//! the runner ends every test with a final heal whatever the schedule says.
use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::recorded::RecordedEvent;
use super::{Fault, Targets};

/// One cycle: stay quiet for `quiet_ms`, then inject `fault` for `fault_ms`,
/// then heal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleStep {
    pub quiet_ms: u64,
    pub fault: Fault,
    pub fault_ms: u64,
    /// A recorded schedule's targets and the leader when they were
    /// recorded; None: the nemesis chooses.
    pub recorded: Option<(Targets, Option<usize>)>,
}

pub struct Schedule {
    faults: Vec<Fault>,
    leader_share: Option<f64>,
    fault_ms_range: (u64, u64),
    quiet_ms_range: (u64, u64),
    rng: ChaCha8Rng,
    /// When set, the steps come from here, not from the draws above.
    recorded: Option<VecDeque<RecordedEvent>>,
}

impl Schedule {
    /// `faults` may be empty: the schedule then never yields a step.
    pub fn new(faults: Vec<Fault>, fault_ms_range: (u64, u64), quiet_ms_range: (u64, u64), seed: u64) -> Self {
        assert!(fault_ms_range.0 <= fault_ms_range.1, "fault duration range is validated in the spec");
        assert!(quiet_ms_range.0 <= quiet_ms_range.1, "heal duration range is validated in the spec");
        let rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5343_4845_4455_4c45);
        Schedule { faults, leader_share: None, fault_ms_range, quiet_ms_range, rng, recorded: None }
    }

    /// A schedule that follows recorded events (of one group, in order).
    pub fn recorded(events: Vec<RecordedEvent>) -> Self {
        let faults = events.iter().map(|event| event.fault).collect();
        let mut schedule = Schedule::new(faults, (1, 1), (1, 1), 0);
        schedule.recorded = Some(events.into());
        schedule
    }

    /// Aims `share` of the faults at the leader, when the list has faults
    /// both aimed at it and not: bugs in replication show up when the
    /// node that coordinates it fails, which a uniform draw over a family
    /// (one leader target among four kills, six partitions) rarely does.
    pub fn with_leader_share(mut self, share: Option<f64>) -> Self {
        assert!(share.is_none_or(|share| (0.0..=1.0).contains(&share)), "leader_share is validated in the spec");
        self.leader_share = share;
        self
    }

    /// Quiet times of at least `floor` (a range of its own, drawn instead
    /// where the spec's lies below it).
    pub fn with_quiet_ms_min(mut self, floor: (u64, u64)) -> Self {
        assert!(floor.0 <= floor.1, "a quiet floor is a range");
        self.quiet_ms_range = (self.quiet_ms_range.0.max(floor.0), self.quiet_ms_range.1.max(floor.1));
        self
    }

    /// The next step, `elapsed_ms` after the test started: a recorded
    /// event is due at its own time (at once, when the run is behind it).
    pub fn next_step(&mut self, elapsed_ms: u64) -> Option<ScheduleStep> {
        if let Some(recorded) = &mut self.recorded {
            let event = recorded.pop_front()?;
            return Some(ScheduleStep {
                quiet_ms: event.at_ms.saturating_sub(elapsed_ms),
                fault: event.fault,
                fault_ms: event.duration_ms,
                recorded: event.targets.map(|targets| (targets, event.leader)),
            });
        }
        if self.faults.is_empty() {
            return None;
        }
        let quiet_ms = self.rng.random_range(self.quiet_ms_range.0..=self.quiet_ms_range.1);
        let fault = self.draw_fault();
        let fault_ms = self.rng.random_range(self.fault_ms_range.0..=self.fault_ms_range.1);
        Some(ScheduleStep { quiet_ms, fault, fault_ms, recorded: None })
    }

    /// Without a leader share, one draw over the list (as every schedule
    /// before the share existed, so old seeds replay).
    fn draw_fault(&mut self) -> Fault {
        let Some(share) = self.leader_share else {
            return self.faults[self.rng.random_range(0..self.faults.len())];
        };
        let (leader, other): (Vec<Fault>, Vec<Fault>) = self.faults.iter().partition(|fault| fault.is_leader_targeted());
        let aim_at_leader = self.rng.random_bool(share);
        let pool = match (leader.is_empty(), other.is_empty()) {
            (false, false) if aim_at_leader => leader,
            (false, false) | (true, _) => other,
            (false, true) => leader,
        };
        pool[self.rng.random_range(0..pool.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(seed: u64, count: usize) -> Vec<ScheduleStep> {
        let mut schedule = Schedule::new(Fault::parse_names(&["kill", "pause", "partition"]).unwrap(), (2_000, 4_000), (1_000, 3_000), seed);
        (0..count).map(|_| schedule.next_step(0).unwrap()).collect()
    }

    #[test]
    fn same_seed_same_schedule_within_bounds() {
        let a = steps(11, 50);
        assert_eq!(a, steps(11, 50));
        assert_ne!(a, steps(12, 50));
        for step in &a {
            assert!((2_000..=4_000).contains(&step.fault_ms));
            assert!((1_000..=3_000).contains(&step.quiet_ms));
        }
        let kinds: std::collections::BTreeSet<_> = a.iter().map(|s| s.fault.family()).collect();
        assert_eq!(kinds.len(), 3, "50 steps over 3 families use all of them");
    }

    #[test]
    fn a_leader_share_aims_that_share_at_the_leader() {
        let faults = Fault::parse_names(&["kill", "partition"]).unwrap();
        let leader_faults = |share: Option<f64>| {
            let mut schedule = Schedule::new(faults.clone(), (1, 1), (1, 1), 3).with_leader_share(share);
            (0..1_000).filter(|_| schedule.next_step(0).unwrap().fault.is_leader_targeted()).count()
        };
        // Three leader targets among ten faults: about 300 of 1,000 uniform draws.
        assert!((250..350).contains(&leader_faults(None)), "{}", leader_faults(None));
        assert!((450..550).contains(&leader_faults(Some(0.5))), "{}", leader_faults(Some(0.5)));
        assert_eq!(leader_faults(Some(1.0)), 1_000);
        assert_eq!(leader_faults(Some(0.0)), 0);
        let only_random = Fault::parse_names(&["kill-random"]).unwrap();
        let mut schedule = Schedule::new(only_random, (1, 1), (1, 1), 3).with_leader_share(Some(1.0));
        assert_eq!(schedule.next_step(0).unwrap().fault.name(), "kill-random", "no leader target: the share cannot apply");
    }

    #[test]
    fn no_faults_no_steps() {
        let mut schedule = Schedule::new(Vec::new(), (1, 1), (1, 1), 0);
        assert_eq!(schedule.next_step(0), None);
    }

    #[test]
    fn a_recorded_schedule_is_due_at_its_own_times() {
        let event = |at_ms: u64, targets: Option<Targets>| RecordedEvent {
            at_ms,
            fault: Fault::parse_name("kill-leader").unwrap()[0],
            duration_ms: 700,
            group: "kill".into(),
            targets,
            leader: Some(2),
        };
        let mut schedule = Schedule::recorded(vec![event(1_000, Some(Targets::Nodes(vec![2]))), event(3_000, None)]);
        let first = schedule.next_step(400).unwrap();
        assert_eq!((first.quiet_ms, first.fault_ms), (600, 700));
        assert_eq!(first.recorded, Some((Targets::Nodes(vec![2]), Some(2))));
        let second = schedule.next_step(3_500).unwrap();
        assert_eq!(second.quiet_ms, 0, "a run behind its schedule injects at once");
        assert_eq!(second.recorded, None, "no recorded targets: the nemesis draws them");
        assert_eq!(schedule.next_step(4_000), None);
    }
}
