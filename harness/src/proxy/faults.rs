//! The fault state as plain data: who is partitioned from whom and which
//! link faults are in force, and the pure answer to "what happens to bytes
//! sent by A to B".
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One side of a proxied connection: a node (0-based index) or the clients,
/// which all sit on the control node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Endpoint {
    Node(usize),
    Client,
}

/// What happens to bytes sent one way over a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkFault {
    /// Added one-way latency.
    pub delay_ms: u64,
    /// Uniform extra latency in `0..=jitter_ms`; order is kept, as TCP does.
    pub jitter_ms: u64,
    /// Blackhole: bytes are read and discarded.
    pub drop: bool,
    /// Connections carrying this direction are reset (RST), new ones on accept.
    pub reset: bool,
    /// Throughput cap for this direction of each connection.
    pub bandwidth_bytes_per_s: Option<u64>,
}

/// A partition: receiver → the senders whose bytes it loses.
pub type Grudge = BTreeMap<usize, BTreeSet<usize>>;
