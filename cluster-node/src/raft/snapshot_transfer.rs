//! InstallSnapshot: the leader streams its latest snapshot in chunks to a
//! follower behind the compacted log; the follower reassembles and installs
//! it. The follower's partial snapshot and the state machine's check are a
//! `SnapshotReceiver`; this file feeds it chunks and acts on its answers.

use super::error::StepError;
use super::message::MessageBody;
use super::node::RawNode;
use super::progress::ReplicationState;
use super::snapshot_receiver::SnapshotCheckFn;
use super::types::{Snapshot, SnapshotMeta};

impl RawNode {
    /// Sets the state machine's test of received snapshots. A snapshot that
    /// fails it is dropped before the core adopts it (log, commit index and
    /// `Ready::snapshot` unchanged) and `step` returns
    /// `StepError::SnapshotRejected`; the leader resends it on a heartbeat.
    pub fn set_snapshot_check(&mut self, check: SnapshotCheckFn) {
        self.snapshot_receiver.set_check(check);
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
        let offset = if last_index == snapshot.meta.last_index {
            offset
        } else {
            0
        };
        progress.state = ReplicationState::Snapshot {
            last_index: snapshot.meta.last_index,
            offset,
        };
        let body = snapshot_chunk(snapshot, offset, self.config.snapshot_chunk_bytes);
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
        check_snapshot_chunk(offset, total_bytes, &data, self.config.snapshot_bytes_max)?;
        let last_index = meta.last_index;
        if last_index <= self.log.committed() {
            // We already hold everything it covers.
            self.snapshot_receiver.clear();
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
        let offset_next = self
            .snapshot_receiver
            .receive(from, meta, offset, total_bytes, data);
        let installed = done && offset_next == total_bytes;
        if installed {
            // A rejected snapshot gets no ack: the leader's heartbeat resends
            // its last chunk, which restarts the transfer from offset 0.
            self.install_received_snapshot()?;
        }
        self.send(
            from,
            MessageBody::InstallSnapshotResponse {
                last_index,
                offset_next,
                done: installed,
            },
        );
        Ok(())
    }

    fn install_received_snapshot(&mut self) -> Result<(), StepError> {
        let Some(snapshot) = self.snapshot_receiver.take() else {
            return Ok(());
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
        if let Err(reason) = self.snapshot_receiver.check(&snapshot.data) {
            return Err(StepError::SnapshotRejected { index, reason });
        }
        self.retract_acks_beyond(index);
        self.log.install(snapshot);
        self.refresh_membership();
        Ok(())
    }
}

/// The InstallSnapshot message carrying `snapshot` from `offset` on, at
/// most `chunk_bytes` of it.
fn snapshot_chunk(snapshot: &Snapshot, offset: u64, chunk_bytes: u32) -> MessageBody {
    let total_bytes = snapshot.data.len() as u64;
    let start = offset.min(total_bytes) as usize;
    let end = (start + chunk_bytes as usize).min(snapshot.data.len());
    MessageBody::InstallSnapshot {
        meta: snapshot.meta.clone(),
        offset: start as u64,
        total_bytes,
        data: snapshot.data[start..end].to_vec(),
        done: end == snapshot.data.len(),
    }
}

/// Rejects a chunk no correct leader could have sent.
fn check_snapshot_chunk(
    offset: u64,
    total_bytes: u64,
    data: &[u8],
    snapshot_bytes_max: u64,
) -> Result<(), StepError> {
    let malformed = |reason| {
        Err(StepError::Malformed {
            kind: "install_snapshot",
            reason,
        })
    };
    if total_bytes > snapshot_bytes_max {
        return malformed("snapshot larger than snapshot_bytes_max");
    }
    if offset
        .checked_add(data.len() as u64)
        .is_none_or(|end| end > total_bytes)
    {
        return malformed("chunk beyond the snapshot's size");
    }
    Ok(())
}
