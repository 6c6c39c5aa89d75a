//! Exhaustive model checking (stateright, breadth-first) of three Raft cores
//! up to a small depth: every interleaving of election timeouts, message
//! deliveries (in any order, or never) and a proposal. Checks election
//! safety and log matching in every reachable state, and that a leader and
//! a committed entry are reachable (so the depth is not vacuous). One model
//! adds a membership change (a leader removes a voter) to the actions.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use faultline_node::raft::{ConfChange, Config, EntryKind, Message, RawNode, Restored, Role};
use stateright::{Checker, Model, Property};

const NODES: u64 = 3;
/// Depths chosen so each model finishes in seconds in release mode while
/// still reaching an election and a commit (the `sometimes` properties).
const DEPTH_WITHOUT_PRE_VOTE: usize = 10;
const DEPTH_WITH_PRE_VOTE: usize = 10;
const DEPTH_WITH_A_CHANGE: usize = 11;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ClusterState {
    nodes: Vec<RawNode>,
    /// Messages in flight, kept sorted so equal states hash equal.
    network: Vec<Message>,
    /// Every (term, leader) ever observed.
    leaders: BTreeSet<(u64, u64)>,
    proposals: u32,
    /// Whether a leader proposed the model's membership change.
    changed: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Action {
    Timeout(usize),
    Deliver(usize),
    Propose(usize),
    Change(usize),
}

struct RaftModel {
    pre_vote: bool,
    term_max: u64,
    proposals_max: u32,
    /// One membership change a leader may propose, once.
    change: Option<ConfChange>,
}

/// A canonical order for the in-flight set (cheap; ties are broken by
/// `dedup` only when the messages are equal, so order among true ties is
/// irrelevant to state identity).
fn message_key(message: &Message) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    message.hash(&mut hasher);
    hasher.finish()
}

impl RaftModel {
    fn config(&self, id: u64) -> Config {
        let mut config = Config::new(id, (1..=NODES).collect());
        config.election_timeout_ticks_min = 10;
        config.election_timeout_ticks_max = 10;
        config.pre_vote = self.pre_vote;
        config.check_quorum = false;
        config
    }

    /// The server side of one node: persist at once, send everything.
    fn drain_ready(state: &mut ClusterState, index: usize) {
        let node = &mut state.nodes[index];
        // Bounded: each round drains what the previous one produced.
        for _ in 0..8 {
            if !node.has_ready() {
                break;
            }
            let ready = node.ready();
            state.network.extend(ready.messages.iter().cloned());
            state
                .network
                .extend(ready.messages_after_persist.iter().cloned());
            node.advance(ready);
        }
        state.network.sort_by_key(message_key);
        state.network.dedup();
    }

    fn record_leaders(state: &mut ClusterState) {
        for node in &state.nodes {
            let status = node.status();
            if status.role == Role::Leader {
                state.leaders.insert((status.term, status.id));
            }
        }
    }
}

impl Model for RaftModel {
    type State = ClusterState;
    type Action = Action;

    fn init_states(&self) -> Vec<ClusterState> {
        let nodes = (1..=NODES)
            .map(|id| RawNode::new(self.config(id), id, Restored::default()).expect("valid config"))
            .collect();
        vec![ClusterState {
            nodes,
            network: Vec::new(),
            leaders: BTreeSet::new(),
            proposals: 0,
            changed: false,
        }]
    }

    fn actions(&self, state: &ClusterState, actions: &mut Vec<Action>) {
        for (index, node) in state.nodes.iter().enumerate() {
            let status = node.status();
            if status.role == Role::Leader {
                if state.proposals < self.proposals_max {
                    actions.push(Action::Propose(index));
                }
                if self.change.is_some() && !state.changed {
                    actions.push(Action::Change(index));
                }
            } else if status.term < self.term_max {
                actions.push(Action::Timeout(index));
            }
        }
        actions.extend((0..state.network.len()).map(Action::Deliver));
    }

