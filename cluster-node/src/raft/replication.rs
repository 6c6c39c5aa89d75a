//! Log replication: the leader's appends and heartbeats, the follower's
//! consistency check, and the commit rule.

use super::error::StepError;
use super::message::{AppendRejection, MessageBody};
use super::node::RawNode;
use super::progress::ReplicationState;
use super::rules;
use super::types::{Entry, EntryKind, Role};

impl RawNode {
    /// Sends appends to every follower that is not paused; with
    /// `allow_empty` also to those already up to date (to spread `commit`).
    pub(super) fn broadcast_append(&mut self, allow_empty: bool) {
        for peer in self.other_members() {
            self.send_append(peer, allow_empty);
        }
    }

    /// Sends `peer` what it is missing, within its window. Returns true if a
    /// message with entries went out (the caller may try again).
    pub(super) fn send_append(&mut self, peer: u64, allow_empty: bool) -> bool {
        let Some(progress) = self.progress.get(&peer) else {
            return false;
        };
        if progress.is_paused() {
            return false;
        }
        let next_index = progress.next_index;
        let prev_index = next_index - 1;
        let Some(prev_term) = self.log.term(prev_index) else {
            self.start_snapshot(peer);
            return false;
        };
        let entries = self.log.slice(
            next_index,
            self.log.last_index(),
            u64::from(self.config.entries_per_message_max),
        );
        if entries.is_empty() && !allow_empty {
            return false;
        }
        let last_sent = entries.last().map(|e| e.index);
        if let Some(progress) = self.progress.get_mut(&peer) {
            progress.sent_append(last_sent);
        }
        let commit = self.log.committed();
        self.send(
            peer,
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            },
        );
        last_sent.is_some()
    }

    /// Sends as much as the window allows; bounded by the window size.
    pub(super) fn send_appends_while_possible(&mut self, peer: u64) {
        for _ in 0..=self.config.inflight_messages_max {
            if !self.send_append(peer, false) {
                break;
            }
        }
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        let read_seq = self.reads.seq_issued();
        for peer in self.other_members() {
            let Some(progress) = self.progress.get(&peer) else {
                continue;
            };
            // Never tell a follower to commit past what it is known to hold.
            let commit = progress.match_index.min(self.log.committed());
            let streaming = matches!(progress.state, ReplicationState::Snapshot { .. });
            self.send(peer, MessageBody::Heartbeat { commit, read_seq });
            if streaming {
                // Resend the unacknowledged chunk: it or its ack may be lost.
                self.send_snapshot_chunk(peer);
            }
        }
    }

    /// Follower: the AppendEntries consistency check, conflict truncation
    /// and the commit update.
    pub(super) fn handle_append(
        &mut self,
        from: u64,
        term: u64,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    ) -> Result<(), StepError> {
        check_append_entries(term, prev_index, prev_term, &entries)?;
        if prev_index < self.log.committed() {
            // Everything up to our commit matches any current leader.
            let index = self.log.committed();
            self.send(
                from,
                MessageBody::AppendResponse {
                    index,
                    rejection: None,
                },
            );
            return Ok(());
        }
        if self.log.term(prev_index) != Some(prev_term) {
            let hint_index = prev_index.min(self.log.last_index());
            let (hint_index, hint_term) = self.log.find_conflict_by_term(hint_index, prev_term);
            let rejection = Some(AppendRejection {
                hint_index,
                hint_term,
            });
            self.send(
                from,
                MessageBody::AppendResponse {
                    index: prev_index,
                    rejection,
                },
            );
            return Ok(());
        }
        if let Some(conflict) = self.log.find_conflict(&entries) {
            if conflict <= self.log.committed() {
                return Err(StepError::SafetyViolation {
                    kind: "append",
                    from,
                    reason: "the leader's entries conflict with a committed entry",
                });
            }
            let skip = (conflict - prev_index - 1) as usize;
            // The configuration changes only if the entry that set it is
            // dropped or a new one arrives: no log scan on every append.
            let reconfigures = self.membership_index >= conflict
                || entries[skip..].iter().any(|e| e.kind == EntryKind::Config);
            self.retract_acks_beyond(conflict - 1);
            self.log.truncate_and_append(&entries[skip..]);
            if reconfigures {
                self.refresh_membership();
            }
        }
        let last_new_index = prev_index + entries.len() as u64;
        self.log.commit_to(commit.min(last_new_index));
        self.send(
            from,
            MessageBody::AppendResponse {
                index: last_new_index,
                rejection: None,
            },
        );
        Ok(())
    }

    /// Withdraws queued acks for entries we are about to drop: they would
    /// tell an older leader we hold entries we no longer have.
    pub(super) fn retract_acks_beyond(&mut self, index_max: u64) {
        self.messages_after_persist.retain(|m| {
            !matches!(m.body, MessageBody::AppendResponse { index, rejection: None } if index > index_max)
        });
    }

    pub(super) fn handle_heartbeat(&mut self, from: u64, commit: u64, read_seq: u64) {
        self.log.commit_to(commit.min(self.log.last_index()));
        self.send(from, MessageBody::HeartbeatResponse { read_seq });
    }

    /// Leader: an append was acknowledged or rejected.
    pub(super) fn handle_append_response(
        &mut self,
        from: u64,
        index: u64,
        rejection: Option<AppendRejection>,
    ) -> Result<(), StepError> {
        if index > self.log.last_index() {
            // The follower holds (or has committed) entries this term's
            // leader lacks: leader completeness is broken.
            return Err(StepError::SafetyViolation {
                kind: "append_response",
                from,
                reason: "the follower's index is beyond the leader's log",
            });
        }
        let Some(progress) = self.progress.get_mut(&from) else {
            return Ok(());
        };
        progress.recent_active = true;
        match rejection {
            Some(rejection) => self.handle_append_rejection(from, index, rejection),
            None => self.handle_append_success(from, index),
        }
        Ok(())
    }

    fn handle_append_rejection(&mut self, from: u64, rejected: u64, rejection: AppendRejection) {
        // Fast backtracking: jump to the last index where our log could
        // agree with the follower's, not one entry back per round trip.
        let probe_hint = if rejection.hint_term > 0 {
            self.log
                .find_conflict_by_term(rejection.hint_index, rejection.hint_term)
                .0
        } else {
            rejection.hint_index
        };
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        if progress.maybe_decrease_to(rejected, probe_hint) {
            if progress.state == ReplicationState::Replicate {
                progress.become_probe();
            }
            self.send_append(from, true);
        }
    }

    fn handle_append_success(&mut self, from: u64, index: u64) {
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        let updated = progress.maybe_update(index);
        // A probe answered at the known match index also proves agreement.
        let probe_confirmed = progress.match_index == index
            && matches!(progress.state, ReplicationState::Probe { .. });
        if !updated && !probe_confirmed {
            return;
        }
        match progress.state {
            ReplicationState::Probe { .. } => progress.become_replicate(),
            ReplicationState::Snapshot { last_index, .. } if progress.match_index >= last_index => {
                progress.become_probe();
            }
            ReplicationState::Snapshot { .. } | ReplicationState::Replicate => {}
        }
        if self.maybe_commit() {
            self.broadcast_append(true);
            self.step_down_if_removed();
            if self.role != Role::Leader {
                return;
            }
        }
        self.send_timeout_now_if_caught_up(from);
        self.send_appends_while_possible(from);
    }

    pub(super) fn handle_heartbeat_response(&mut self, from: u64, read_seq: u64) {
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        progress.read_seq_acked = progress.read_seq_acked.max(read_seq);
        progress.unpause_on_heartbeat();
        if progress.match_index < self.log.last_index() {
            self.send_append(from, true);
        }
        self.release_confirmed_reads();
    }

    /// Leader: commits the highest index a quorum holds, if the commit rule
    /// allows it. Returns true if the commit index moved.
    pub(super) fn maybe_commit(&mut self) -> bool {
        let mut matches: Vec<u64> =
            self.progress.iter().filter(|(id, _)| self.counts_for_commit(**id)).map(|(_, p)| p.match_index).collect();
        // The leader counts only what it made durable itself, and only
        // while it is a voter (a leader removing itself does not).
        if self.counts_itself() {
            matches.push(self.log.stable_index());
        }
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&quorum_index) = matches.get(self.membership.quorum() - 1) else {
            return false;
        };
        if quorum_index <= self.log.committed() {
            return false;
        }
        let Some(entry_term) = self.log.term(quorum_index) else {
            return false;
        };
        let old_term_allowed = self.config.bugs.commit_old_term;
        if !old_term_allowed && !rules::commit_by_counting_allowed(entry_term, self.term) {
            return false;
        }
        self.log.commit_to(quorum_index);
        self.start_waiting_reads();
        true
    }
}

/// Rejects an append no correct leader could have sent.
fn check_append_entries(
    term: u64,
    prev_index: u64,
    prev_term: u64,
    entries: &[Entry],
) -> Result<(), StepError> {
    let malformed = |reason| {
        Err(StepError::Malformed {
            kind: "append",
            reason,
        })
    };
    let (mut index, mut entry_term) = (prev_index, prev_term);
    for entry in entries {
        if index.checked_add(1) != Some(entry.index) {
            return malformed("entries not contiguous");
        }
        if entry.term < entry_term || entry.term > term {
            return malformed("entry terms out of order");
        }
        (index, entry_term) = (entry.index, entry.term);
    }
    if prev_term > term {
        return malformed("prev_term beyond the message term");
    }
    Ok(())
}
