//! The in-memory Raft network the core's scenario tests share: nodes,
//! their disks, and a queue that delivers messages until the cluster is
//! quiet, with cuts and a drop filter.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use faultline_node::raft::{
    Config, Entry, EntryKind, HardState, Message, RawNode, ReadState, Restored, Role, Snapshot,
};

/// What one node made durable, the way a server's WAL and snapshot file would.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl Disk {
    pub fn persist(&mut self, ready: &faultline_node::raft::Ready) {
        if let Some(snapshot) = &ready.snapshot {
            self.entries.clear();
            self.snapshot = Some(snapshot.clone());
        }
        if let Some(first) = ready.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(ready.entries.iter().cloned());
        }
        if let Some(hard_state) = &ready.hard_state {
            self.hard_state = hard_state.clone();
        }
    }

    /// Keep what follows the snapshot, and the snapshot.
    pub fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.last_index;
        self.entries.retain(|e| e.index > index);
        self.snapshot = Some(snapshot);
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.meta.last_index)
    }

    /// The entry at `index` is durable here (in the log or the snapshot).
    pub fn holds(&self, index: u64) -> bool {
        index <= self.snapshot_index() || self.entries.iter().any(|e| e.index == index)
    }

    pub fn restored(&self) -> Restored {
        Restored {
            hard_state: self.hard_state.clone(),
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
}

pub type Filter = Box<dyn Fn(&Message) -> bool>;

pub struct Network {
    pub nodes: BTreeMap<u64, RawNode>,
    pub disks: BTreeMap<u64, Disk>,
    pub applied: BTreeMap<u64, Vec<Entry>>,
    pub read_states: BTreeMap<u64, Vec<ReadState>>,
    pub snapshots_installed: BTreeMap<u64, u32>,
    pub queue: VecDeque<Message>,
    pub cut: BTreeSet<(u64, u64)>,
    /// Messages for which this returns true are dropped.
    pub filter: Option<Filter>,
    pub delivered: Vec<Message>,
}

pub fn config(id: u64, size: u64) -> Config {
    let mut config = Config::new(id, (1..=size).collect());
    config.election_timeout_ticks_min = 10;
    config.election_timeout_ticks_max = 20;
    config.heartbeat_interval_ticks = 1;
    config
}

impl Network {
    pub fn new(size: u64, tweak: impl Fn(&mut Config)) -> Network {
        Network::with_disks(size, tweak, |_| Disk::default())
    }

    pub fn with_disks(
        size: u64,
        tweak: impl Fn(&mut Config),
        disk: impl Fn(u64) -> Disk,
    ) -> Network {
        let mut network = Network {
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            applied: BTreeMap::new(),
            read_states: BTreeMap::new(),
            snapshots_installed: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            filter: None,
            delivered: Vec::new(),
        };
        for id in 1..=size {
            let mut config = config(id, size);
            tweak(&mut config);
            let disk = disk(id);
            let node = RawNode::new(config, 1000 + id, disk.restored()).expect("valid node");
            network.nodes.insert(id, node);
            network.disks.insert(id, disk);
        }
        network
    }

    /// Starts node `id` with an empty disk, outside the bootstrap voters
    /// `1..=size`: a node that joins once a leader adds it.
    pub fn add_node(&mut self, id: u64, size: u64, tweak: impl Fn(&mut Config)) {
        let mut config = config(id, size);
        tweak(&mut config);
        let node = RawNode::new(config, 1000 + id, Restored::default()).expect("valid node");
        self.nodes.insert(id, node);
        self.disks.insert(id, Disk::default());
    }

    pub fn node(&self, id: u64) -> &RawNode {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut RawNode {
        self.nodes.get_mut(&id).expect("node exists")
    }

    pub fn process_ready(&mut self, id: u64) -> bool {
        let node = self.nodes.get_mut(&id).expect("node exists");
        if !node.has_ready() {
            return false;
        }
        let ready = node.ready();
        let disk = self.disks.get_mut(&id).expect("disk exists");
        disk.persist(&ready);
        if ready.snapshot.is_some() {
            *self.snapshots_installed.entry(id).or_default() += 1;
        }
        self.queue.extend(ready.messages.iter().cloned());
        self.queue
            .extend(ready.messages_after_persist.iter().cloned());
        self.applied
            .entry(id)
            .or_default()
            .extend(ready.committed_entries.iter().cloned());
        self.read_states
            .entry(id)
            .or_default()
            .extend(ready.read_states.iter().cloned());
        node.advance(ready);
        true
    }

    pub fn process_all_ready(&mut self) -> bool {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        let mut any = false;
        for id in ids {
            any |= self.process_ready(id);
        }
        any
    }

    pub fn dropped(&self, message: &Message) -> bool {
        self.cut.contains(&(message.from, message.to))
            || self.filter.as_ref().is_some_and(|f| f(message))
    }

    /// Delivers messages until the cluster goes quiet (bounded).
    pub fn stabilize(&mut self) {
        for _ in 0..100_000 {
            let any_ready = self.process_all_ready();
            match self.queue.pop_front() {
                Some(message) if self.dropped(&message) => {}
                Some(message) => {
                    self.delivered.push(message.clone());
                    let to = message.to;
                    self.node_mut(to)
                        .step(message)
                        .expect("correct peers send well-formed messages");
                }
                None if !any_ready => return,
                None => {}
            }
        }
        panic!("network did not stabilize");
    }

    pub fn tick(&mut self, id: u64, ticks: u32) {
        for _ in 0..ticks {
            self.node_mut(id).tick();
            self.stabilize();
        }
    }

    pub fn tick_all(&mut self, ticks: u32) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for _ in 0..ticks {
            for &id in &ids {
                self.node_mut(id).tick();
            }
            self.stabilize();
        }
    }

    pub fn elect(&mut self, id: u64) {
        self.node_mut(id).campaign();
        self.stabilize();
        assert_eq!(
            self.node(id).status().role,
            Role::Leader,
            "node {id} should win"
        );
    }

    pub fn isolate(&mut self, id: u64) {
        for other in self.nodes.keys().copied().collect::<Vec<_>>() {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
        self.filter = None;
    }

    pub fn propose(&mut self, id: u64, data: &[u8]) -> (u64, u64) {
        let result = self
            .node_mut(id)
            .propose(data.to_vec())
            .expect("leader accepts");
        self.stabilize();
        result
    }

    pub fn leaders(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| n.status().role == Role::Leader)
            .map(|n| n.status().id)
            .collect()
    }

    pub fn applied_data(&self, id: u64) -> Vec<Vec<u8>> {
        self.applied.get(&id).map_or(Vec::new(), |entries| {
            entries
                .iter()
                .filter(|e| !e.data.is_empty())
                .map(|e| e.data.clone())
                .collect()
        })
    }

    pub fn count_delivered(&self, predicate: impl Fn(&Message) -> bool) -> usize {
        self.delivered.iter().filter(|m| predicate(m)).count()
    }
}

pub fn entries(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(k, &term)| Entry {
            term,
            index: k as u64 + 1,
            data: format!("e{}t{term}", k + 1).into_bytes(),
            kind: EntryKind::Normal,
        })
        .collect()
}

pub fn disk_with(terms: &[u64], term: u64, commit: u64) -> Disk {
    Disk {
        hard_state: HardState {
            term,
            vote: None,
            commit,
        },
        snapshot: None,
        entries: entries(terms),
    }
}
