//! Process and real-time order between transactions: the edges that make a
//! serializable order also agree with each session and with the wall
//! clock (Elle's `:process` and `:realtime` graphs).
//!
//! Real-time edges are kept transitively reduced, as Elle does: a
//! transaction gets edges only from the *frontier*, the completed
//! transactions no later completed one follows. A transaction that
//! completes removes its own predecessors from the frontier (they reach
//! everything after it through it), so the frontier stays about as large
//! as the number of transactions running at once, not the history.
use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use super::{Txn, TxnOutcome};
use crate::op::RETURN_NEVER_NS;

/// Each process's transactions in the order it invoked them, as edges
/// between indices into `txns`. Aborted ones take part in no edge.
pub(super) fn process_edges(txns: &[Txn]) -> Vec<(usize, usize)> {
    let mut by_process: FxHashMap<u64, Vec<usize>> = FxHashMap::default();
    for (index, txn) in txns.iter().enumerate().filter(|(_, txn)| txn.outcome != TxnOutcome::Fail) {
        by_process.entry(txn.process).or_default().push(index);
    }
    let mut edges = Vec::new();
    for indices in by_process.values_mut() {
        indices.sort_by_key(|index| (txns[*index].call_ns, txns[*index].id));
        edges.extend(indices.windows(2).map(|pair| (pair[0], pair[1])));
    }
    edges
}

/// `a` → `b` when committed `a` completed strictly before `b` was invoked,
/// transitively reduced (see the module docs).
pub(super) fn realtime_edges(txns: &[Txn]) -> Vec<(usize, usize)> {
    let live = txns.iter().enumerate().filter(|(_, txn)| txn.outcome != TxnOutcome::Fail);
    realtime_order(live.map(|(index, txn)| {
        let completed = txn.outcome == TxnOutcome::Ok && txn.return_ns != RETURN_NEVER_NS;
        (index, txn.call_ns, completed.then_some(txn.return_ns))
    }))
}

/// Real-time order, transitively reduced, between items given as (id,
/// invoked at, completed at if they completed).
pub(super) fn realtime_order(items: impl Iterator<Item = (usize, u64, Option<u64>)>) -> Vec<(usize, usize)> {
    // (time, 0 = invoke before 1 = completion at the same instant, id):
    // equal times are not "before".
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (index, call_ns, return_ns) in items {
        events.push((call_ns, 0, index));
        if let Some(return_ns) = return_ns {
            events.push((return_ns, 1, index));
        }
    }
    events.sort_unstable();
    // Ordered, so the edges (and so the cycles reported) do not depend on
    // hashing; removal costs the predecessors' count, not the frontier's
    // size, which histories without times (all zero) let grow to every
    // transaction.
    let mut frontier: BTreeSet<usize> = BTreeSet::new();
    let mut predecessors: FxHashMap<usize, Vec<usize>> = FxHashMap::default();
    let mut edges = Vec::new();
    for (_, kind, index) in events {
        if kind == 0 {
            if !frontier.is_empty() {
                let before: Vec<usize> = frontier.iter().copied().collect();
                edges.extend(before.iter().map(|before| (*before, index)));
                predecessors.insert(index, before);
            }
            continue;
        }
        for reached in predecessors.remove(&index).unwrap_or_default() {
            frontier.remove(&reached);
        }
        frontier.insert(index);
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(id: u64, process: u64, call_ns: u64, return_ns: u64) -> Txn {
        Txn { id, process, outcome: TxnOutcome::Ok, mops: Vec::new(), call_ns, return_ns }
    }

    #[test]
    fn realtime_edges_are_reduced_to_the_frontier() {
        // Intervals 0 [0,10], 1 [5,20], 2 [12,30], 3 [25,40], 4 [35,50].
        // 4 follows 0, 1 and 2, but 0 → 4 is left out: 0 → 2 → 4 says it.
        let txns = [txn(0, 0, 0, 10), txn(1, 1, 5, 20), txn(2, 2, 12, 30), txn(3, 3, 25, 40), txn(4, 4, 35, 50)];
        let mut edges = realtime_edges(&txns);
        edges.sort_unstable();
        assert_eq!(edges, [(0, 2), (0, 3), (1, 3), (1, 4), (2, 4)]);
    }

    #[test]
    fn equal_times_are_not_before_and_unknown_outcomes_only_follow() {
        let mut info = txn(2, 2, 11, RETURN_NEVER_NS);
        info.outcome = TxnOutcome::Info;
        let txns = [txn(0, 0, 0, 10), txn(1, 1, 10, 20), info, txn(3, 3, 30, 40)];
        let mut edges = realtime_edges(&txns);
        edges.sort_unstable();
        assert_eq!(edges, [(0, 2), (0, 3), (1, 3)], "0 ends as 1 begins: no edge; the info never completes");
    }

    #[test]
    fn process_edges_follow_invocation_order_per_process() {
        let mut aborted = txn(5, 0, 15, 16);
        aborted.outcome = TxnOutcome::Fail;
        let txns = [txn(3, 0, 20, 30), txn(1, 0, 0, 10), txn(2, 1, 5, 6), aborted];
        let mut edges = process_edges(&txns);
        edges.sort_unstable();
        assert_eq!(edges, [(1, 0)]);
    }
}
