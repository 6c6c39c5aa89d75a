//! The search for one key: Wing & Gong's backtracking with Lowe's
//! memoisation, in Porcupine's form.
//!
//! Calls and returns sit in one doubly linked list in time order. The search
//! walks it from the front: at a call it tries to linearize that operation
//! now (the model accepts it, and the resulting configuration is new), lifts
//! it out of the list and restarts from the front; at a return it is stuck
//! (that operation must have been linearized already), so it undoes the last
//! linearized operation and tries the next candidate. An empty list means
//! every operation was linearized.
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::cache::{op_hash, Cache};
use crate::model::Model;
use crate::op::{Op, RETURN_NEVER_NS};
use crate::value::Outcome;

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;
/// How often (in search steps) the clock and the cancel flag are read.
const BUDGET_CHECK_STEPS: u64 = 4096;

/// Limits on one partition's search.
pub struct Budget<'a> {
    pub deadline: Option<Instant>,
    /// Memory of one search: its cache (with the states' heap parts), its
    /// stack of linearized calls and its entry list.
    pub memory_bytes_max: u64,
    pub cancel: &'a AtomicBool,
}

/// Where the search got furthest before it had to give up.
pub struct Stuck {
    /// Indexes (into the searched ops) of the longest linearizable prefix.
    pub prefix: Vec<u32>,
    /// The operation whose return was reached before it could be linearized.
    pub stuck_op: u32,
    /// Operations called but not linearized at that point (stuck_op included).
    pub concurrent: Vec<u32>,
    /// The model state after the prefix.
    pub state: String,
}

pub enum SearchOutcome {
    Linearizable,
    NotLinearizable(Stuck),
    OutOfBudget(String),
}

/// What a search did, for reports and benchmarks.
pub struct SearchReport {
    pub outcome: SearchOutcome,
    /// Distinct (linearized set, state) configurations explored.
    pub configurations: u64,
}

/// Call and return entries as a linked list over parallel arrays.
struct Entries {
    next: Vec<u32>,
    prev: Vec<u32>,
    op_of: Vec<u32>,
    /// For a call entry, its return entry; NIL for a return entry.
    match_of: Vec<u32>,
}

impl Entries {
    fn new(ops: &[&Op]) -> Entries {
        // (time, is_return, op): a call sorts before a return at equal time,
        // so operations that touch in time count as concurrent.
        let mut order: Vec<(u64, bool, u32)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            assert!(op.call_ns <= op.return_ns, "operation returns before its call");
            order.push((op.call_ns, false, i as u32));
            order.push((op.return_ns, true, i as u32));
        }
        order.sort_unstable();
        let node_count = order.len() + 1;
        let mut entries = Entries {
            next: vec![NIL; node_count],
            prev: vec![NIL; node_count],
            op_of: vec![NIL; node_count],
            match_of: vec![NIL; node_count],
        };
        let mut call_node = vec![NIL; ops.len()];
        for (position, (_, is_return, op)) in order.iter().enumerate() {
            let node = position as u32 + 1;
            entries.op_of[node as usize] = *op;
            entries.prev[node as usize] = node - 1;
            entries.next[node as usize - 1] = node;
            if *is_return {
                entries.match_of[call_node[*op as usize] as usize] = node;
            } else {
                call_node[*op as usize] = node;
            }
        }
        entries
    }

    fn is_call(&self, node: u32) -> bool {
        self.match_of[node as usize] != NIL
    }

    fn unlink(&mut self, node: u32) {
        let (prev, next) = (self.prev[node as usize], self.next[node as usize]);
        self.next[prev as usize] = next;
        if next != NIL {
            self.prev[next as usize] = prev;
        }
    }

    fn relink(&mut self, node: u32) {
        let (prev, next) = (self.prev[node as usize], self.next[node as usize]);
        self.next[prev as usize] = node;
        if next != NIL {
            self.prev[next as usize] = node;
        }
    }

    /// Takes a call and its return out of the list.
    fn lift(&mut self, call: u32) {
        self.unlink(call);
        self.unlink(self.match_of[call as usize]);
    }

    /// Exactly undoes `lift` (lifts are undone in reverse order).
    fn unlift(&mut self, call: u32) {
        self.relink(self.match_of[call as usize]);
        self.relink(call);
    }
}

/// The linearized set as a bitset, with the hash of its closed operations
/// (the cache's key: see [`Cache`]).
struct Linearized {
    bits: Vec<u64>,
    closed_hash: u64,
    /// Closed operations linearized so far (see [`open_ops`]); the search
    /// succeeds at all of them.
    closed_count: usize,
}

