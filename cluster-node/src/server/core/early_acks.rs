//! Acknowledgements that do not wait for the plain apply point: the weaker
//! replication modes and the planted `ack-before-commit` answer a write once
//! enough copies exist, before its commit (early) or after its apply (`sync`).
use serde_json::Value;

use super::Core;
use crate::kv::KvOp;
use crate::protocol::Response;

impl Core {
    /// Weaker modes and `ack-before-commit`: answer a put/delete once the
    /// leader's WAL and enough followers hold it, commit or not.
    pub(super) fn answer_early_writes(&mut self) {
        let durable = self.raft.status().last_index;
        let matches = self.raft.follower_matches();
        let held_by = |index: u64| matches.iter().filter(|m| **m >= index).count();
        let due: Vec<u64> = self
            .writes
            .iter()
            .filter(|(i, w)| {
                w.early_followers
                    .is_some_and(|n| **i <= durable && held_by(**i) >= n)
            })
            .map(|(i, _)| *i)
            .collect();
        for i in due {
            if let Some(w) = self.writes.remove(&i) {
                w.responder.answer(Response::Ok {
                    id: w.id,
                    value: Value::Null,
                });
            }
        }
        let copied: Vec<u64> = self
            .replicating
            .iter()
            .filter(|(i, (w, _))| w.copies_after_apply.is_some_and(|n| held_by(**i) >= n))
            .map(|(i, _)| *i)
            .collect();
        for i in copied {
            if let Some((w, response)) = self.replicating.remove(&i) {
                w.responder.answer(response);
            }
        }
    }

    /// How many followers must hold a write before it is acknowledged
    /// early; only state-independent ops (put, delete) can be, since their
    /// outcome is known before they apply (so never `cas`, `append`, `txn`).
    pub(super) fn early_followers(&self, op: &KvOp) -> Option<usize> {
        if !matches!(op, KvOp::Put { .. } | KvOp::Delete { .. }) {
            return None;
        }
        let followers = self.raft.membership().voters.len().saturating_sub(1);
        if self.bugs.ack_before_commit {
            return Some(0);
        }
        self.mode.early_ack_followers(followers)
    }

    /// How many followers must hold an applied write before it is
    /// acknowledged (`sync`: all of them).
    pub(super) fn copies_after_apply(&self) -> Option<usize> {
        self.mode
            .copies_after_apply(self.raft.membership().voters.len().saturating_sub(1))
    }
}
