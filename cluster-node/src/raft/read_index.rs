//! ReadIndex: linearizable reads without writing to the log. A read is
//! released only after a quorum answered a heartbeat sent after it arrived,
//! and only once the leader committed an entry of its own term. The reads
//! themselves are a `ReadQueue`; this file feeds it the leader's state and
//! acts on its answers.

use super::error::ProposeError;
use super::node::RawNode;

impl RawNode {
    pub(super) fn request_read(&mut self, ctx: u64) -> Result<(), ProposeError> {
        self.reads.push(ctx, self.config.reads_pending_max)?;
        self.start_waiting_reads();
        Ok(())
    }

    /// Moves waiting reads into a new confirmation round, if allowed yet.
    pub(super) fn start_waiting_reads(&mut self) {
        let commit_index = self.log.committed();
        let committed_in_term = self.log.term(commit_index) == Some(self.term);
        if !self.reads.start_round(commit_index, committed_in_term) {
            return;
        }
        self.heartbeat_elapsed = 0;
        self.broadcast_heartbeat();
        self.release_confirmed_reads();
    }

    /// Releases every read whose round a quorum (the leader included) answered.
    pub(super) fn release_confirmed_reads(&mut self) {
        let membership = &self.membership;
        let seqs_acked = self.progress.iter().filter(|(id, _)| membership.is_voter(**id)).map(|(_, p)| p.read_seq_acked);
        // The queue counts the leader itself; one that is no voter (it is
        // removing itself) needs one more voter instead.
        let quorum = self.membership.quorum() + usize::from(!self.counts_itself());
        let confirmed = self.reads.take_confirmed(seqs_acked, quorum);
        self.read_states.extend(confirmed);
    }
}