impl Linearized {
    fn toggle(&mut self, op: u32, open: &[u64]) {
        let (word, bit) = (op as usize / 64, 1u64 << (op % 64));
        self.bits[word] ^= bit;
        if open[word] & bit == 0 {
            self.closed_hash ^= op_hash(op);
            if self.bits[word] & bit != 0 {
                self.closed_count += 1;
            } else {
                self.closed_count -= 1;
            }
        }
    }
}

/// Bitset of the open operations: unknown outcome and no return, so nothing
/// ever forces them. Each may have taken effect at any point after its call,
/// or never: a linearization may leave it out, so the search is done once
/// every closed operation is linearized.
fn open_ops(ops: &[&Op], words: usize) -> Vec<u64> {
    let mut open = vec![0u64; words];
    for (i, op) in ops.iter().enumerate() {
        if is_open_op(op) {
            open[i / 64] |= 1u64 << (i % 64);
        }
    }
    open
}

/// Unknown outcome and no return (see [`open_ops`]).
pub fn is_open_op(op: &Op) -> bool {
    op.outcome == Outcome::Unknown && op.return_ns == RETURN_NEVER_NS
}

fn is_open(open: &[u64], op: u32) -> bool {
    open[op as usize / 64] & (1u64 << (op % 64)) != 0
}

/// The order in which a walk tries the candidates at one point.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    /// In call order, open operations among the others (Porcupine's).
    Calls,
    /// Closed operations first; open ones once none of those fits, so a
    /// configuration that spends fewer of them is explored first and the
    /// cache then skips those that spend more (see [`Cache`]).
    OpenLast,
}

/// Search steps of the first round; each round after it allows 4x more.
const ROUND_STEPS_FIRST: u64 = 1 << 16;

/// Searches one key's operations for a linearization, in `cache` (emptied
/// first; its allocations are reused).
///
/// With open operations, neither order wins everywhere (measured over 139
/// histories of our own runs and Porcupine's etcd logs): call order is
/// quick when a crashed write took effect and a later read shows it, open
/// operations last when they did not (one such key: 9.2 M configurations in
/// call order, out of memory; 628 with them last). So the two take turns
/// with a growing step allowance, sharing the cache: every configuration a
/// round finished with is known to fail, and the next round skips it.
pub fn search<M: Model>(model: &M, ops: &[&Op], budget: &Budget, cache: &mut Cache<M::State>) -> SearchReport {
    search_from(model, ops, budget, cache, ROUND_STEPS_FIRST)
}

fn search_from<M: Model>(model: &M, ops: &[&Op], budget: &Budget, cache: &mut Cache<M::State>, first_steps: u64) -> SearchReport {
    let open = open_ops(ops, ops.len().div_ceil(64).max(1));
    cache.reset(&open);
    let key = Key { model, ops, open: &open, budget };
    let mut best = None;
    let outcome = if open.iter().all(|word| *word == 0) {
        search_with(&key, Round { order: Order::Calls, steps_max: u64::MAX }, cache, &mut best)
    } else {
        search_in_turns(&key, first_steps, cache, &mut best)
    };
    let outcome = outcome.expect("a round without a step limit decides");
    SearchReport { outcome, configurations: cache.len() as u64 }
}

/// What one key's search works on.
struct Key<'a, M> {
    model: &'a M,
    ops: &'a [&'a Op],
    /// The open operations among `ops` ([`open_ops`]).
    open: &'a [u64],
    budget: &'a Budget<'a>,
}

fn search_in_turns<M: Model>(key: &Key<M>, first_steps: u64, cache: &mut Cache<M::State>, best: &mut Option<(Stuck, M::State)>) -> Option<SearchOutcome> {
    let mut steps_max = first_steps;
    loop {
        for order in [Order::Calls, Order::OpenLast] {
            let outcome = search_with(key, Round { order, steps_max }, cache, best);
            if outcome.is_some() {
                return outcome;
            }
        }
        steps_max = steps_max.saturating_mul(4);
    }
}

/// One walk of the search: its order and how far it may go.
#[derive(Clone, Copy)]
struct Round {
    order: Order,
    steps_max: u64,
}

