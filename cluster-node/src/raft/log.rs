//! `RaftLog`: the entries after the latest snapshot, plus the indexes that
//! say how far they are committed, applied and durable.
//!
//! Invariants: `snapshot_index <= applied <= committed <= last_index()`, and
//! `entries[k].index == snapshot_index + 1 + k`.

use super::error::NewError;
use super::types::{Entry, Restored, Snapshot};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RaftLog {
    /// The latest snapshot, kept to send to followers behind it.
    snapshot: Option<Snapshot>,
    snapshot_index: u64,
    snapshot_term: u64,
    /// True while `snapshot` was installed from a leader and is not yet
    /// handed to the server in a `Ready`.
    snapshot_unstable: bool,
    entries: Vec<Entry>,
    /// Highest index known committed; never decreases.
    committed: u64,
    /// Highest index the server applied (as reported through `advance`).
    applied: u64,
    /// Highest index the server made durable.
    stable_index: u64,
}

impl RaftLog {
    /// Rebuilds the log from the snapshot and WAL entries the server read back.
    pub(crate) fn restore(restored: &Restored) -> Result<RaftLog, NewError> {
        let (snapshot_index, snapshot_term) = restored
            .snapshot
            .as_ref()
            .map_or((0, 0), |s| (s.meta.last_index, s.meta.last_term));
        let entries: Vec<Entry> = restored
            .entries
            .iter()
            .filter(|e| e.index > snapshot_index)
            .cloned()
            .collect();
        let mut expected = (snapshot_index + 1, snapshot_term);
        for entry in &entries {
            if entry.index != expected.0 {
                return Err(NewError::LogGap { index: expected.0 });
            }
            if entry.term < expected.1 {
                return Err(NewError::TermsDecrease { index: entry.index });
            }
            expected = (entry.index + 1, entry.term);
        }
        let last_index = expected.0 - 1;
        // A commit index written without fsync may run ahead of the durable log;
        // the leader will tell us again.
        let committed = restored.hard_state.commit.clamp(snapshot_index, last_index);
        Ok(RaftLog::restored(
            restored.snapshot.clone(),
            entries,
            committed,
        ))
    }

    /// A log restored from disk: everything handed in is durable.
    pub(crate) fn restored(
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
        committed: u64,
    ) -> RaftLog {
        let (snapshot_index, snapshot_term) = snapshot
            .as_ref()
            .map_or((0, 0), |s| (s.meta.last_index, s.meta.last_term));
        let stable_index = entries.last().map_or(snapshot_index, |e| e.index);
        assert!(committed >= snapshot_index, "commit below the snapshot");
        assert!(committed <= stable_index, "commit beyond the log");
        RaftLog {
            snapshot,
            snapshot_index,
            snapshot_term,
            snapshot_unstable: false,
            entries,
            committed,
            applied: snapshot_index,
            stable_index,
        }
    }

