//! Membership requests on the server: a change goes to the Raft core,
//! which checks and appends it, and its request is answered with the
//! configuration once the entry commits.
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{fail, Core, Reply, Waiter};
use crate::protocol::{Detail, ErrorCode, Response};
use crate::raft::{ChangeError, ConfChange, Entry, Membership, TransferError};
use crate::server::client::Responder;

impl Core {
    /// A committed membership change: the core already uses it; answer the
    /// request that proposed it with the configuration now in force.
    pub(super) fn applied_change(&mut self, entry: &Entry) {
        let membership = self.raft.membership_at(entry.index);
        tracing::info!(index = entry.index, %membership, "membership change committed");
        let Some(waiter) = self.writes.remove(&entry.index) else {
            return;
        };
        let response = match waiter.term == entry.term {
            true => Response::Ok { id: waiter.id, value: membership_value(&membership) },
            false => fail(waiter.id, ErrorCode::NotLeader, true, Detail::Leader(self.raft.status().leader)),
        };
        waiter.responder.answer(response);
    }

    /// The membership path: the leader checks and appends the change; the
    /// request is answered once it commits (or `timeout`).
    pub(super) fn start_change(&mut self, change: ConfChange, id: u64, deadline: Instant, responder: Responder) {
        match self.raft.propose_conf_change(change) {
            Ok((index, term)) => {
                tracing::info!(index, %change, "membership change proposed");
                let waiter = Waiter { id, term, early_followers: None, copies_after_apply: None, deadline, responder, reply: Reply::Outcome };
                self.writes.insert(index, waiter);
            }
            Err(ChangeError::NotLeader { leader }) => responder.answer(fail(id, ErrorCode::NotLeader, true, Detail::Leader(leader))),
            Err(e) => responder.answer(fail(id, ErrorCode::Refused, true, Detail::Message(e.to_string()))),
        }
    }

    /// Leadership transfer: answered as soon as the leader started it (it
    /// stops taking writes, catches the target up and tells it to
    /// campaign; `status` shows who leads after).
    pub(super) fn start_transfer(&mut self, to: u64, id: u64, responder: Responder) {
        match self.raft.transfer_leadership(to) {
            Ok(()) => {
                tracing::info!(to, "leadership transfer started");
                // The target may be elected at once: no lease survives that.
                if let Some(lease) = &mut self.lease_wallclock {
                    lease.revoke();
                }
                responder.answer(Response::Ok { id, value: json!({ "transferring_to": to }) });
            }
            Err(TransferError::NotLeader { leader }) => responder.answer(fail(id, ErrorCode::NotLeader, true, Detail::Leader(leader))),
            Err(e) => responder.answer(fail(id, ErrorCode::Refused, true, Detail::Message(e.to_string()))),
        }
    }
}

pub(super) fn membership_value(membership: &Membership) -> Value {
    json!({"voters": &membership.voters, "learners": &membership.learners})
}
