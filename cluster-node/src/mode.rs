//! Replication modes: when the leader answers a write. `raft` (the default)
//! answers once a quorum holds the entry and it is applied; the weaker modes
//! answer earlier, as classic leader/follower databases do, and keep Raft's
//! heartbeats and elections as their failure detector and failover (which
//! prefers the most up-to-date replica through the vote's log check).
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// Acknowledge after a quorum has the entry (linearizable).
    #[default]
    Raft,
    /// Acknowledge after every follower has the entry.
    Sync,
    /// Acknowledge after the leader and one follower have the entry.
    SemiSync,
    /// Acknowledge after the leader's local write; followers catch up later.
    Async,
}

/// A `--mode` value that is not a mode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode `{0}` (known: raft, sync, semi-sync, async)")]
pub struct UnknownMode(pub String);

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, UnknownMode> {
        match text.trim() {
            "raft" => Ok(Mode::Raft),
            "sync" => Ok(Mode::Sync),
            "semi-sync" => Ok(Mode::SemiSync),
            "async" => Ok(Mode::Async),
            other => Err(UnknownMode(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Raft => "raft",
            Mode::Sync => "sync",
            Mode::SemiSync => "semi-sync",
            Mode::Async => "async",
        }
    }

    /// Followers that must hold an entry before the leader acknowledges it
    /// early, or `None` when the write waits for the Raft commit.
    pub fn early_ack_followers(self, followers: usize) -> Option<usize> {
        match self {
            Mode::Raft | Mode::Sync => None,
            Mode::SemiSync => Some(followers.min(1)),
            Mode::Async => Some(0),
        }
    }

    /// Followers that must hold an entry before the leader acknowledges it
    /// once applied: `sync` answers only when every follower has it (which
    /// includes a quorum, so it is also committed and applied first).
    pub fn copies_after_apply(self, followers: usize) -> Option<usize> {
        match self {
            Mode::Sync => Some(followers),
            Mode::Raft | Mode::SemiSync | Mode::Async => None,
        }
    }

    /// Weaker modes read from the leader's local state, as a primary does.
    pub fn reads_locally(self) -> bool {
        self != Mode::Raft
    }

    /// Raft's check-quorum: a leader that cannot hear a majority steps
    /// down. Classic primary/replica failover has no such rule: an isolated
    /// primary keeps serving until it hears of a newer one.
    pub fn primary_steps_down_when_isolated(self) -> bool {
        self == Mode::Raft
    }

    /// Whether a local read first waits until the leader's whole log is
    /// applied: the modes that acknowledge before the commit do, so the
    /// primary reads its own acknowledged writes. `sync` acknowledges only
    /// applied writes and reads at once.
    pub fn reads_wait_for_own_log(self) -> bool {
        matches!(self, Mode::SemiSync | Mode::Async)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_by_name_and_order_their_ack_points() {
        for mode in [Mode::Raft, Mode::Sync, Mode::SemiSync, Mode::Async] {
            assert_eq!(Mode::parse(mode.name()), Ok(mode));
        }
        assert!(Mode::parse("quorum").is_err());
        assert_eq!(Mode::Raft.early_ack_followers(4), None);
        assert_eq!(Mode::Sync.early_ack_followers(4), None, "sync waits for the commit");
        assert_eq!(Mode::Sync.copies_after_apply(4), Some(4), "and then for every follower");
        assert_eq!(Mode::Raft.copies_after_apply(4), None);
        assert!(Mode::Async.reads_wait_for_own_log() && Mode::SemiSync.reads_wait_for_own_log());
        assert!(!Mode::Sync.reads_wait_for_own_log() && Mode::Sync.reads_locally());
        assert!(Mode::Raft.primary_steps_down_when_isolated() && !Mode::Sync.primary_steps_down_when_isolated());
        assert_eq!(Mode::SemiSync.early_ack_followers(4), Some(1));
        assert_eq!(Mode::SemiSync.early_ack_followers(0), Some(0));
        assert_eq!(Mode::Async.early_ack_followers(4), Some(0));
    }
}