/// The search in one order; `None` when `round.steps_max` ran out first.
/// `best` is the furthest stuck point of every round so far.
fn search_with<M: Model>(key: &Key<M>, round: Round, cache: &mut Cache<M::State>, best: &mut Option<(Stuck, M::State)>) -> Option<SearchOutcome> {
    let Key { model, ops, open, budget } = *key;
    let mut entries = Entries::new(ops);
    let words = open.len();
    let closed_total = ops.len() - open.iter().map(|w| w.count_ones() as usize).sum::<usize>();
    let mut linearized = Linearized { bits: vec![0; words], closed_hash: 0, closed_count: 0 };
    // Each linearized call, the state before it and its cache entry.
    let mut calls: Vec<(u32, M::State, u32)> = Vec::new();
    // The entry list (four u32 arrays) and the bitset do not grow.
    let fixed_bytes = (entries.next.len() * 4 * std::mem::size_of::<u32>() + linearized.bits.len() * 8) as u64;
    let memory_bytes = |cache: &Cache<M::State>, calls: &Vec<(u32, M::State, u32)>| {
        // The states on the stack share their heap parts with the cache.
        cache.bytes() + (calls.capacity() * std::mem::size_of::<(u32, M::State, u32)>()) as u64 + fixed_bytes
    };
    let mut heap_bytes_checked: u64 = 0;
    let mut state = model.init();
    let open_last = round.order == Order::OpenLast;
    // In `Order::OpenLast`, whether this walk tries the open calls.
    let mut open_walk = false;
    let mut node = entries.next[HEAD as usize];
    let mut steps: u64 = 0;
    while linearized.closed_count < closed_total {
        assert!(node != NIL, "walked off the entry list");
        steps += 1;
        if steps % BUDGET_CHECK_STEPS == 0 {
            if let Some(reason) = over_budget(budget, cache, memory_bytes(cache, &calls)) {
                return Some(SearchOutcome::OutOfBudget(reason));
            }
        }
        if steps > round.steps_max {
            // The configurations on the stack stay unfinished in the cache.
            return None;
        }
        if !entries.is_call(node) {
            if open_last && !open_walk {
                open_walk = true;
                node = entries.next[HEAD as usize];
                continue;
            }
            // The furthest stuck point and its model state, described only
            // once the search gives up: a deeper one is found often, a
            // counterexample rarely.
            if best.as_ref().is_none_or(|(b, _)| calls.len() > b.prefix.len()) {
                *best = Some((stuck_at(&entries, &calls, node), state.clone()));
            }
            let Some((call, previous, entry)) = calls.pop() else {
                let (mut stuck, stuck_state) = best.take().expect("a stuck point is recorded before giving up");
                stuck.state = model.describe_state(&stuck_state);
                return Some(SearchOutcome::NotLinearizable(stuck));
            };
            cache.finish(entry);
            state = previous;
            let undone = entries.op_of[call as usize];
            linearized.toggle(undone, open);
            entries.unlift(call);
            // The walk goes on past the undone call, in the walk it was in.
            open_walk = open_last && is_open(open, undone);
            node = entries.next[call as usize];
            continue;
        }
        let op = entries.op_of[node as usize];
        let is_open = is_open(open, op);
        if open_last && is_open != open_walk {
            node = entries.next[node as usize];
            continue;
        }
        // An open operation that leaves the state as it is changes nothing
        // but its own pending status: leaving it out does at least as well.
        let stepped = model.step(&state, ops[op as usize]).filter(|next| !(is_open && *next == state));
        if let Some(next_state) = stepped {
            linearized.toggle(op, open);
            if let Some(entry) = cache.insert(&linearized.bits, linearized.closed_hash, &next_state, |s| model.state_heap_bytes(s)) {
                // One stored state can be large (a long string): check the
                // memory at once, not up to BUDGET_CHECK_STEPS states later.
                if cache.state_heap_bytes() != heap_bytes_checked {
                    heap_bytes_checked = cache.state_heap_bytes();
                    if let Some(reason) = over_memory(budget, cache, memory_bytes(cache, &calls)) {
                        return Some(SearchOutcome::OutOfBudget(reason));
                    }
                }
                calls.push((node, std::mem::replace(&mut state, next_state), entry));
                entries.lift(node);
                open_walk = false;
                node = entries.next[HEAD as usize];
                continue;
            }
            linearized.toggle(op, open);
        }
        node = entries.next[node as usize];
    }
    Some(SearchOutcome::Linearizable)
}

