//! `ReadQueue`: a leader's ReadIndex reads as plain state. A read waits for
//! the leader's first commit in its term, then joins a heartbeat round; it is
//! released once a quorum echoed that round. The queue only computes from
//! what it is given; `read_index.rs` drives it from `RawNode`.

use std::collections::VecDeque;

use super::error::ProposeError;
use super::rules;
use super::types::ReadState;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PendingRead {
    ctx: u64,
    /// The commit index when the read arrived: serve it once applied here.
    index: u64,
    /// The heartbeat round whose quorum answer confirms it.
    seq: u64,
}

/// A leader's reads: waiting for its first commit, or for confirmation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct ReadQueue {
    seq_issued: u64,
    waiting: VecDeque<u64>,
    pending: VecDeque<PendingRead>,
}

impl ReadQueue {
    /// The latest heartbeat round; heartbeats carry it so answers confirm it.
    pub(crate) fn seq_issued(&self) -> u64 {
        self.seq_issued
    }

    fn len(&self) -> usize {
        self.waiting.len() + self.pending.len()
    }

    /// Queues read `ctx` for the next round, unless `reads_pending_max`
    /// reads already wait.
    pub(crate) fn push(&mut self, ctx: u64, reads_pending_max: u32) -> Result<(), ProposeError> {
        if self.len() >= reads_pending_max as usize {
            return Err(ProposeError::TooManyReads {
                limit: reads_pending_max,
            });
        }
        self.waiting.push_back(ctx);
        Ok(())
    }

    /// Moves the waiting reads into a new round, to be served once applied
    /// through `commit_index`. Returns false, changing nothing, when no read
    /// waits or the leader has not committed an entry of its term yet; on
    /// true the caller sends the round's heartbeats.
    pub(crate) fn start_round(&mut self, commit_index: u64, committed_in_term: bool) -> bool {
        if self.waiting.is_empty() || !rules::read_index_may_start(committed_in_term) {
            return false;
        }
        self.seq_issued += 1;
        let seq = self.seq_issued;
        while let Some(ctx) = self.waiting.pop_front() {
            self.pending.push_back(PendingRead {
                ctx,
                index: commit_index,
                seq,
            });
        }
        true
    }

    /// Takes, oldest first, every read whose round a quorum answered.
    /// `seqs_acked` yields each follower's highest echoed round; the leader
    /// counts itself.
    pub(crate) fn take_confirmed(
        &mut self,
        seqs_acked: impl Iterator<Item = u64> + Clone,
        quorum: usize,
    ) -> Vec<ReadState> {
        let mut confirmed = Vec::new();
        while let Some(read) = self.pending.front() {
            let confirmations = 1 + seqs_acked.clone().filter(|&seq| seq >= read.seq).count();
            if !rules::read_confirmed(confirmations, quorum) {
                break;
            }
            confirmed.push(ReadState {
                ctx: read.ctx,
                index: read.index,
            });
            self.pending.pop_front();
        }
        confirmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wait_for_a_commit_in_the_leaders_term() {
        let mut reads = ReadQueue::default();
        reads.push(7, 10).unwrap();
        assert!(!reads.start_round(5, false));
        assert_eq!(reads.seq_issued(), 0);
        assert!(reads.start_round(5, true));
        assert_eq!(reads.seq_issued(), 1);
        assert!(!reads.start_round(6, true), "nothing left waiting");
    }

    #[test]
    fn a_round_is_released_once_a_quorum_echoed_it() {
        let mut reads = ReadQueue::default();
        reads.push(1, 10).unwrap();
        reads.push(2, 10).unwrap();
        assert!(reads.start_round(4, true));
        reads.push(3, 10).unwrap();
        assert!(reads.start_round(6, true));
        // Five voters: the leader and two followers make a quorum.
        assert!(reads.take_confirmed([1, 0, 0, 0].into_iter(), 3).is_empty());
        let first = reads.take_confirmed([1, 1, 0, 0].into_iter(), 3);
        assert_eq!(
            first,
            vec![
                ReadState { ctx: 1, index: 4 },
                ReadState { ctx: 2, index: 4 }
            ]
        );
        let second = reads.take_confirmed([2, 0, 2, 0].into_iter(), 3);
        assert_eq!(second, vec![ReadState { ctx: 3, index: 6 }]);
    }

    #[test]
    fn reads_beyond_the_limit_are_refused() {
        let mut reads = ReadQueue::default();
        reads.push(1, 2).unwrap();
        assert!(reads.start_round(1, true));
        reads.push(2, 2).unwrap();
        assert_eq!(
            reads.push(3, 2),
            Err(ProposeError::TooManyReads { limit: 2 })
        );
    }
}
