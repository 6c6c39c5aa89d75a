//! Errors the core returns. Operating errors only: a broken invariant panics.

use super::config::ConfigError;

/// `RawNode::new` refused its input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NewError {
    #[error("invalid config: {0}")]
    Config(#[from] ConfigError),
    #[error("restored log is not contiguous at index {index}")]
    LogGap { index: u64 },
    #[error("restored log has terms going down at index {index}")]
    TermsDecrease { index: u64 },
    #[error("restored hard state term {hard_state_term} is below the log's last term {log_term}")]
    TermBelowLog { hard_state_term: u64, log_term: u64 },
}

/// A message the core would not take. Stale messages are not errors: they
/// are dropped (or answered) silently.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("message addressed to {to}, this node is {id}")]
    WrongRecipient { to: u64, id: u64 },
    #[error("message from unknown peer {from}")]
    UnknownPeer { from: u64 },
    #[error("malformed {kind} message: {reason}")]
    Malformed {
        kind: &'static str,
        reason: &'static str,
    },
    /// A well-formed message from the current term that contradicts what
    /// Raft guarantees (one leader per term; a leader holds every committed
    /// entry): some node in the cluster broke the protocol. The message is
    /// dropped; the server reports it loudly, as etcd's raft panics.
    #[error("raft safety violation in {kind} message from {from}: {reason}")]
    SafetyViolation {
        kind: &'static str,
        from: u64,
        reason: &'static str,
    },
    /// The snapshot arrived whole but the state machine's check refused its
    /// data (`RawNode::set_snapshot_check`); the core did not adopt it.
    #[error("snapshot through index {index} rejected: {reason}")]
    SnapshotRejected { index: u64, reason: String },
}

/// A proposal or read the core would not take.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("too many uncommitted entries (limit {limit})")]
    TooManyUncommitted { limit: u32 },
    #[error("too many reads pending (limit {limit})")]
    TooManyReads { limit: u32 },
    #[error("empty proposals are reserved for the leader's no-op")]
    Empty,
    #[error("handing leadership to node {to}; retry")]
    Transferring { to: u64 },
}

/// `compact` refused a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    #[error("snapshot index {index} is beyond the applied index {applied}")]
    BeyondApplied { index: u64, applied: u64 },
    #[error("snapshot index {index} is not after the current snapshot {current}")]
    NotNewer { index: u64, current: u64 },
    #[error("snapshot at index {index} carries {carried}, but {in_force} was in force there")]
    MembershipMismatch { index: u64, carried: String, in_force: String },
    #[error("snapshot term {term} at index {index} does not match the log's term {log_term:?}")]
    TermMismatch {
        index: u64,
        term: u64,
        log_term: Option<u64>,
    },
}
