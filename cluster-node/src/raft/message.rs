//! The wire messages Raft peers exchange. The core builds and consumes them;
//! the server only encodes and carries them.

use serde::{Deserialize, Serialize};

use super::error::StepError;
use super::types::{Entry, SnapshotMeta};

/// One message between two peers. `term` is the sender's term, except for a
/// pre-vote request (the term the sender would campaign in) and a granted
/// pre-vote response (echoes the request's term).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    pub from: u64,
    pub to: u64,
    pub term: u64,
    pub body: MessageBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageBody {
    /// Would you vote for me if I campaigned? Changes no state at the receiver.
    PreVote {
        last_index: u64,
        last_term: u64,
    },
    PreVoteResponse {
        granted: bool,
    },
    /// RequestVote; `transfer` when the leader handed over to the sender
    /// (`TimeoutNow`), so a voter within its leader lease votes anyway.
    Vote {
        last_index: u64,
        last_term: u64,
        transfer: bool,
    },
    VoteResponse {
        granted: bool,
    },
    /// AppendEntries: `entries` follow (`prev_index`, `prev_term`).
    Append {
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    },
    /// On success `index` is the last index known to match the leader; on
    /// rejection it is the rejected `prev_index`, with a hint for backtracking.
    AppendResponse {
        index: u64,
        rejection: Option<AppendRejection>,
    },
    /// Keeps followers quiet and spreads `commit`; `read_seq` confirms reads.
    Heartbeat {
        commit: u64,
        read_seq: u64,
    },
    HeartbeatResponse {
        read_seq: u64,
    },
    /// The leader hands over: campaign now (`transfer.rs`).
    TimeoutNow,
    /// One chunk of the leader's snapshot: `data` goes at byte `offset` of a
    /// snapshot `total_bytes` long; `done` marks the last chunk.
    InstallSnapshot {
        meta: SnapshotMeta,
        offset: u64,
        total_bytes: u64,
        data: Vec<u8>,
        done: bool,
    },
    /// `offset_next` is how many bytes of the snapshot ending at `last_index`
    /// the follower holds; `done` once it has installed (or already had) it.
    InstallSnapshotResponse {
        last_index: u64,
        offset_next: u64,
        done: bool,
    },
}

/// Fast-backtracking hint: the follower's last index at or below the rejected
/// one whose term is at most the rejected `prev_term`, and that entry's term.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppendRejection {
    pub hint_index: u64,
    pub hint_term: u64,
}

impl MessageBody {
    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageBody::PreVote { .. } => "pre_vote",
            MessageBody::PreVoteResponse { .. } => "pre_vote_response",
            MessageBody::Vote { .. } => "vote",
            MessageBody::VoteResponse { .. } => "vote_response",
            MessageBody::Append { .. } => "append",
            MessageBody::AppendResponse { .. } => "append_response",
            MessageBody::Heartbeat { .. } => "heartbeat",
            MessageBody::HeartbeatResponse { .. } => "heartbeat_response",
            MessageBody::TimeoutNow => "timeout_now",
            MessageBody::InstallSnapshot { .. } => "install_snapshot",
            MessageBody::InstallSnapshotResponse { .. } => "install_snapshot_response",
        }
    }

    /// Only a leader sends these, and only in its own term.
    pub fn is_from_leader(&self) -> bool {
        matches!(
            self,
            MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. }
                | MessageBody::TimeoutNow
        )
    }
}

impl Message {
    /// Terms and indexes beyond this are refused, so arithmetic on them can
    /// never overflow (no real log gets near it).
    const TERM_INDEX_MAX: u64 = 1 << 62;

    pub(super) fn check_bounds(&self) -> Result<(), StepError> {
        let (message, limit) = (self, Message::TERM_INDEX_MAX);
        let fits = match &message.body {
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                *prev_index <= limit
                    && *prev_term <= limit
                    && *commit <= limit
                    && entries.len() as u64 <= limit - prev_index
            }
            MessageBody::InstallSnapshot { meta, .. } => {
                meta.last_index <= limit && meta.last_term <= limit
            }
            _ => true,
        };
        if message.term > limit || !fits {
            return Err(StepError::Malformed {
                kind: message.body.kind(),
                reason: "term or index out of range",
            });
        }
        Ok(())
    }
}