fn over_budget<S: Eq + std::hash::Hash>(budget: &Budget, cache: &Cache<S>, memory_bytes: u64) -> Option<String> {
    if budget.cancel.load(Ordering::Relaxed) {
        return Some("cancelled".to_string());
    }
    if budget.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
        budget.cancel.store(true, Ordering::Relaxed);
        return Some("the time budget ran out".to_string());
    }
    over_memory(budget, cache, memory_bytes)
}

fn over_memory<S: Eq + std::hash::Hash>(budget: &Budget, cache: &Cache<S>, memory_bytes: u64) -> Option<String> {
    if memory_bytes <= budget.memory_bytes_max {
        return None;
    }
    Some(format!(
        "the memory budget ran out ({} cached configurations, {} MiB)",
        cache.len(),
        memory_bytes >> 20
    ))
}

/// The stuck point at `stuck_node`; its `state` is filled in by the caller.
fn stuck_at<S>(entries: &Entries, calls: &[(u32, S, u32)], stuck_node: u32) -> Stuck {
    let stuck_op = entries.op_of[stuck_node as usize];
    let mut concurrent = vec![stuck_op];
    let mut node = entries.next[HEAD as usize];
    while node != stuck_node && node != NIL {
        if entries.is_call(node) && entries.op_of[node as usize] != stuck_op {
            concurrent.push(entries.op_of[node as usize]);
        }
        node = entries.next[node as usize];
    }
    Stuck {
        prefix: calls.iter().map(|(call, _, _)| entries.op_of[*call as usize]).collect(),
        stuck_op,
        concurrent,
        state: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::model::CasRegister;
    use crate::read::read_path;

    fn etcd_logs() -> Vec<PathBuf> {
        let shared = std::env::var_os("FAULTLINE_SHARED")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"), PathBuf::from);
        let dir = shared.join("data/porcupine/jepsen");
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
            .map(|entry| entry.expect("a readable folder").path())
            .collect();
        logs.sort();
        logs
    }

    fn linearizable(outcome: &SearchOutcome) -> bool {
        match outcome {
            SearchOutcome::Linearizable => true,
            SearchOutcome::NotLinearizable(_) => false,
            SearchOutcome::OutOfBudget(reason) => panic!("unbounded search ran out: {reason}"),
        }
    }

    /// Rounds of a few steps each stop and resume the search hundreds of
    /// times per key, trusting the cache across orders: every etcd log
    /// (crashed writes in most, both verdicts) must get the answer of one
    /// uninterrupted search in call order, as Porcupine searches.
    #[test]
    fn searching_in_short_turns_answers_as_one_search_in_call_order() {
        let cancel = AtomicBool::new(false);
        let budget = Budget { deadline: None, memory_bytes_max: u64::MAX, cancel: &cancel };
        let mut cache = Cache::new(1);
        let (mut keys_with_open, mut not_linearizable, mut rounds_cut) = (0, 0, 0);
        for log in etcd_logs() {
            let (_, history) = read_path(&log, 2).unwrap_or_else(|err| panic!("{}: {err}", log.display()));
            for ops in &history.ops_by_key {
                let ops: Vec<&Op> = ops.iter().filter(|op| !(op.outcome == Outcome::Unknown && op.f == crate::value::Func::Read)).collect();
                let open = open_ops(&ops, ops.len().div_ceil(64).max(1));
                cache.reset(&open);
                let one_round = Round { order: Order::Calls, steps_max: u64::MAX };
                let key = Key { model: &CasRegister, ops: &ops, open: &open, budget: &budget };
                let expected = search_with(&key, one_round, &mut cache, &mut None).expect("decided");
                let in_turns = search_from(&CasRegister, &ops, &budget, &mut cache, 16);
                assert_eq!(linearizable(&in_turns.outcome), linearizable(&expected), "{}", log.display());
                keys_with_open += usize::from(open.iter().any(|word| *word != 0));
                not_linearizable += usize::from(!linearizable(&expected));
                // Steps outnumber configurations: more than 16 of them
                // means the first round was cut.
                rounds_cut += usize::from(open.iter().any(|word| *word != 0) && in_turns.configurations > 16);
            }
        }
        assert!(keys_with_open >= 50, "crashed writes in {keys_with_open} keys");
        assert!(not_linearizable >= 10, "{not_linearizable} keys not linearizable");
        assert!(rounds_cut >= 50, "{rounds_cut} searches went past their first round");
        eprintln!("{keys_with_open} keys with crashed writes, {not_linearizable} not linearizable, {rounds_cut} cut");
    }
}
