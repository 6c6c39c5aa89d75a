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

/// The linearized set as a bitset, with its hash.
struct Linearized {
    bits: Vec<u64>,
    hash: u64,
    /// Closed operations linearized so far (see [`open_ops`]); the search
    /// succeeds at all of them.
    closed_count: usize,
}

impl Linearized {
    fn toggle(&mut self, op: u32, open: &[u64]) {
        let (word, bit) = (op as usize / 64, 1u64 << (op % 64));
        self.bits[word] ^= bit;
        self.hash ^= op_hash(op);
        if open[word] & bit == 0 {
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
        if op.outcome == Outcome::Unknown && op.return_ns == RETURN_NEVER_NS {
            open[i / 64] |= 1u64 << (i % 64);
        }
    }
    open
}

/// Searches one key's operations for a linearization, in `cache` (emptied
/// first; its allocations are reused).
pub fn search<M: Model>(model: &M, ops: &[&Op], budget: &Budget, cache: &mut Cache<M::State>) -> SearchReport {
    cache.reset(ops.len().div_ceil(64).max(1));
    let outcome = search_with(model, ops, budget, cache);
    SearchReport { outcome, configurations: cache.len() as u64 }
}

fn search_with<M: Model>(model: &M, ops: &[&Op], budget: &Budget, cache: &mut Cache<M::State>) -> SearchOutcome {
    let mut entries = Entries::new(ops);
    let words = ops.len().div_ceil(64).max(1);
    let open = open_ops(ops, words);
    let closed_total = ops.len() - open.iter().map(|w| w.count_ones() as usize).sum::<usize>();
    let mut linearized = Linearized { bits: vec![0; words], hash: 0, closed_count: 0 };
    let mut calls: Vec<(u32, M::State)> = Vec::new();
    // The entry list (four u32 arrays) and the bitset do not grow.
    let fixed_bytes = (entries.next.len() * 4 * std::mem::size_of::<u32>() + linearized.bits.len() * 8) as u64;
    let memory_bytes = |cache: &Cache<M::State>, calls: &Vec<(u32, M::State)>| {
        // The states on the stack share their heap parts with the cache.
        cache.bytes() + (calls.capacity() * std::mem::size_of::<(u32, M::State)>()) as u64 + fixed_bytes
    };
    let mut heap_bytes_checked: u64 = 0;
    let mut state = model.init();
    // The furthest stuck point and its model state, described only once the
    // search gives up: a deeper one is found often, a counterexample rarely.
    let mut best: Option<(Stuck, M::State)> = None;
    let mut node = entries.next[HEAD as usize];
    let mut steps: u64 = 0;
    while linearized.closed_count < closed_total {
        assert!(node != NIL, "walked off the entry list");
        steps += 1;
        if steps % BUDGET_CHECK_STEPS == 0 {
            if let Some(reason) = over_budget(budget, cache, memory_bytes(cache, &calls)) {
                return SearchOutcome::OutOfBudget(reason);
            }
        }
        if !entries.is_call(node) {
            if best.as_ref().is_none_or(|(b, _)| calls.len() > b.prefix.len()) {
                best = Some((stuck_at(&entries, &calls, node), state.clone()));
            }
            let Some((call, previous)) = calls.pop() else {
                let (mut stuck, stuck_state) = best.expect("a stuck point is recorded before giving up");
                stuck.state = model.describe_state(&stuck_state);
                return SearchOutcome::NotLinearizable(stuck);
            };
            state = previous;
            linearized.toggle(entries.op_of[call as usize], &open);
            entries.unlift(call);
            node = entries.next[call as usize];
            continue;
        }
        let op = entries.op_of[node as usize];
        // An open operation that leaves the state as it is changes nothing
        // but its own pending status: leaving it out does at least as well.
        let is_open = open[op as usize / 64] & (1u64 << (op % 64)) != 0;
        let stepped = model.step(&state, ops[op as usize]).filter(|next| !(is_open && *next == state));
        if let Some(next_state) = stepped {
            linearized.toggle(op, &open);
            if cache.insert(&linearized.bits, linearized.hash, &next_state, |s| model.state_heap_bytes(s)) {
                // One stored state can be large (a long string): check the
                // memory at once, not up to BUDGET_CHECK_STEPS states later.
                if cache.state_heap_bytes() != heap_bytes_checked {
                    heap_bytes_checked = cache.state_heap_bytes();
                    if let Some(reason) = over_memory(budget, cache, memory_bytes(cache, &calls)) {
                        return SearchOutcome::OutOfBudget(reason);
                    }
                }
                calls.push((node, std::mem::replace(&mut state, next_state)));
                entries.lift(node);
                node = entries.next[HEAD as usize];
                continue;
            }
            linearized.toggle(op, &open);
        }
        node = entries.next[node as usize];
    }
    SearchOutcome::Linearizable
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
fn stuck_at<S>(entries: &Entries, calls: &[(u32, S)], stuck_node: u32) -> Stuck {
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
        prefix: calls.iter().map(|(call, _)| entries.op_of[*call as usize]).collect(),
        stuck_op,
        concurrent,
        state: String::new(),
    }
}
