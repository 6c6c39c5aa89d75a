//! The safety decisions of Raft, one small named function each, so a later
//! `Bugs` switch can flip any of them in exactly one place.

use super::message::MessageBody;

/// RequestVote's up-to-dateness check (Raft §5.4.1): grant only to a
/// candidate whose log is at least as up to date as ours.
pub(crate) fn vote_log_ok(
    candidate_last_term: u64,
    candidate_last_index: u64,
    own_last_term: u64,
    own_last_index: u64,
) -> bool {
    candidate_last_term > own_last_term
        || (candidate_last_term == own_last_term && candidate_last_index >= own_last_index)
}

/// The commit rule (Raft §5.4.2, figure 8): a leader commits by counting
/// replicas only for entries of its own term; older ones commit with them.
pub(crate) fn commit_by_counting_allowed(entry_term: u64, leader_term: u64) -> bool {
    entry_term == leader_term
}

/// Persist-before-send: a message that promises durable state (a vote, a
/// candidacy, an append or snapshot ack) may leave only after the `Ready`
/// that produced it is durable.
pub(crate) fn must_persist_before_send(body: &MessageBody) -> bool {
    match body {
        MessageBody::Vote { .. }
        | MessageBody::VoteResponse { .. }
        | MessageBody::PreVoteResponse { .. }
        | MessageBody::AppendResponse { .. }
        | MessageBody::InstallSnapshotResponse { .. } => true,
        MessageBody::PreVote { .. }
        | MessageBody::Append { .. }
        | MessageBody::Heartbeat { .. }
        | MessageBody::HeartbeatResponse { .. }
        | MessageBody::InstallSnapshot { .. }
        | MessageBody::TimeoutNow => false,
    }
}

/// ReadIndex may only start once the leader committed an entry of its own
/// term: before that its commit index may lag entries committed by others.
pub(crate) fn read_index_may_start(leader_committed_in_term: bool) -> bool {
    leader_committed_in_term
}

/// A read is served only once a quorum (the leader included) confirmed the
/// leadership after the read arrived.
pub(crate) fn read_confirmed(confirmations: usize, quorum: usize) -> bool {
    confirmations >= quorum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_log_check_compares_term_then_index() {
        assert!(vote_log_ok(3, 1, 2, 9));
        assert!(!vote_log_ok(2, 9, 3, 1));
        assert!(vote_log_ok(2, 5, 2, 5));
        assert!(!vote_log_ok(2, 4, 2, 5));
    }

    #[test]
    fn only_current_term_entries_commit_by_counting() {
        assert!(commit_by_counting_allowed(4, 4));
        assert!(!commit_by_counting_allowed(3, 4));
    }

    #[test]
    fn vote_responses_wait_for_persistence_but_heartbeats_do_not() {
        assert!(must_persist_before_send(&MessageBody::VoteResponse {
            granted: true
        }));
        assert!(!must_persist_before_send(&MessageBody::Heartbeat {
            commit: 0,
            read_seq: 0
        }));
    }
}