    fn next_state(&self, last: &ClusterState, action: Action) -> Option<ClusterState> {
        let mut state = last.clone();
        let touched = match action {
            Action::Timeout(index) => {
                state.nodes[index].campaign();
                index
            }
            Action::Propose(index) => {
                state.nodes[index]
                    .propose(vec![state.proposals as u8 + 1])
                    .ok()?;
                state.proposals += 1;
                index
            }
            Action::Change(index) => {
                let change = self.change.expect("offered only with a change");
                state.nodes[index].propose_conf_change(change).ok()?;
                state.changed = true;
                index
            }
            Action::Deliver(k) => {
                let message = state.network.remove(k);
                let index = (message.to - 1) as usize;
                state.nodes[index]
                    .step(message)
                    .expect("correct peers send well-formed messages");
                index
            }
        };
        RaftModel::drain_ready(&mut state, touched);
        RaftModel::record_leaders(&mut state);
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("election safety", |_, state: &ClusterState| {
                let terms: BTreeSet<u64> = state.leaders.iter().map(|&(term, _)| term).collect();
                terms.len() == state.leaders.len()
            }),
            Property::always("log matching", |_, state: &ClusterState| {
                state
                    .nodes
                    .iter()
                    .enumerate()
                    .all(|(k, a)| state.nodes[k + 1..].iter().all(|b| logs_match(a, b)))
            }),
            Property::always("commit never beyond the log", |_, state: &ClusterState| {
                state
                    .nodes
                    .iter()
                    .all(|n| n.status().commit <= n.status().last_index)
            }),
            Property::sometimes("a leader is elected", |_, state: &ClusterState| {
                !state.leaders.is_empty()
            }),
            Property::sometimes("an entry commits", |_, state: &ClusterState| {
                state.nodes.iter().any(|n| n.status().commit >= 1)
            }),
            Property::sometimes("a membership change commits", |model: &RaftModel, state: &ClusterState| {
                model.change.is_none() || state.nodes.iter().any(committed_a_change)
            }),
        ]
    }
}

fn committed_a_change(node: &RawNode) -> bool {
    let commit = node.status().commit;
    node.entries().iter().any(|e| e.kind == EntryKind::Config && e.index <= commit)
}

/// Where two logs share an entry's index and term, their prefixes agree.
fn logs_match(a: &RawNode, b: &RawNode) -> bool {
    let shared = a.entries().len().min(b.entries().len());
    let Some(agree) = (0..shared)
        .rev()
        .find(|&k| a.entries()[k].term == b.entries()[k].term)
    else {
        return true;
    };
    a.entries()[..=agree] == b.entries()[..=agree]
}

fn check(model: RaftModel, depth: usize) {
    let checker = model.checker().target_max_depth(depth).spawn_bfs().join();
    eprintln!(
        "raft_model: depth {depth}: {} unique states",
        checker.unique_state_count()
    );
    checker.assert_properties();
}

#[test]
fn model_check_three_nodes_without_pre_vote() {
    check(
        RaftModel {
            pre_vote: false,
            term_max: 2,
            proposals_max: 1,
            change: None,
        },
        DEPTH_WITHOUT_PRE_VOTE,
    );
}

#[test]
fn model_check_three_nodes_with_pre_vote() {
    check(
        RaftModel {
            pre_vote: true,
            term_max: 2,
            proposals_max: 1,
            change: None,
        },
        DEPTH_WITH_PRE_VOTE,
    );
}

/// A leader removes a voter (three voters become two, so every majority of
/// the new configuration is the whole of it), with elections around it.
#[test]
fn model_check_three_nodes_removing_one() {
    check(
        RaftModel {
            pre_vote: false,
            term_max: 2,
            proposals_max: 0,
            change: Some(ConfChange::Remove(3)),
        },
        DEPTH_WITH_A_CHANGE,
    );
}
