//! ReadIndex: linearizable reads without writing to the log. A read is
//! released only after a quorum answered a heartbeat sent after it arrived,
//! and only once the leader committed an entry of its own term.

use std::collections::VecDeque;

use super::error::ProposeError;
use super::node::RawNode;
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
}

impl RawNode {
    pub(super) fn request_read(&mut self, ctx: u64) -> Result<(), ProposeError> {
        let limit = self.config.reads_pending_max;
        if self.reads.len() >= limit as usize {
            return Err(ProposeError::TooManyReads { limit });
        }
        self.reads.waiting.push_back(ctx);
        self.start_waiting_reads();
        Ok(())
    }

    fn committed_in_term(&self) -> bool {
        self.log.term(self.log.committed()) == Some(self.term)
    }

    /// Moves waiting reads into a new confirmation round, if allowed yet.
    pub(super) fn start_waiting_reads(&mut self) {
        if self.reads.waiting.is_empty() || !rules::read_index_may_start(self.committed_in_term()) {
            return;
        }
        self.reads.seq_issued += 1;
        let (seq, index) = (self.reads.seq_issued, self.log.committed());
        while let Some(ctx) = self.reads.waiting.pop_front() {
            self.reads
                .pending
                .push_back(PendingRead { ctx, index, seq });
        }
        self.heartbeat_elapsed = 0;
        self.broadcast_heartbeat();
        self.release_confirmed_reads();
    }

    /// Releases every read whose round a quorum (the leader included) answered.
    pub(super) fn release_confirmed_reads(&mut self) {
        let quorum = self.config.quorum();
        while let Some(read) = self.reads.pending.front() {
            let confirmations = 1 + self
                .progress
                .values()
                .filter(|p| p.read_seq_acked >= read.seq)
                .count();
            if !rules::read_confirmed(confirmations, quorum) {
                break;
            }
            let ctx_index = (read.ctx, read.index);
            self.reads.pending.pop_front();
            self.read_states.push(ReadState {
                ctx: ctx_index.0,
                index: ctx_index.1,
            });
        }
    }
}
