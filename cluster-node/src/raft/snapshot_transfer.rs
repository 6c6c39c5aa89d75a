//! InstallSnapshot: the leader streams its latest snapshot in chunks to a
//! follower behind the compacted log; the follower reassembles and installs it.

use super::error::StepError;
use super::message::MessageBody;
use super::node::RawNode;
use super::progress::ReplicationState;
use super::types::{Snapshot, SnapshotMeta};

/// The state machine's test of a fully received snapshot's data, run before
/// the core adopts it: `Err(reason)` means the state machine could not
/// restore from it. A plain function (no captured state), so a `RawNode` stays
/// a value that model checkers can clone, compare and hash.
pub type SnapshotCheckFn = fn(&[u8]) -> Result<(), String>;

#[derive(Clone, Copy)]
pub(crate) struct SnapshotCheck(pub(crate) SnapshotCheckFn);

impl Default for SnapshotCheck {
    /// Accepts any data: for state machines (and tests) that cannot fail to restore.
    fn default() -> SnapshotCheck {
        SnapshotCheck(|_| Ok(()))
    }
}

impl std::fmt::Debug for SnapshotCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SnapshotCheck")
    }
}

// The check is configuration, not protocol state: two cores that differ only
// in it are the same state to a model checker.
impl PartialEq for SnapshotCheck {
    fn eq(&self, _: &SnapshotCheck) -> bool {
        true
    }
}

impl Eq for SnapshotCheck {}

impl std::hash::Hash for SnapshotCheck {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// A follower's partly received snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SnapshotReceiver {
    leader: u64,
    meta: SnapshotMeta,
    total_bytes: u64,
    data: Vec<u8>,
}

impl RawNode {
    /// Sets the state machine's test of received snapshots. A snapshot that
    /// fails it is dropped before the core adopts it (log, commit index and
    /// `Ready::snapshot` unchanged) and `step` returns
    /// `StepError::SnapshotRejected`; the leader resends it on a heartbeat.
    pub fn set_snapshot_check(&mut self, check: SnapshotCheckFn) {
        self.snapshot_check = SnapshotCheck(check);
    }

    /// Leader: `peer` needs entries we compacted; stream the snapshot.
    pub(super) fn start_snapshot(&mut self, peer: u64) {
        let Some(last_index) = self.log.snapshot().map(|s| s.meta.last_index) else {
            // Every compacted index is covered by a snapshot we keep.
            unreachable!("log compacted without a snapshot");
        };
        let Some(progress) = self.progress.get_mut(&peer) else {
            return;
        };
        progress.become_snapshot(last_index);
        self.send_snapshot_chunk(peer);
    }

    /// Leader: sends the chunk at the follower's acknowledged offset,
    /// restarting from zero if we compacted to a newer snapshot meanwhile.
    pub(super) fn send_snapshot_chunk(&mut self, peer: u64) {
        let Some(snapshot) = self.log.snapshot() else {
            return;
        };
        let Some(progress) = self.progress.get_mut(&peer) else {
            return;
        };
        let ReplicationState::Snapshot { last_index, offset } = progress.state else {
            return;
        };
        let meta = snapshot.meta.clone();
        let offset = if last_index == meta.last_index {
            offset
        } else {
            0
        };
        progress.state = ReplicationState::Snapshot {
            last_index: meta.last_index,
            offset,
        };
        let total_bytes = snapshot.data.len() as u64;
        let start = offset.min(total_bytes) as usize;
        let end = (start + self.config.snapshot_chunk_bytes as usize).min(snapshot.data.len());
        let data = snapshot.data[start..end].to_vec();
        let done = end == snapshot.data.len();
        let body = MessageBody::InstallSnapshot {
            meta,
            offset: start as u64,
            total_bytes,
            data,
            done,
        };
        self.send(peer, body);
    }

