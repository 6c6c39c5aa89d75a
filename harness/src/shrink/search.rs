//! The search: delta debugging over the events, then the duration, time
//! limit, workload and node passes, each asking the oracle and keeping
//! what still fails.
use super::{Candidate, RATE_PER_S_MIN};

/// Runs a candidate: `Some(true)` when it fails the same way, `None` when
/// the budget is spent.
pub type Oracle<'a> = dyn FnMut(&Candidate) -> Option<bool> + 'a;

/// What the search ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct Shrunk {
    /// The smallest candidate that failed (the start, if nothing smaller did).
    pub best: Candidate,
    /// Every candidate that failed, in the order found (the start first,
    /// `best` last): a confirmation can step back along it when the best
    /// turns out to fail rarely.
    pub accepted: Vec<Candidate>,
    /// Candidates the oracle ran.
    pub tried: u32,
    /// The budget ran out before every pass was done.
    pub out_of_budget: bool,
}

/// What the system under test allows the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Floors {
    /// The shortest time limit a spec accepts.
    pub time_limit_ms: u64,
    /// The node counts below the start's that the system's spec accepts,
    /// ascending; the node pass tries them smallest first.
    pub node_counts: Vec<usize>,
}

/// Stops the search when the oracle has no budget left.
struct OutOfBudget;

struct Search<'a, 'o> {
    oracle: &'a mut Oracle<'o>,
    best: Candidate,
    accepted: Vec<Candidate>,
    tried: u32,
    floors: Floors,
}

impl Search<'_, '_> {
    /// Asks the oracle; a failing candidate becomes the best.
    fn fails(&mut self, candidate: Candidate) -> Result<bool, OutOfBudget> {
        if candidate == self.best {
            return Ok(true);
        }
        let failed = (self.oracle)(&candidate).ok_or(OutOfBudget)?;
        self.tried += 1;
        if failed {
            self.accepted.push(candidate.clone());
            self.best = candidate;
        }
        Ok(failed)
    }

    /// The best candidate with only `events`, its test ending a second
    /// after their last heal: what comes later cannot cause the failure,
    /// and shorter runs let the budget try more subsets.
    fn with_events(&self, events: Vec<crate::nemesis::recorded::RecordedEvent>) -> Candidate {
        Candidate { events, ..self.best.clone() }.with_time_limit_fitted(self.floors.time_limit_ms)
    }

    /// Zeller's ddmin over the best candidate's events: try each of n
    /// chunks alone, then each complement; on a failure keep it and
    /// coarsen, else split finer until chunks are single events. An
    /// empty schedule is tried first (some bugs need no fault at all).
    fn events(&mut self) -> Result<(), OutOfBudget> {
        if self.best.events.is_empty() || self.fails(self.with_events(Vec::new()))? {
            return Ok(());
        }
        let mut chunks = 2;
        while self.best.events.len() >= 2 {
            let events = self.best.events.clone();
            let size = events.len().div_ceil(chunks);
            let parts: Vec<Vec<_>> = events.chunks(size).map(<[_]>::to_vec).collect();
            let mut reduced = false;
            for part in &parts {
                if self.fails(self.with_events(part.clone()))? {
                    chunks = 2;
                    reduced = true;
                    break;
                }
            }
            if !reduced && parts.len() > 2 {
                for index in 0..parts.len() {
                    let complement: Vec<_> =
                        parts.iter().enumerate().filter(|(i, _)| *i != index).flat_map(|(_, part)| part.clone()).collect();
                    if self.fails(self.with_events(complement))? {
                        chunks = (chunks - 1).max(2);
                        reduced = true;
                        break;
                    }
                }
            }
            if !reduced {
                if chunks >= events.len() {
                    break;
                }
                chunks = (chunks * 2).min(events.len());
            }
        }
        Ok(())
    }

    /// Tries `floor` of the best candidate first (one run when the bug
    /// does not care), then applies `halve` while the result still fails
    /// and differs.
    fn descend(&mut self, floor: impl Fn(&Candidate) -> Candidate, halve: impl Fn(&Candidate) -> Candidate) -> Result<(), OutOfBudget> {
        let lowest = floor(&self.best);
        if lowest == self.best || self.fails(lowest)? {
            return Ok(());
        }
        loop {
            let next = halve(&self.best);
            if next == self.best || !self.fails(next)? {
                return Ok(());
            }
        }
    }

    fn passes(&mut self) -> Result<(), OutOfBudget> {
        let time_limit_floor_ms = self.floors.time_limit_ms;
        self.events()?;
        self.descend(|c| c.with_faults_scaled(0.0), |c| c.with_faults_scaled(0.5))?;
        self.descend(|c| c.with_gaps_scaled(0.0), |c| c.with_gaps_scaled(0.5))?;
        let fitted = self.best.with_time_limit_fitted(time_limit_floor_ms);
        if fitted != self.best {
            self.fails(fitted)?;
        }
        let keys = |c: &Candidate, keys_active: u32| Candidate { keys_active, ..c.clone() };
        self.descend(|c| keys(c, 1), |c| keys(c, (c.keys_active / 2).max(1)))?;
        let clients = |c: &Candidate, concurrency: usize| Candidate { concurrency, ..c.clone() };
        self.descend(|c| clients(c, 1), |c| clients(c, (c.concurrency / 2).max(1)))?;
        let rate = |c: &Candidate, rate_per_s: f64| Candidate { rate_per_s: rate_per_s.max(RATE_PER_S_MIN).min(c.rate_per_s), ..c.clone() };
        self.descend(|c| rate(c, RATE_PER_S_MIN), |c| rate(c, c.rate_per_s / 2.0))?;
        self.nodes()
    }

