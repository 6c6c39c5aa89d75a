//! The dependency graph between transactions and the cycles in it: strongly
//! connected components first (Tarjan, iterative), then, inside each, a
//! shortest explaining cycle of each kind by breadth-first search from the
//! ends of one edge, bounded so a large component cannot hang the check.
use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::order::Orders;
use super::session;
use super::{Anomaly, AnomalyKind, EdgeKind, Mop, Step, Txn, TxnOutcome};

/// The orders a cycle may also use, weakest claim first: data edges only,
/// then process order, then real time (which implies process order).
const ORDER_LEVELS: [&[EdgeKind]; 3] = [&[], &[EdgeKind::Process], &[EdgeKind::Process, EdgeKind::Realtime]];

/// Edges of one kind tried as a cycle's closing edge, per component.
const CLOSING_EDGES_MAX: usize = 2_000;

pub(super) struct Graph<'a> {
    txns: &'a [Txn],
    /// Index → its edges out, one per (to, kind).
    out: Vec<Vec<(usize, Step)>>,
    /// Explain edges as register writes and reads, not list appends.
    registers: bool,
}

impl<'a> Graph<'a> {
    /// A graph with no edges yet.
    pub(super) fn new(txns: &'a [Txn], registers: bool) -> Graph<'a> {
        Graph { txns, out: vec![Vec::new(); txns.len()], registers }
    }

    /// Process and real-time order between the transactions.
    pub(super) fn add_session_edges(&mut self) {
        for (from, to) in session::process_edges(self.txns) {
            self.add(from, to, EdgeKind::Process, 0, 0);
        }
        for (from, to) in session::realtime_edges(self.txns) {
            self.add(from, to, EdgeKind::Realtime, 0, 0);
        }
    }

    /// The list-append graph: data edges from the inferred version orders,
    /// then process and real-time order.
    pub(super) fn build(txns: &'a [Txn], orders: &Orders) -> Graph<'a> {
        let mut graph = Graph::new(txns, false);
        // Key → appends no read placed in its order: lists only grow, so a
        // read without one of them precedes its writer.
        let mut unplaced: FxHashMap<u64, Vec<u64>> = FxHashMap::default();
        for ((key, value), _) in orders.writer.iter() {
            if !orders.order.get(key).is_some_and(|order| order.contains(value)) {
                unplaced.entry(*key).or_default().push(*value);
            }
        }
        unplaced.values_mut().for_each(|values| values.sort_unstable());
        // A writer that aborted takes part in no edge (G1a names it).
        let live = |index: usize| txns[index].outcome != TxnOutcome::Fail;
        for (key, order) in &orders.order {
            for pair in order.windows(2) {
                let (Some(&a), Some(&b)) = (orders.writer.get(&(*key, pair[0])), orders.writer.get(&(*key, pair[1]))) else { continue };
                if a != b && live(a) && live(b) {
                    graph.add(a, b, EdgeKind::Ww, *key, pair[1]);
                }
            }
        }
        for (reader, txn) in txns.iter().enumerate().filter(|(_, txn)| txn.outcome == TxnOutcome::Ok) {
            for mop in &txn.mops {
                let Mop::Read { key, list: Some(list) } = mop else { continue };
                if let Some(&w) = list.last().and_then(|last| orders.writer.get(&(*key, *last))) {
                    if w != reader && live(w) {
                        graph.add(w, reader, EdgeKind::Wr, *key, list[list.len() - 1]);
                    }
                }
                for value in unplaced.get(key).into_iter().flatten() {
                    if let Some(&w) = orders.writer.get(&(*key, *value)) {
                        if w != reader && live(w) {
                            graph.add(reader, w, EdgeKind::Rw, *key, *value);
                        }
                    }
                }
                let Some(order) = orders.order.get(key) else { continue };
                if order.len() > list.len() && order.starts_with(list) {
                    let next = order[list.len()];
                    if let Some(&w) = orders.writer.get(&(*key, next)) {
                        if w != reader && live(w) {
                            graph.add(reader, w, EdgeKind::Rw, *key, next);
                        }
                    }
                }
            }
        }
        graph.add_session_edges();
        graph
    }

    pub(super) fn add(&mut self, from: usize, to: usize, kind: EdgeKind, key: u64, value: u64) {
        if self.out[from].iter().any(|(t, step)| *t == to && step.kind == kind) {
            return;
        }
        let step = Step { from: self.txns[from].id, to: self.txns[to].id, kind, key, value };
        self.out[from].push((to, step));
    }

    pub(super) fn edge_count(&self) -> usize {
        self.out.iter().map(Vec::len).sum()
    }

    /// One anomaly of each kind found in each component, its cycle as
    /// short as the search found, named by the weakest order it needs
    /// (data edges alone, then process, then real-time order).
    pub(super) fn cycle_anomalies(&self) -> Vec<Anomaly> {
        use EdgeKind::{Rw, Wr, Ww};
        let mut anomalies = Vec::new();
        for component in self.components().into_iter().filter(|c| c.len() > 1) {
            let mut member = vec![false; self.txns.len()];
            component.iter().for_each(|node| member[*node] = true);
            let mut search = |kind: AnomalyKind, closing: EdgeKind, data: &[EdgeKind], levels: usize| {
                for (level, orders) in ORDER_LEVELS.iter().enumerate().take(levels) {
                    let path: Vec<EdgeKind> = data.iter().chain(orders.iter()).copied().collect();
                    if let Some(cycle) = self.cycle_closed_by(&member, &component, closing, &path) {
                        anomalies.push(describe(variant(kind, level), cycle, self.registers));
                        return Some(level);
                    }
                }
                None
            };
            search(AnomalyKind::G0, Ww, &[Ww], ORDER_LEVELS.len());
            search(AnomalyKind::G1c, Wr, &[Ww, Wr], ORDER_LEVELS.len());
            // A G2-item search would find the G-single cycles again, at the
            // level they were found and above.
            let single = search(AnomalyKind::GSingle, Rw, &[Ww, Wr], ORDER_LEVELS.len());
            search(AnomalyKind::G2Item, Rw, &[Ww, Wr, Rw], single.unwrap_or(ORDER_LEVELS.len()));
        }
        anomalies
    }

    /// The shortest cycle found that closes with an edge of kind `closing`
    /// (a → b) and returns from b to a over edges of the kinds in `path`,
    /// inside the component.
    fn cycle_closed_by(&self, member: &[bool], component: &[usize], closing: EdgeKind, path: &[EdgeKind]) -> Option<Vec<Step>> {
        let mut best: Option<Vec<Step>> = None;
        let closing_edges = component
            .iter()
            .flat_map(|from| self.out[*from].iter().map(move |(to, step)| (*from, *to, *step)))
            .filter(|(_, to, step)| step.kind == closing && member[*to])
            .take(CLOSING_EDGES_MAX);
        for (a, b, step) in closing_edges {
            if let Some(back) = self.shortest_path(member, b, a, path) {
                if best.as_ref().is_none_or(|cycle| back.len() + 1 < cycle.len()) {
                    let mut cycle = vec![step];
                    cycle.extend(back);
                    best = Some(cycle);
                }
            }
        }
        best
    }

    fn shortest_path(&self, member: &[bool], from: usize, to: usize, kinds: &[EdgeKind]) -> Option<Vec<Step>> {
        let mut previous: FxHashMap<usize, (usize, Step)> = FxHashMap::default();
        let mut queue = VecDeque::from([from]);
        let mut seen = vec![false; self.txns.len()];
        seen[from] = true;
        while let Some(node) = queue.pop_front() {
            if node == to {
                let mut steps = Vec::new();
                let mut at = to;
                while at != from {
                    let (before, step) = previous[&at];
                    steps.push(step);
                    at = before;
                }
                steps.reverse();
                return Some(steps);
            }
            for (next, step) in &self.out[node] {
                if member[*next] && !seen[*next] && kinds.contains(&step.kind) {
                    seen[*next] = true;
                    previous.insert(*next, (node, *step));
                    queue.push_back(*next);
                }
            }
        }
        None
    }

    /// Strongly connected components (Tarjan's algorithm without
    /// recursion, so a long chain cannot overflow the stack).
    fn components(&self) -> Vec<Vec<usize>> {
        let n = self.txns.len();
        let (mut index, mut low, mut on_stack) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
        let (mut stack, mut components, mut next_index) = (Vec::new(), Vec::new(), 0);
        for root in 0..n {
            if index[root] != usize::MAX {
                continue;
            }
            // (node, position of the next edge to look at)
            let mut calls = vec![(root, 0usize)];
            while let Some(&(node, edge)) = calls.last() {
                if edge == 0 && index[node] == usize::MAX {
                    index[node] = next_index;
                    low[node] = next_index;
                    next_index += 1;
                    stack.push(node);
                    on_stack[node] = true;
                }
                if let Some(&(next, _)) = self.out[node].get(edge) {
                    if let Some(top) = calls.last_mut() {
                        top.1 += 1;
                    }
                    if index[next] == usize::MAX {
                        calls.push((next, 0));
                    } else if on_stack[next] {
                        low[node] = low[node].min(index[next]);
                    }
                    continue;
                }
                calls.pop();
                if let Some(&(parent, _)) = calls.last() {
                    low[parent] = low[parent].min(low[node]);
                }
                if low[node] == index[node] {
                    let mut component = Vec::new();
                    while let Some(member) = stack.pop() {
                        on_stack[member] = false;
                        component.push(member);
                        if member == node {
                            break;
                        }
                    }
                    components.push(component);
                }
            }
        }
        components
    }
}

/// The anomaly `kind` closed at order level `level` (see [`ORDER_LEVELS`]).
fn variant(kind: AnomalyKind, level: usize) -> AnomalyKind {
    use AnomalyKind::*;
    match (kind, level) {
        (G0, 1) => G0Process,
        (G1c, 1) => G1cProcess,
        (GSingle, 1) => GSingleProcess,
        (G2Item, 1) => G2ItemProcess,
        (G0, 2) => G0Realtime,
        (G1c, 2) => G1cRealtime,
        (GSingle, 2) => GSingleRealtime,
        (G2Item, 2) => G2ItemRealtime,
        (kind, _) => kind,
    }
}

fn phrase(step: &Step, registers: bool) -> String {
    let (from, to, key, value) = (step.from, step.to, step.key, step.value);
    match (step.kind, registers) {
        (EdgeKind::Process, _) => format!("T{to} ran after T{from} on the same process"),
        (EdgeKind::Realtime, _) => format!("T{to} was invoked after T{from} completed"),
        (EdgeKind::Ww, false) => format!("T{to} appended {value} to key {key} right after T{from}'s append"),
        (EdgeKind::Wr, false) => format!("T{to} read key {key} ending with {value}, appended by T{from}"),
        (EdgeKind::Rw, false) => format!("T{from} read key {key} without {value}, which T{to} appended"),
        (EdgeKind::Ww, true) => format!("T{to} wrote {value} to key {key} over T{from}'s write"),
        (EdgeKind::Wr, true) => format!("T{to} read {value} from key {key}, written by T{from}"),
        (EdgeKind::Rw, true) => format!("T{from} read key {key} before T{to} wrote {value} over it"),
    }
}

fn describe(kind: AnomalyKind, cycle: Vec<Step>, registers: bool) -> Anomaly {
    let txns = cycle.iter().map(|step| step.from).collect();
    let words: Vec<String> = cycle.iter().map(|step| phrase(step, registers)).collect();
    let explanation = format!("{}; so each precedes the next and the first follows the last: {}", words.join("; "), kind.name());
    Anomaly { kind, txns, cycle, explanation }
}
