//! Leader election: pre-vote, vote, and the role changes. Only the
//! `become_*` functions here change `role`.

use std::collections::BTreeMap;

use super::message::{Message, MessageBody};
use super::node::RawNode;
use super::progress::Progress;
use super::read_queue::ReadQueue;
use super::rules;
use super::types::{Entry, EntryKind, Role};

impl RawNode {
    /// Starts an election now, as if the election timeout had fired. A
    /// leader ignores it.
    pub fn campaign(&mut self) {
        if self.role == Role::Leader {
            return;
        }
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate(false);
        }
    }

    /// Campaigns at once, no pre-vote, on the leader's `TimeoutNow`: the
    /// vote requests say so (`transfer.rs`).
    pub(super) fn campaign_for_transfer(&mut self) {
        self.become_candidate(true);
    }

    pub(super) fn become_follower(&mut self, term: u64, leader: Option<u64>) {
        assert!(term >= self.term, "terms never go down");
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.leave_office();
    }

    fn become_pre_candidate(&mut self) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.leave_office();
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let campaign_term = self.term + 1;
        for peer in self.other_voters() {
            self.send_with_term(
                peer,
                campaign_term,
                MessageBody::PreVote {
                    last_index,
                    last_term,
                },
            );
        }
        self.record_vote(self.config.id, campaign_term, true);
    }

    fn become_candidate(&mut self, transfer: bool) {
        self.term += 1;
        self.vote = Some(self.config.id);
        self.role = Role::Candidate;
        self.leader = None;
        self.leave_office();
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        // Vote requests wait for the self-vote to be durable (see rules).
        for peer in self.other_voters() {
            self.send(
                peer,
                MessageBody::Vote {
                    last_index,
                    last_term,
                    transfer,
                },
            );
        }
        self.record_vote(self.config.id, self.term, true);
    }

    fn become_leader(&mut self) {
        assert!(
            self.role == Role::Candidate,
            "only a candidate becomes leader"
        );
        self.role = Role::Leader;
        self.leader = Some(self.config.id);
        self.leave_office();
        let next_index = self.log.last_index() + 1;
        let inflight_max = self.config.inflight_messages_max;
        self.progress = self
            .other_members()
            .into_iter()
            .map(|p| (p, Progress::new(next_index, inflight_max)))
            .collect();
        // The no-op lets the leader commit (and serve reads) in its own term.
        // The planted commit-old-term bug goes without it, as the paper's
        // figure 8 does: with a no-op sent along with the old entries, the
        // no-op always commits with them and counting never decides.
        let no_op = !self.config.bugs.commit_old_term;
        if no_op {
            self.log.push(Entry {
                term: self.term,
                index: next_index,
                data: Vec::new(),
                kind: EntryKind::Normal,
            });
        }
        // Without a no-op, an empty append probes each follower's log (the
        // paper's initial heartbeat), so missing old entries still flow.
        self.broadcast_append(!no_op);
    }

    /// Clears everything that belongs to one stint in one role.
    fn leave_office(&mut self) {
        self.reset_election_timer();
        self.heartbeat_elapsed = 0;
        self.votes = BTreeMap::new();
        self.progress = BTreeMap::new();
        self.reads = ReadQueue::default();
        self.snapshot_receiver.clear();
        self.transfer = None;
    }

    /// Candidate: asks again every peer that has not answered this term.
    /// Raft retries RPCs that get no answer (§5.1): a request lost to a
    /// broken connection or a restarting peer would otherwise cost the whole
    /// election timeout.
    pub(super) fn retry_vote_requests(&mut self) {
        assert!(self.role == Role::Candidate, "only a candidate asks for votes");
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let silent: Vec<u64> = self
            .other_voters()
            .into_iter()
            .filter(|peer| !self.votes.contains_key(peer))
            .collect();
        for peer in silent {
            // A retry is no transfer: the leader's lease has passed by now
            // or the first requests already won.
            self.send(peer, MessageBody::Vote { last_index, last_term, transfer: false });
        }
    }

    /// Answers a PreVote or Vote whose term is at least ours.
    pub(super) fn handle_vote_request(&mut self, message: &Message) {
        let (pre, last_index, last_term) = match message.body {
            MessageBody::PreVote {
                last_index,
                last_term,
            } => (true, last_index, last_term),
            MessageBody::Vote {
                last_index,
                last_term,
                ..
            } => (false, last_index, last_term),
            _ => return,
        };
        let free_to_vote = self.vote == Some(message.from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre && message.term > self.term);
        let granted = free_to_vote
            && (self.config.bugs.vote_without_log_check
                || rules::vote_log_ok(
                    last_term,
                    last_index,
                    self.log.last_term(),
                    self.log.last_index(),
                ));
        if pre {
            let term = if granted { message.term } else { self.term };
            self.send_with_term(message.from, term, MessageBody::PreVoteResponse { granted });
            return;
        }
        if granted {
            self.election_elapsed = 0;
            self.vote = Some(message.from);
        }
        self.send(message.from, MessageBody::VoteResponse { granted });
    }

    /// Counts one (pre-)vote and acts once the campaign is decided.
    pub(super) fn record_vote(&mut self, from: u64, term: u64, granted: bool) {
        let expected_term = match self.role {
            Role::PreCandidate if granted => self.term + 1,
            Role::PreCandidate | Role::Candidate => self.term,
            Role::Follower | Role::Leader => return,
        };
        if term != expected_term || !self.membership.is_voter(from) {
            return;
        }
        self.votes.entry(from).or_insert(granted);
        let quorum = self.membership.quorum();
        let yes = self.votes.values().filter(|&&v| v).count();
        let no = self.votes.len() - yes;
        if yes >= quorum {
            match self.role {
                Role::PreCandidate => self.become_candidate(false),
                _ => self.become_leader(),
            }
        } else if no >= quorum {
            self.become_follower(self.term, None);
        }
    }

    /// Check-quorum: did a majority (this leader included) answer us since
    /// the last round? Starts a new round.
    pub(super) fn quorum_recently_active(&mut self) -> bool {
        let membership = &self.membership;
        let voters_active = self.progress.iter().filter(|(id, p)| p.recent_active && membership.is_voter(**id)).count();
        let active = usize::from(self.counts_itself()) + voters_active;
        for progress in self.progress.values_mut() {
            progress.recent_active = false;
        }
        active >= self.membership.quorum()
    }
}