    /// The smallest node count that still fails, trying each allowed count
    /// below the best's (and at or above what its faults need) in turn.
    fn nodes(&mut self) -> Result<(), OutOfBudget> {
        let counts: Vec<usize> = self.floors.node_counts.clone();
        for nodes in counts {
            if nodes >= self.best.nodes || nodes < self.best.nodes_min() {
                continue;
            }
            if self.fails(self.best.with_nodes(nodes))? {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Shrinks `start` (which failed) as far as the oracle and its budget
/// allow, within what `floors` allows.
pub fn shrink(start: Candidate, floors: Floors, oracle: &mut Oracle<'_>) -> Shrunk {
    let mut search = Search { oracle, best: start.clone(), accepted: vec![start], tried: 0, floors };
    let out_of_budget = search.passes().is_err();
    Shrunk { best: search.best, accepted: search.accepted, tried: search.tried, out_of_budget }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shrink::tests::event;

    fn start(count: u64) -> Candidate {
        let events = (0..count).map(|i| event(1_000 * i, 800, &format!("g{i}"))).collect();
        Candidate { events, time_limit_ms: 30_000, keys_active: 8, concurrency: 10, rate_per_s: 200.0, nodes: 5 }
    }

    fn floors() -> Floors {
        Floors { time_limit_ms: 2_000, node_counts: vec![1, 3] }
    }

    /// A bug that needs the faults starting at 3 s and at 7 s, each at
    /// least 200 ms long, and two keys.
    fn needs_two(candidate: &Candidate) -> bool {
        let has = |at: u64| candidate.events.iter().any(|e| e.group == format!("g{}", at / 1_000) && e.duration_ms >= 200);
        has(3_000) && has(7_000) && candidate.keys_active >= 2
    }

    #[test]
    fn ddmin_finds_the_two_events_and_the_passes_shrink_the_rest() {
        let mut runs = 0;
        let mut oracle = |c: &Candidate| {
            runs += 1;
            Some(needs_two(c))
        };
        let shrunk = shrink(start(10), floors(), &mut oracle);
        let groups: Vec<&str> = shrunk.best.events.iter().map(|e| e.group.as_str()).collect();
        assert_eq!(groups, ["g3", "g7"]);
        assert!(shrunk.best.events.iter().all(|e| (200..400).contains(&e.duration_ms)), "{:?}", shrunk.best.events);
        assert!(shrunk.best.events[0].at_ms < 3_000, "quiet time shrank: {:?}", shrunk.best.events);
        assert!(shrunk.best.time_limit_ms < 30_000);
        assert_eq!(shrunk.best.keys_active, 2);
        assert_eq!((shrunk.best.concurrency, shrunk.best.rate_per_s), (1, RATE_PER_S_MIN));
        assert_eq!(shrunk.best.nodes, 1, "kill-random runs on one node, and the bug needs no more");
        assert!(!shrunk.out_of_budget);
        assert_eq!(shrunk.tried, runs);
        assert_eq!(shrunk.accepted.first(), Some(&start(10)), "the start is the first accepted");
        assert_eq!(shrunk.accepted.last(), Some(&shrunk.best));
        assert!(shrunk.accepted.iter().all(needs_two), "only failing candidates are accepted");
        assert!(runs <= 50, "{runs} runs for 10 events");
        eprintln!("{runs} runs");
    }

    #[test]
    fn a_spent_budget_keeps_the_best_so_far() {
        let mut left = 3;
        let mut oracle = |c: &Candidate| {
            if left == 0 {
                return None;
            }
            left -= 1;
            Some(needs_two(c))
        };
        let shrunk = shrink(start(10), floors(), &mut oracle);
        assert!(shrunk.out_of_budget);
        assert_eq!(shrunk.tried, 3);
        assert!(needs_two(&shrunk.best), "the best still fails");
    }

    #[test]
    fn the_node_pass_stops_at_the_smallest_count_that_still_fails() {
        let mut tried_nodes = Vec::new();
        let mut oracle = |c: &Candidate| {
            if c.nodes != 5 {
                tried_nodes.push(c.nodes);
            }
            Some(needs_two(c) && c.nodes >= 3)
        };
        let shrunk = shrink(start(10), floors(), &mut oracle);
        assert_eq!(shrunk.best.nodes, 3);
        assert_eq!(tried_nodes, [1, 3], "smallest first, then the next allowed count");
    }

    #[test]
    fn a_failure_without_faults_shrinks_to_no_events() {
        let shrunk = shrink(start(4), floors(), &mut |_| Some(true));
        assert!(shrunk.best.events.is_empty());
    }
}
