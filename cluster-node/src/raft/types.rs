//! The data the core shares with the server: log entries, durable state,
//! snapshots, and the status snapshot for operators.

use serde::{Deserialize, Serialize};

/// One log entry. A normal entry's `data` is a state-machine command
/// (empty: a leader's no-op, written when it takes office); a
/// configuration entry's is a `ConfChange`, which the core applies itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub data: Vec<u8>,
    #[serde(default)]
    pub kind: EntryKind,
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    /// A state-machine command, or the no-op.
    #[default]
    Normal,
    /// A membership change (`ConfChange::encode`).
    Config,
}

/// The state that must be durable before the node talks about it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub vote: Option<u64>,
    pub commit: u64,
}

/// What a snapshot covers: every entry up to and including `last_index`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub last_index: u64,
    pub last_term: u64,
    pub voters: Vec<u64>,
    /// Learners at `last_index`.
    #[serde(default)]
    pub learners: Vec<u64>,
}

/// A state-machine image. `data` is opaque to the core.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// What the server read back from disk at startup.
///
/// `entries` are the WAL's entries; those covered by `snapshot` are ignored.
/// The server must already have restored its state machine from `snapshot`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

/// The role a node plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// A read confirmed by a quorum: serve it once the state machine applied `index`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReadState {
    pub ctx: u64,
    pub index: u64,
}

/// A point-in-time view of the core for logs and the `status` request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub id: u64,
    pub role: Role,
    pub term: u64,
    pub leader: Option<u64>,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
}

/// A leadership transfer under way (`transfer.rs`): to whom, since how
/// many ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Transfer {
    pub to: u64,
    pub elapsed_ticks: u32,
}
