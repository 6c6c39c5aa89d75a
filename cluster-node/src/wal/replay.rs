//! Rebuilds the log, hard state and compaction mark from WAL records.
use std::path::Path;

use super::{HardState, Record, WalEntry, WalError};

/// What the WAL held: the entries after the snapshot, contiguous and in order.
#[derive(Debug, Default)]
pub struct Recovered {
    pub hard_state: HardState,
    /// (index, term) the log is compacted to: the snapshot base or a later mark.
    pub mark: (u64, u64),
    pub entries: Vec<WalEntry>,
}

pub(super) struct Replay {
    base: (u64, u64),
    hard_state: HardState,
    mark: (u64, u64),
    entries: Vec<WalEntry>,
}

impl Replay {
    pub fn new(base: (u64, u64)) -> Replay {
        Replay {
            base,
            hard_state: HardState::default(),
            mark: (0, 0),
            entries: Vec::new(),
        }
    }

    /// Applies one segment's records; returns the highest entry index it held.
    pub fn apply_all(&mut self, path: &Path, records: Vec<Record>) -> Result<u64, WalError> {
        let mut index_max = 0;
        for r in records {
            match r {
                Record::Entry(e) => {
                    index_max = index_max.max(e.index);
                    self.push(path, e)?;
                }
                Record::HardState(hs) => self.hard_state = hs,
                Record::SnapshotMark { index, term } => {
                    self.compact_to(index, term);
                    self.mark = (index, term);
                }
            }
        }
        Ok(index_max)
    }

    fn push(&mut self, path: &Path, e: WalEntry) -> Result<(), WalError> {
        if let Some(first) = self.entries.first().map(|f| f.index) {
            let next = first + self.entries.len() as u64;
            if e.index > next {
                return Err(WalError::Gap {
                    path: path.to_path_buf(),
                    expected: next,
                    found: e.index,
                });
            }
            // Raft conflict truncation: a rewritten index replaces the suffix.
            self.entries
                .truncate(e.index.saturating_sub(first) as usize);
        }
        self.entries.push(e);
        Ok(())
    }

    /// Drops entries up to `index`; drops all when the entry at `index` disagrees
    /// on the term (the snapshot came from a leader whose log differs).
    fn compact_to(&mut self, index: u64, term: u64) {
        let conflicting = self
            .entries
            .iter()
            .any(|e| e.index == index && e.term != term);
        if conflicting {
            self.entries.clear();
        } else {
            self.entries.retain(|e| e.index > index);
        }
    }

    pub fn finish(mut self, dir: &Path) -> Result<Recovered, WalError> {
        let base = if self.base.0 >= self.mark.0 {
            self.base
        } else {
            self.mark
        };
        self.compact_to(base.0, base.1);
        if let Some(first) = self.entries.first() {
            if first.index != base.0 + 1 {
                return Err(WalError::Gap {
                    path: dir.to_path_buf(),
                    expected: base.0 + 1,
                    found: first.index,
                });
            }
        }
        Ok(Recovered {
            hard_state: self.hard_state,
            mark: base,
            entries: self.entries,
        })
    }
}