    /// Leader: a follower acknowledged a chunk, or the whole snapshot.
    pub(super) fn handle_snapshot_response(
        &mut self,
        from: u64,
        last_index: u64,
        offset_next: u64,
        done: bool,
    ) {
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        let ReplicationState::Snapshot {
            last_index: sending,
            offset,
        } = progress.state
        else {
            return;
        };
        if last_index != sending {
            return;
        }
        if done {
            progress.maybe_update(last_index);
            progress.become_probe();
            self.send_append(from, true);
            return;
        }
        if offset_next == offset && offset_next != 0 {
            // A duplicate ack; the heartbeat resends if the chunk was lost.
            return;
        }
        progress.state = ReplicationState::Snapshot {
            last_index,
            offset: offset_next,
        };
        self.send_snapshot_chunk(from);
    }

    /// Follower: one chunk from the current leader.
    pub(super) fn handle_snapshot_chunk(
        &mut self,
        from: u64,
        meta: SnapshotMeta,
        offset: u64,
        total_bytes: u64,
        data: Vec<u8>,
        done: bool,
    ) -> Result<(), StepError> {
        let malformed = |reason| {
            Err(StepError::Malformed {
                kind: "install_snapshot",
                reason,
            })
        };
        if total_bytes > self.config.snapshot_bytes_max {
            return malformed("snapshot larger than snapshot_bytes_max");
        }
        if offset
            .checked_add(data.len() as u64)
            .is_none_or(|end| end > total_bytes)
        {
            return malformed("chunk beyond the snapshot's size");
        }
        let last_index = meta.last_index;
        if last_index <= self.log.committed() {
            // We already hold everything it covers.
            self.snapshot_receiver = None;
            self.send(
                from,
                MessageBody::InstallSnapshotResponse {
                    last_index,
                    offset_next: 0,
                    done: true,
                },
            );
            return Ok(());
        }
        let offset_next = self.receive_chunk(from, meta, offset, total_bytes, data);
        if done && offset_next == total_bytes {
            // A rejected snapshot gets no ack: the leader's heartbeat resends
            // its last chunk, which restarts the transfer from offset 0.
            self.install_received_snapshot()?;
            self.send(
                from,
                MessageBody::InstallSnapshotResponse {
                    last_index,
                    offset_next,
                    done: true,
                },
            );
        } else {
            self.send(
                from,
                MessageBody::InstallSnapshotResponse {
                    last_index,
                    offset_next,
                    done: false,
                },
            );
        }
        Ok(())
    }

    /// Adds a chunk if it continues what we hold; returns the bytes held.
    fn receive_chunk(
        &mut self,
        from: u64,
        meta: SnapshotMeta,
        offset: u64,
        total_bytes: u64,
        data: Vec<u8>,
    ) -> u64 {
        if offset == 0 {
            self.snapshot_receiver = Some(SnapshotReceiver {
                leader: from,
                meta,
                total_bytes,
                data,
            });
        } else if let Some(receiver) = self.snapshot_receiver.as_mut() {
            let same = receiver.leader == from
                && receiver.meta == meta
                && receiver.total_bytes == total_bytes;
            if !same {
                self.snapshot_receiver = None;
                return 0;
            }
            if receiver.data.len() as u64 == offset {
                receiver.data.extend_from_slice(&data);
            }
        }
        self.snapshot_receiver
            .as_ref()
            .map_or(0, |r| r.data.len() as u64)
    }

    fn install_received_snapshot(&mut self) -> Result<(), StepError> {
        let Some(receiver) = self.snapshot_receiver.take() else {
            return Ok(());
        };
        let snapshot = Snapshot {
            meta: receiver.meta,
            data: receiver.data,
        };
        let (index, term) = (snapshot.meta.last_index, snapshot.meta.last_term);
        if self.log.term(index) == Some(term) {
            // Our log already matches through the snapshot: just commit.
            self.log.commit_to(index);
            return Ok(());
        }
        // Checked before anything changes: once installed, the log and the
        // commit index say the state machine holds everything through
        // `index`, and a server that then cannot restore from the data could
        // only stop or diverge.
        if let Err(reason) = (self.snapshot_check.0)(&snapshot.data) {
            return Err(StepError::SnapshotRejected { index, reason });
        }
        self.retract_acks_beyond(index);
        self.log.install(snapshot);
        Ok(())
    }
}
