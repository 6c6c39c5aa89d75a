//! `Ready`: one batch of work the core hands the server.

use super::message::Message;
use super::types::{Entry, HardState, ReadState, Snapshot};

/// Handle a `Ready` in this order, then pass it back to `RawNode::advance`:
///
/// 1. If `snapshot` is set: persist it, truncate the WAL, and restore the
///    state machine from it.
/// 2. Append `entries` to the WAL. If the first entry's index is at or below
///    the last persisted index, first truncate the WAL from that index on.
/// 3. Persist `hard_state` if set. If `must_sync`, fsync before going on.
/// 4. Send `messages` (these may also be sent before step 1) and then
///    `messages_after_persist` (these promise that steps 1-3 are durable).
/// 5. Apply `committed_entries` in order; serve each `read_states` read once
///    the applied index reaches its `index`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    pub hard_state: Option<HardState>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub must_sync: bool,
    pub messages: Vec<Message>,
    pub messages_after_persist: Vec<Message>,
    pub committed_entries: Vec<Entry>,
    pub read_states: Vec<ReadState>,
}

impl Ready {
    /// True when nothing in this `Ready` asks for work.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.messages_after_persist.is_empty()
            && self.committed_entries.is_empty()
            && self.read_states.is_empty()
    }
}
