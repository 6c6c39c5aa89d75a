//! Membership changes in the core: the configuration each node uses (the
//! latest in its log, from the moment an entry is appended), the leader's
//! checks before it appends a change, and who counts for what (only
//! voters vote, commit and confirm leadership; learners only receive).
//! The rules and why they are safe are in `membership.rs`.

use super::membership::{ChangeError, ConfChange, Membership};
use super::node::RawNode;
use super::progress::Progress;
use super::types::{Entry, EntryKind, Role};

impl RawNode {
    /// The configuration this node uses now.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The configuration in force at `index` (at most the last index and
    /// at least the snapshot's): what a snapshot taken there must carry.
    pub fn membership_at(&self, index: u64) -> Membership {
        self.replay_membership(index).0
    }

    /// The membership at the snapshot (or the bootstrap voters), changed by
    /// every configuration entry up to `index`, and the index of the last
    /// such entry (0: none in the log).
    fn replay_membership(&self, index: u64) -> (Membership, u64) {
        let mut membership = match self.log.snapshot() {
            Some(snapshot) => Membership {
                voters: snapshot.meta.voters.iter().copied().collect(),
                learners: snapshot.meta.learners.iter().copied().collect(),
            },
            None => Membership::of_voters(self.config.peers.iter().copied()),
        };
        let mut changed_at = 0;
        for entry in self
            .log
            .entries()
            .iter()
            .take_while(|entry| entry.index <= index)
        {
            if entry.kind != EntryKind::Config {
                continue;
            }
            // A leader appends only changes it checked; one that does not
            // decode or apply was never a change, and changes nothing.
            let change = ConfChange::decode(&entry.data).ok();
            if let Some(next) = change.and_then(|change| membership.apply(change).ok()) {
                membership = next;
                changed_at = entry.index;
            }
        }
        (membership, changed_at)
    }

    /// Recomputes the configuration after the log changed (appends,
    /// truncation, a snapshot, restart); a leader follows it with progress
    /// for new members and none for removed ones.
    pub(super) fn refresh_membership(&mut self) {
        let (membership, changed_at) = self.replay_membership(self.log.last_index());
        self.membership = membership;
        self.membership_index = changed_at;
        if self.role != Role::Leader {
            return;
        }
        let members = self.membership.members();
        self.progress.retain(|id, _| members.contains(id));
        let next_index = self.log.last_index() + 1;
        for id in members.into_iter().filter(|id| *id != self.config.id) {
            self.progress
                .entry(id)
                .or_insert_with(|| Progress::new(next_index, self.config.inflight_messages_max));
        }
    }

    /// Leader: appends a configuration entry for `change`; it is in force
    /// at once and committed like any entry. Returns (index, term).
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<(u64, u64), ChangeError> {
        if self.role != Role::Leader {
            return Err(ChangeError::NotLeader {
                leader: self.leader,
            });
        }
        let committed = self.log.committed();
        if self.membership_index > committed && !self.config.bugs.concurrent_changes {
            return Err(ChangeError::InProgress {
                index: self.membership_index,
            });
        }
        if self.log.term(committed) != Some(self.term) {
            return Err(ChangeError::LeaderNotReady);
        }
        let limit = self.config.uncommitted_entries_max;
        if self.log.last_index() - committed >= u64::from(limit) {
            return Err(ChangeError::TooManyUncommitted { limit });
        }
        self.membership.apply(change)?;
        if let ConfChange::Promote(id) = change {
            self.check_caught_up(id)?;
        }
        let (index, term) = (self.log.last_index() + 1, self.term);
        self.log.push(Entry {
            term,
            index,
            data: change.encode(),
            kind: EntryKind::Config,
        });
        self.refresh_membership();
        self.broadcast_append(false);
        Ok((index, term))
    }

    /// A learner may become a voter once its log is within
    /// `catch_up_entries_max` of the leader's.
    fn check_caught_up(&self, id: u64) -> Result<(), ChangeError> {
        if self.config.bugs.promote_before_caught_up {
            return Ok(());
        }
        let matched = self
            .progress
            .get(&id)
            .map_or(0, |progress| progress.match_index);
        let behind = self.log.last_index().saturating_sub(matched);
        let limit = self.config.catch_up_entries_max;
        if behind > limit {
            return Err(ChangeError::NotCaughtUp { id, behind, limit });
        }
        Ok(())
    }

    /// Leader: once the change that removed it is committed, it steps
    /// down (§4.2.2); until then it leads without counting itself.
    pub(super) fn step_down_if_removed(&mut self) {
        let removed = !self.membership.is_voter(self.config.id);
        if self.role == Role::Leader && removed && self.log.committed() >= self.membership_index {
            self.become_follower(self.term, None);
        }
    }

    /// Whether this node starts elections: a voter of its latest
    /// configuration, or of the committed one (a node removed by an entry
    /// not yet committed may still be needed to commit it, §4.2.2; it then
    /// campaigns without counting its own vote). Learners and nodes outside
    /// both never do, so a spare node cannot disrupt a cluster.
    pub(super) fn may_campaign(&self) -> bool {
        let id = self.config.id;
        self.membership.is_voter(id)
            || (self.membership_index > self.log.committed()
                && self.membership_at(self.log.committed()).is_voter(id))
    }

    /// Whether this node counts toward its own majorities.
    pub(super) fn counts_itself(&self) -> bool {
        self.membership.is_voter(self.config.id)
    }

    /// Whether `id`'s copy of the log counts toward commit: a voter's, and
    /// with the planted `promote-before-caught-up` bug a learner's too, as
    /// if it were promoted the moment it joined.
    pub(super) fn counts_for_commit(&self, id: u64) -> bool {
        self.membership.is_voter(id)
            || (self.config.bugs.promote_before_caught_up && self.membership.learners.contains(&id))
    }

    /// Every other voter.
    pub(super) fn other_voters(&self) -> Vec<u64> {
        self.membership
            .voters
            .iter()
            .copied()
            .filter(|id| *id != self.config.id)
            .collect()
    }

    /// Every other member, voter or learner: whom a leader replicates to.
    pub(super) fn other_members(&self) -> Vec<u64> {
        self.membership
            .members()
            .into_iter()
            .filter(|id| *id != self.config.id)
            .collect()
    }
}
