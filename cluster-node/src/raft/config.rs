//! Raft configuration: every limit the core obeys, validated once at startup.

use serde::{Deserialize, Serialize};

/// The static configuration of one Raft core.
///
/// All durations are in ticks: the server decides how long a tick is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Config {
    /// This node's id (non-zero).
    pub id: u64,
    /// The voters the cluster was bootstrapped with. Membership changes in
    /// the log (and snapshots) move on from here; a node started to join an
    /// existing cluster is not among them and learns the rest from the
    /// leader.
    pub peers: Vec<u64>,
    /// A follower starts an election after a random timeout drawn from
    /// `[election_timeout_ticks_min, election_timeout_ticks_max]`.
    pub election_timeout_ticks_min: u32,
    pub election_timeout_ticks_max: u32,
    /// A leader sends heartbeats this often; must be below the election timeout.
    pub heartbeat_interval_ticks: u32,
    /// Appends in flight to one follower before the leader waits for acks.
    pub inflight_messages_max: u32,
    /// Entries carried by one Append message.
    pub entries_per_message_max: u32,
    /// Bytes of snapshot data carried by one InstallSnapshot chunk.
    pub snapshot_chunk_bytes: u32,
    /// Largest snapshot a follower accepts from a leader.
    pub snapshot_bytes_max: u64,
    /// Proposals refused while this many entries are uncommitted.
    pub uncommitted_entries_max: u32,
    /// Committed entries handed out in one `Ready`.
    pub apply_entries_per_ready_max: u32,
    /// Read requests waiting for leadership confirmation.
    pub reads_pending_max: u32,
    /// A learner is promoted to voter only once its log is at most this
    /// many entries behind the leader's.
    #[serde(default = "catch_up_entries_max_default")]
    pub catch_up_entries_max: u64,
    /// Run a pre-vote round before bumping the term.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum for an election timeout steps down.
    pub check_quorum: bool,
    /// Planted bugs (all off by default); only `faultline matrix` turns them on.
    #[serde(default)]
    pub bugs: crate::bugs::Bugs,
}

/// Why a `Config` is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("node id must be non-zero")]
    IdZero,
    #[error("peer list contains id 0 or a duplicate id")]
    PeersInvalid,
    #[error("election timeout must satisfy heartbeat < min <= max (heartbeat {heartbeat}, min {min}, max {max})")]
    TimeoutsInvalid { heartbeat: u32, min: u32, max: u32 },
    #[error("limit `{name}` must be non-zero")]
    LimitZero { name: &'static str },
}

impl Config {
    /// A configuration with conservative defaults for `id` in a cluster of `peers`.
    pub fn new(id: u64, peers: Vec<u64>) -> Config {
        Config {
            id,
            peers,
            election_timeout_ticks_min: 10,
            election_timeout_ticks_max: 20,
            heartbeat_interval_ticks: 2,
            inflight_messages_max: 64,
            entries_per_message_max: 256,
            snapshot_chunk_bytes: 64 * 1024,
            snapshot_bytes_max: 1 << 30,
            uncommitted_entries_max: 4096,
            apply_entries_per_ready_max: 1024,
            reads_pending_max: 4096,
            catch_up_entries_max: catch_up_entries_max_default(),
            pre_vote: true,
            check_quorum: true,
            bugs: crate::bugs::Bugs::default(),
        }
    }

    /// Checks every field; `RawNode::new` calls this before anything else.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::IdZero);
        }
        let mut sorted = self.peers.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.peers.len() || sorted.contains(&0) {
            return Err(ConfigError::PeersInvalid);
        }
        let heartbeat = self.heartbeat_interval_ticks;
        let min = self.election_timeout_ticks_min;
        let max = self.election_timeout_ticks_max;
        if heartbeat == 0 || heartbeat >= min || min > max {
            return Err(ConfigError::TimeoutsInvalid {
                heartbeat,
                min,
                max,
            });
        }
        self.validate_limits()
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let limits = [
            (
                "inflight_messages_max",
                u64::from(self.inflight_messages_max),
            ),
            (
                "entries_per_message_max",
                u64::from(self.entries_per_message_max),
            ),
            ("snapshot_chunk_bytes", u64::from(self.snapshot_chunk_bytes)),
            ("snapshot_bytes_max", self.snapshot_bytes_max),
            (
                "uncommitted_entries_max",
                u64::from(self.uncommitted_entries_max),
            ),
            (
                "apply_entries_per_ready_max",
                u64::from(self.apply_entries_per_ready_max),
            ),
            ("reads_pending_max", u64::from(self.reads_pending_max)),
            ("catch_up_entries_max", self.catch_up_entries_max),
        ];
        match limits.iter().find(|(_, value)| *value == 0) {
            Some((name, _)) => Err(ConfigError::LimitZero { name }),
            None => Ok(()),
        }
    }

}

fn catch_up_entries_max_default() -> u64 {
    64
}
