//! `Progress`: what a leader knows about one follower's log, and how it
//! paces replication to it (probe one append at a time, pipeline within a
//! bounded window, or stream a snapshot).

use std::collections::VecDeque;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ReplicationState {
    /// Unsure where the logs diverge: one append in flight at a time.
    Probe { paused: bool },
    /// Logs agree up to `match_index`: appends are pipelined.
    Replicate,
    /// The follower is behind the compacted log; it receives the snapshot
    /// ending at `last_index`, of which it acknowledged `offset` bytes.
    Snapshot { last_index: u64, offset: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Progress {
    pub(crate) match_index: u64,
    pub(crate) next_index: u64,
    pub(crate) state: ReplicationState,
    /// Last index of each append in flight (Replicate only), oldest first.
    inflight: VecDeque<u64>,
    inflight_max: usize,
    /// Heard from since the last check-quorum round.
    pub(crate) recent_active: bool,
    /// Highest read-confirmation sequence this follower echoed.
    pub(crate) read_seq_acked: u64,
}

impl Progress {
    pub(crate) fn new(next_index: u64, inflight_max: u32) -> Progress {
        Progress {
            match_index: 0,
            next_index,
            state: ReplicationState::Probe { paused: false },
            inflight: VecDeque::new(),
            inflight_max: inflight_max as usize,
            recent_active: false,
            read_seq_acked: 0,
        }
    }

    /// No append may be sent now (a probe awaits its answer, the window is
    /// full, or a snapshot is streaming).
    pub(crate) fn is_paused(&self) -> bool {
        match self.state {
            ReplicationState::Probe { paused } => paused,
            ReplicationState::Replicate => self.inflight.len() >= self.inflight_max,
            ReplicationState::Snapshot { .. } => true,
        }
    }

    pub(crate) fn become_probe(&mut self) {
        let floor = match self.state {
            ReplicationState::Snapshot { last_index, .. } => last_index + 1,
            _ => 0,
        };
        self.next_index = (self.match_index + 1).max(floor);
        self.state = ReplicationState::Probe { paused: false };
        self.inflight.clear();
    }

    pub(crate) fn become_replicate(&mut self) {
        self.next_index = self.match_index + 1;
        self.state = ReplicationState::Replicate;
        self.inflight.clear();
    }

    pub(crate) fn become_snapshot(&mut self, last_index: u64) {
        self.state = ReplicationState::Snapshot {
            last_index,
            offset: 0,
        };
        self.inflight.clear();
    }

    /// Records that an append ending at `last_index` was sent.
    pub(crate) fn sent_append(&mut self, last_index: Option<u64>) {
        match self.state {
            ReplicationState::Probe { .. } => self.state = ReplicationState::Probe { paused: true },
            ReplicationState::Replicate => {
                if let Some(last) = last_index {
                    assert!(
                        self.inflight.len() < self.inflight_max,
                        "inflight window overrun"
                    );
                    self.inflight.push_back(last);
                    self.next_index = last + 1;
                }
            }
            ReplicationState::Snapshot { .. } => {}
        }
    }

    /// A successful ack up to `index`; true if it taught us something new.
    pub(crate) fn maybe_update(&mut self, index: u64) -> bool {
        let updated = index > self.match_index;
        if updated {
            self.match_index = index;
            if let ReplicationState::Probe { .. } = self.state {
                self.state = ReplicationState::Probe { paused: false };
            }
        }
        self.next_index = self.next_index.max(index + 1);
        while self.inflight.front().is_some_and(|&last| last <= index) {
            self.inflight.pop_front();
        }
        updated
    }

    /// A rejection of the append after `rejected`; `probe_hint` is where the
    /// leader guesses the logs agree. False if the rejection is stale.
    pub(crate) fn maybe_decrease_to(&mut self, rejected: u64, probe_hint: u64) -> bool {
        match self.state {
            ReplicationState::Replicate => {
                if rejected <= self.match_index {
                    return false;
                }
                self.next_index = self.match_index + 1;
                true
            }
            ReplicationState::Probe { .. } => {
                if self.next_index.saturating_sub(1) != rejected {
                    return false;
                }
                self.next_index = rejected
                    .min(probe_hint.saturating_add(1))
                    .max(self.match_index + 1);
                self.state = ReplicationState::Probe { paused: false };
                true
            }
            ReplicationState::Snapshot { .. } => false,
        }
    }

    /// A heartbeat answer proves the follower is reachable: let one more
    /// message through so a lost append cannot stall replication forever.
    pub(crate) fn unpause_on_heartbeat(&mut self) {
        match self.state {
            ReplicationState::Probe { .. } => {
                self.state = ReplicationState::Probe { paused: false }
            }
            ReplicationState::Replicate => {
                if self.inflight.len() >= self.inflight_max {
                    self.inflight.pop_front();
                }
            }
            ReplicationState::Snapshot { .. } => {}
        }
    }
}
