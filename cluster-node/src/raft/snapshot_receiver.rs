//! `SnapshotReceiver`: a follower's side of InstallSnapshot as plain state.
//! It reassembles one leader's chunks into a snapshot and holds the state
//! machine's check, run on that snapshot before the core adopts it. It only
//! computes from what it is given; `snapshot_transfer.rs` drives it from
//! `RawNode`.

use super::types::{Snapshot, SnapshotMeta};

/// The state machine's test of a fully received snapshot's data, run before
/// the core adopts it: `Err(reason)` means the state machine could not
/// restore from it. A plain function (no captured state), so a `RawNode` stays
/// a value that model checkers can clone, compare and hash.
pub type SnapshotCheckFn = fn(&[u8]) -> Result<(), String>;

#[derive(Clone, Copy)]
struct SnapshotCheck(SnapshotCheckFn);

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

/// A partly received snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PartialSnapshot {
    leader: u64,
    meta: SnapshotMeta,
    total_bytes: u64,
    data: Vec<u8>,
}

/// A follower's snapshot in transit, and the check it must pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct SnapshotReceiver {
    /// Configuration: kept when `clear` drops the partial snapshot.
    check: SnapshotCheck,
    partial: Option<PartialSnapshot>,
}

impl SnapshotReceiver {
    pub(crate) fn set_check(&mut self, check: SnapshotCheckFn) {
        self.check = SnapshotCheck(check);
    }

    /// Runs the state machine's check on a received snapshot's data.
    pub(crate) fn check(&self, data: &[u8]) -> Result<(), String> {
        (self.check.0)(data)
    }

    /// Drops the partly received snapshot, if any; the check stays.
    pub(crate) fn clear(&mut self) {
        self.partial = None;
    }

    /// Adds a chunk if it continues what we hold; returns the bytes held.
    /// A chunk at offset 0 starts over; one from another leader or of
    /// another snapshot drops what we hold; one at any other offset is
    /// ignored.
    pub(crate) fn receive(
        &mut self,
        from: u64,
        meta: SnapshotMeta,
        offset: u64,
        total_bytes: u64,
        data: Vec<u8>,
    ) -> u64 {
        if offset == 0 {
            self.partial = Some(PartialSnapshot {
                leader: from,
                meta,
                total_bytes,
                data,
            });
        } else if let Some(partial) = self.partial.as_mut() {
            let same = partial.leader == from
                && partial.meta == meta
                && partial.total_bytes == total_bytes;
            if !same {
                self.partial = None;
                return 0;
            }
            if partial.data.len() as u64 == offset {
                partial.data.extend_from_slice(&data);
            }
        }
        self.partial.as_ref().map_or(0, |p| p.data.len() as u64)
    }

    /// Takes the snapshot received so far, leaving nothing behind.
    pub(crate) fn take(&mut self) -> Option<Snapshot> {
        self.partial.take().map(|partial| Snapshot {
            meta: partial.meta,
            data: partial.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(last_index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_index,
            last_term: 1,
            voters: vec![1, 2, 3],
            learners: vec![],
        }
    }

    #[test]
    fn chunks_in_order_reassemble_the_snapshot() {
        let mut receiver = SnapshotReceiver::default();
        assert_eq!(receiver.receive(1, meta(9), 0, 5, b"abc".to_vec()), 3);
        assert_eq!(
            receiver.receive(1, meta(9), 1, 5, b"zz".to_vec()),
            3,
            "an overlap is ignored"
        );
        assert_eq!(
            receiver.receive(1, meta(9), 4, 5, b"e".to_vec()),
            3,
            "a gap is ignored"
        );
        assert_eq!(receiver.receive(1, meta(9), 3, 5, b"de".to_vec()), 5);
        let snapshot = receiver.take().unwrap();
        assert_eq!((snapshot.meta, snapshot.data), (meta(9), b"abcde".to_vec()));
        assert!(receiver.take().is_none());
    }

    #[test]
    fn a_chunk_of_another_transfer_drops_what_is_held() {
        let mut receiver = SnapshotReceiver::default();
        receiver.receive(1, meta(9), 0, 4, b"ab".to_vec());
        assert_eq!(receiver.receive(2, meta(9), 2, 4, b"cd".to_vec()), 0);
        assert!(receiver.take().is_none());
        receiver.receive(1, meta(9), 0, 4, b"ab".to_vec());
        assert_eq!(receiver.receive(1, meta(10), 2, 4, b"cd".to_vec()), 0);
        assert_eq!(
            receiver.receive(1, meta(10), 2, 4, b"cd".to_vec()),
            0,
            "nothing to continue"
        );
    }

    #[test]
    fn clear_keeps_the_check() {
        let mut receiver = SnapshotReceiver::default();
        assert_eq!(receiver.check(b"x"), Ok(()));
        receiver.set_check(|_| Err("no".to_string()));
        receiver.receive(1, meta(9), 0, 1, b"x".to_vec());
        receiver.clear();
        assert!(receiver.take().is_none());
        assert_eq!(receiver.check(b"x"), Err("no".to_string()));
    }
}