    pub(crate) fn first_index(&self) -> u64 {
        self.snapshot_index + 1
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.snapshot_index + self.entries.len() as u64
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    pub(crate) fn committed(&self) -> u64 {
        self.committed
    }

    pub(crate) fn applied(&self) -> u64 {
        self.applied
    }

    pub(crate) fn stable_index(&self) -> u64 {
        self.stable_index
    }

    pub(crate) fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The term of the entry at `index`; `None` if compacted away or absent.
    pub(crate) fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|e| e.term)
    }

    fn entry(&self, index: u64) -> Option<&Entry> {
        if index <= self.snapshot_index {
            return None;
        }
        let offset = usize::try_from(index - self.snapshot_index - 1).ok()?;
        self.entries.get(offset)
    }

    /// Entries in `[low, high]`, at most `count_max` of them.
    pub(crate) fn slice(&self, low: u64, high: u64, count_max: u64) -> Vec<Entry> {
        assert!(low > self.snapshot_index, "slice below the snapshot");
        let high = high
            .min(self.last_index())
            .min(low.saturating_add(count_max) - 1);
        if high < low {
            return Vec::new();
        }
        let start = (low - self.snapshot_index - 1) as usize;
        let end = (high - self.snapshot_index) as usize;
        self.entries[start..end].to_vec()
    }

    /// Appends one entry at the end (a leader's proposal).
    pub(crate) fn push(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index() + 1,
            "log append not contiguous"
        );
        assert!(
            entry.term >= self.last_term(),
            "log terms must not decrease"
        );
        self.entries.push(entry);
    }

    /// The first entry of `entries` that is absent or has another term here.
    pub(crate) fn find_conflict(&self, entries: &[Entry]) -> Option<u64> {
        entries
            .iter()
            .find(|e| self.term(e.index) != Some(e.term))
            .map(|e| e.index)
    }

    /// Replaces everything from `entries[0].index` on with `entries`.
    pub(crate) fn truncate_and_append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        assert!(first.index > self.committed, "truncating committed entries");
        assert!(first.index <= self.last_index() + 1, "append leaves a gap");
        self.entries
            .truncate((first.index - self.snapshot_index - 1) as usize);
        self.stable_index = self.stable_index.min(first.index - 1);
        self.entries.extend_from_slice(entries);
    }

    /// The largest index at or below `index` whose term is at most `term`,
    /// with that term (0 when compacted away): the fast-backtracking probe.
    pub(crate) fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let mut probe = index.min(self.last_index());
        // Bounded: each step moves down one entry of the in-memory log.
        while probe > 0 {
            match self.term(probe) {
                None => return (probe, 0),
                Some(t) if t <= term => return (probe, t),
                Some(_) => probe -= 1,
            }
        }
        (0, 0)
    }

    /// Raises the commit index; a lower value is ignored.
    pub(crate) fn commit_to(&mut self, index: u64) -> bool {
        if index <= self.committed {
            return false;
        }
        assert!(
            index <= self.last_index(),
            "commit {index} beyond the last index {}",
            self.last_index()
        );
        self.committed = index;
        true
    }

    pub(crate) fn has_unstable(&self) -> bool {
        self.stable_index < self.last_index()
    }

    pub(crate) fn unstable_entries(&self) -> Vec<Entry> {
        self.slice(self.stable_index + 1, self.last_index(), u64::MAX)
    }

    /// Records that the entries up to `(index, term)` are durable, unless the
    /// log changed under them since they were handed out.
    pub(crate) fn stable_to(&mut self, index: u64, term: u64) {
        if self.term(index) == Some(term) && index > self.stable_index {
            self.stable_index = index;
        }
    }

    pub(crate) fn snapshot_unstable(&self) -> bool {
        self.snapshot_unstable
    }

    pub(crate) fn take_unstable_snapshot(&mut self) -> Option<Snapshot> {
        if !self.snapshot_unstable {
            return None;
        }
        self.snapshot_unstable = false;
        self.snapshot.clone()
    }

    /// The committed entries the server has not applied, at most `count_max`.
    pub(crate) fn next_committed(&self, count_max: u64) -> Vec<Entry> {
        if self.committed <= self.applied {
            return Vec::new();
        }
        self.slice(self.applied + 1, self.committed, count_max)
    }

    pub(crate) fn has_next_committed(&self) -> bool {
        self.committed > self.applied
    }

    pub(crate) fn applied_to(&mut self, index: u64) {
        assert!(
            index <= self.committed,
            "applied {index} beyond commit {}",
            self.committed
        );
        self.applied = self.applied.max(index);
    }

    /// Replaces the whole log with a snapshot from the leader.
    pub(crate) fn install(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.last_index;
        assert!(
            index > self.committed,
            "installing a snapshot behind the commit"
        );
        self.snapshot_index = index;
        self.snapshot_term = snapshot.meta.last_term;
        self.snapshot = Some(snapshot);
        self.snapshot_unstable = true;
        self.entries.clear();
        self.committed = index;
        self.applied = index;
        self.stable_index = index;
    }

    /// Drops the entries covered by `snapshot`, which the server made from
    /// applied state and already persisted. The caller checked the bounds.
    pub(crate) fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.last_index;
        assert!(
            index <= self.applied && index > self.snapshot_index,
            "compaction out of range"
        );
        self.entries.drain(..(index - self.snapshot_index) as usize);
        self.snapshot_index = index;
        self.snapshot_term = snapshot.meta.last_term;
        self.snapshot = Some(snapshot);
    }
}
