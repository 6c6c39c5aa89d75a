//! The read path: ReadIndex for the correct node; local reads for the
//! weaker modes and the planted read bugs (`stale-read`, `lease-read`,
//! `lease-wallclock`, whose wall-clock lease is `lease.rs`).
use std::time::SystemTime;

use serde_json::Value;

use super::{refusal, Core, ReadWaiter};
use crate::protocol::Response;
use crate::raft::Role;

impl Core {
    /// Only planted bugs and weaker modes read without a ReadIndex round.
    fn reads_locally(&self) -> bool {
        let leads = self.raft.status().role == Role::Leader;
        self.bugs.stale_read || (leads && (self.bugs.lease_read || self.mode.reads_locally()))
    }

    /// `semi-sync` and `async` (with no read bug planted) read on the
    /// primary without a quorum round, but after its own log is applied, as
    /// a database primary reads its own acknowledged writes.
    fn reads_from_own_log(&self) -> bool {
        let leads = self.raft.status().role == Role::Leader;
        leads && self.mode.reads_wait_for_own_log() && !self.bugs.stale_read && !self.bugs.lease_read
    }

    /// Planted `lease-wallclock`: the index to read at locally (the commit
    /// index, once an entry of this term committed), if no transfer is
    /// under way and the wall clock says the lease of this term holds. The
    /// role is not checked: the lease outlives a check-quorum step-down.
    fn lease_read_index(&self) -> Option<u64> {
        let lease = self.lease_wallclock.as_ref()?;
        let status = self.raft.status();
        let committed_in_term = self.raft.term_at(status.commit) == Some(status.term);
        let holds = committed_in_term
            && self.raft.transferring_to().is_none()
            && lease.serves_locally(status.term, SystemTime::now());
        holds.then_some(status.commit)
    }

    /// Planted `lease-wallclock`: voter `from` answered this node in `term`;
    /// while this node leads that term, the answer extends its lease.
    pub(super) fn lease_acknowledged(&mut self, from: u64, term: u64) {
        let Some(lease) = &mut self.lease_wallclock else {
            return;
        };
        let status = self.raft.status();
        if status.role != Role::Leader || status.term != term || self.raft.transferring_to().is_some() {
            return;
        }
        lease.acknowledged(term, from, self.raft.membership(), status.id, SystemTime::now());
    }

    fn local_value(&self, key: &str) -> Value {
        self.kv
            .get(key)
            .cloned()
            .map(Value::from)
            .unwrap_or(Value::Null)
    }

    pub(super) fn serve_reads(&mut self) {
        let applied = self.applied.0;
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .reads_confirmed
            .drain(..)
            .partition(|(index, _)| *index <= applied);
        self.reads_confirmed = waiting;
        for (_, r) in ready {
            let value = self.local_value(&r.key);
            r.responder.answer(Response::Ok { id: r.id, value });
        }
    }

    /// The read path: the correct node never reads from local state alone;
    /// it answers once a quorum confirmed the leadership (ReadIndex) and the
    /// state machine caught up. Weaker modes and planted bugs read locally.
    pub(super) fn start_read(&mut self, waiter: ReadWaiter) {
        if self.reads_from_own_log() {
            // A primary's local state includes every write it acknowledged:
            // wait until its whole log is applied, then read locally.
            let index = self.raft.status().last_index;
            self.reads_confirmed.push((index, waiter));
            self.serve_reads();
            return;
        }
        if self.reads_locally() {
            let value = self.local_value(&waiter.key);
            waiter.responder.answer(Response::Ok {
                id: waiter.id,
                value,
            });
            return;
        }
        if let Some(index) = self.lease_read_index() {
            self.reads_confirmed.push((index, waiter));
            self.serve_reads();
            return;
        }
        let ctx = self.read_ctx_next;
        self.read_ctx_next += 1;
        match self.raft.read_index(ctx) {
            Ok(()) => {
                self.reads_unconfirmed.insert(ctx, waiter);
            }
            Err(e) => waiter.responder.answer(refusal(waiter.id, e)),
        }
    }
}
