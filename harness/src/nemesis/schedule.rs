//! When to break things: a seeded sequence of (quiet, fault, duration)
//! steps. Fault and heal alternate; the runner ends every test with a final
//! heal whatever the schedule says.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Fault;

/// One cycle: stay quiet for `quiet_ms`, then inject `fault` for `fault_ms`,
/// then heal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleStep {
    pub quiet_ms: u64,
    pub fault: Fault,
    pub fault_ms: u64,
}

pub struct Schedule {
    faults: Vec<Fault>,
    fault_ms_range: (u64, u64),
    quiet_ms_range: (u64, u64),
    rng: ChaCha8Rng,
}

impl Schedule {
    /// `faults` may be empty: the schedule then never yields a step.
    pub fn new(faults: Vec<Fault>, fault_ms_range: (u64, u64), quiet_ms_range: (u64, u64), seed: u64) -> Self {
        assert!(fault_ms_range.0 <= fault_ms_range.1, "fault duration range is validated in the spec");
        assert!(quiet_ms_range.0 <= quiet_ms_range.1, "heal duration range is validated in the spec");
        Schedule { faults, fault_ms_range, quiet_ms_range, rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5343_4845_4455_4c45) }
    }

    pub fn next_step(&mut self) -> Option<ScheduleStep> {
        if self.faults.is_empty() {
            return None;
        }
        let quiet_ms = self.rng.random_range(self.quiet_ms_range.0..=self.quiet_ms_range.1);
        let fault = self.faults[self.rng.random_range(0..self.faults.len())];
        let fault_ms = self.rng.random_range(self.fault_ms_range.0..=self.fault_ms_range.1);
        Some(ScheduleStep { quiet_ms, fault, fault_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(seed: u64, count: usize) -> Vec<ScheduleStep> {
        let mut schedule = Schedule::new(Fault::parse_names(&["kill", "pause", "partition"]).unwrap(), (2_000, 4_000), (1_000, 3_000), seed);
        (0..count).map(|_| schedule.next_step().unwrap()).collect()
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
    fn no_faults_no_steps() {
        let mut schedule = Schedule::new(Vec::new(), (1, 1), (1, 1), 0);
        assert_eq!(schedule.next_step(), None);
    }
}
