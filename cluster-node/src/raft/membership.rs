//! Cluster membership: which nodes vote and which only learn, and the
//! single-server changes (Raft dissertation §4.1) that move between them.
//!
//! Why it is safe:
//! - A change adds or removes one voter at a time, so every majority of the
//!   old voters overlaps every majority of the new ones (§4.1, figure 4.3):
//!   no term can elect two leaders across a change, and a commit by one
//!   configuration's majority is seen by the other's.
//! - Each node uses the latest configuration in its log, committed or not,
//!   from the moment the entry is appended (§4.1); a truncated entry takes
//!   its configuration with it.
//! - The leader starts a change only once the previous one is committed and
//!   it has committed an entry of its own term, so at most one change is
//!   ever uncommitted (the fix to the single-server bug Ongaro posted to
//!   raft-dev in 2015: without it, a new leader's change and an older
//!   uncommitted one can form disjoint majorities).
//! - Learners receive entries and snapshots but neither vote nor count
//!   toward commit or leadership checks, so adding one changes no majority.
//!   Promotion is the one-voter change, and only once the learner is
//!   within `catch_up_entries_max` of the leader's log, so the new voter
//!   does not stall commits while it catches up (§4.2.1).
//! - A leader that removes itself keeps leading (without counting itself)
//!   until the change commits, then steps down (§4.2.2).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Voters and learners; a node in neither is not a member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    pub voters: BTreeSet<u64>,
    #[serde(default)]
    pub learners: BTreeSet<u64>,
}

/// One single-server change, carried by a configuration entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConfChange {
    /// A new node joins as a learner.
    AddLearner(u64),
    /// A caught-up learner becomes a voter.
    Promote(u64),
    /// A voter or learner leaves.
    Remove(u64),
}

/// Why a change was refused. The leader checks these before it appends.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("a membership change is in progress (entry {index} is not committed)")]
    InProgress { index: u64 },
    #[error("the leader has not committed an entry of its term yet; retry")]
    LeaderNotReady,
    #[error("node id 0 is not a node")]
    IdZero,
    #[error("node {id} is already a member")]
    AlreadyMember { id: u64 },
    #[error("node {id} is not a member")]
    UnknownNode { id: u64 },
    #[error("node {id} is a voter, not a learner")]
    NotALearner { id: u64 },
    #[error("node {id} is {behind} entries behind the leader (promotion waits until it is within {limit})")]
    NotCaughtUp { id: u64, behind: u64, limit: u64 },
    #[error("node {id} is the last voter")]
    LastVoter { id: u64 },
    #[error("too many uncommitted entries (limit {limit})")]
    TooManyUncommitted { limit: u32 },
}

/// A configuration entry's data that is not a change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed configuration entry: {0}")]
pub struct ConfChangeDecodeError(pub &'static str);

const TAG_ADD_LEARNER: u8 = 1;
const TAG_PROMOTE: u8 = 2;
const TAG_REMOVE: u8 = 3;

impl ConfChange {
    /// The node the change is about.
    pub fn node(self) -> u64 {
        match self {
            ConfChange::AddLearner(id) | ConfChange::Promote(id) | ConfChange::Remove(id) => id,
        }
    }

    /// A configuration entry's data: a tag byte and the node id (u64 LE).
    pub fn encode(self) -> Vec<u8> {
        let tag = match self {
            ConfChange::AddLearner(_) => TAG_ADD_LEARNER,
            ConfChange::Promote(_) => TAG_PROMOTE,
            ConfChange::Remove(_) => TAG_REMOVE,
        };
        let mut data = vec![tag];
        data.extend_from_slice(&self.node().to_le_bytes());
        data
    }

    pub fn decode(data: &[u8]) -> Result<ConfChange, ConfChangeDecodeError> {
        let (tag, id) = match data {
            [tag, id @ ..] if id.len() == 8 => {
                (*tag, u64::from_le_bytes(id.try_into().expect("8 bytes")))
            }
            _ => return Err(ConfChangeDecodeError("expected a tag byte and a u64")),
        };
        match tag {
            TAG_ADD_LEARNER => Ok(ConfChange::AddLearner(id)),
            TAG_PROMOTE => Ok(ConfChange::Promote(id)),
            TAG_REMOVE => Ok(ConfChange::Remove(id)),
            _ => Err(ConfChangeDecodeError("unknown change tag")),
        }
    }
}

impl std::fmt::Display for ConfChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfChange::AddLearner(id) => write!(f, "add learner {id}"),
            ConfChange::Promote(id) => write!(f, "promote {id}"),
            ConfChange::Remove(id) => write!(f, "remove {id}"),
        }
    }
}

impl Membership {
    /// Every node in `voters` votes; no learners.
    pub fn of_voters(voters: impl IntoIterator<Item = u64>) -> Membership {
        Membership {
            voters: voters.into_iter().collect(),
            learners: BTreeSet::new(),
        }
    }

    /// Votes needed to win an election or commit an entry.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub fn is_voter(&self, id: u64) -> bool {
        self.voters.contains(&id)
    }

    pub fn contains(&self, id: u64) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// Voters and learners, ascending.
    pub fn members(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self.voters.union(&self.learners).copied().collect();
        all.sort_unstable();
        all
    }

    /// The membership after `change`, or why the change makes no sense
    /// here. (The leader's own conditions, in progress and caught up, are
    /// checked by the leader.)
    pub fn apply(&self, change: ConfChange) -> Result<Membership, ChangeError> {
        let id = change.node();
        if id == 0 {
            return Err(ChangeError::IdZero);
        }
        let mut next = self.clone();
        match change {
            ConfChange::AddLearner(_) if self.contains(id) => {
                return Err(ChangeError::AlreadyMember { id })
            }
            ConfChange::AddLearner(_) => {
                next.learners.insert(id);
            }
            ConfChange::Promote(_) if self.is_voter(id) => {
                return Err(ChangeError::NotALearner { id })
            }
            ConfChange::Promote(_) if !self.contains(id) => {
                return Err(ChangeError::UnknownNode { id })
            }
            ConfChange::Promote(_) => {
                next.learners.remove(&id);
                next.voters.insert(id);
            }
            ConfChange::Remove(_) if !self.contains(id) => {
                return Err(ChangeError::UnknownNode { id })
            }
            ConfChange::Remove(_) if self.is_voter(id) && self.voters.len() == 1 => {
                return Err(ChangeError::LastVoter { id });
            }
            ConfChange::Remove(_) => {
                next.voters.remove(&id);
                next.learners.remove(&id);
            }
        }
        Ok(next)
    }
}

impl std::fmt::Display for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list =
            |ids: &BTreeSet<u64>| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        write!(f, "voters [{}]", list(&self.voters))?;
        if !self.learners.is_empty() {
            write!(f, " learners [{}]", list(&self.learners))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_through_entry_data() {
        for change in [
            ConfChange::AddLearner(4),
            ConfChange::Promote(7),
            ConfChange::Remove(u64::MAX),
        ] {
            assert_eq!(ConfChange::decode(&change.encode()), Ok(change));
        }
        assert!(ConfChange::decode(&[]).is_err());
        assert!(
            ConfChange::decode(&[9, 0, 0, 0, 0, 0, 0, 0, 1]).is_err(),
            "unknown tag"
        );
        assert!(ConfChange::decode(&[1, 0, 0]).is_err(), "short id");
    }

    #[test]
    fn a_learner_joins_is_promoted_and_leaves() {
        let three = Membership::of_voters([1, 2, 3]);
        assert_eq!(three.quorum(), 2);
        let joined = three.apply(ConfChange::AddLearner(4)).unwrap();
        assert_eq!(joined.quorum(), 2, "a learner changes no majority");
        assert!(joined.contains(4) && !joined.is_voter(4));
        let four = joined.apply(ConfChange::Promote(4)).unwrap();
        assert_eq!((four.quorum(), four.members()), (3, vec![1, 2, 3, 4]));
        let back = four.apply(ConfChange::Remove(1)).unwrap();
        assert_eq!(back, Membership::of_voters([2, 3, 4]));
        assert_eq!(back.to_string(), "voters [2,3,4]");
        assert_eq!(joined.to_string(), "voters [1,2,3] learners [4]");
    }

    #[test]
    fn changes_that_make_no_sense_are_refused() {
        let three = Membership::of_voters([1, 2, 3]);
        assert_eq!(
            three.apply(ConfChange::AddLearner(2)),
            Err(ChangeError::AlreadyMember { id: 2 })
        );
        assert_eq!(
            three.apply(ConfChange::AddLearner(0)),
            Err(ChangeError::IdZero)
        );
        assert_eq!(
            three.apply(ConfChange::Promote(2)),
            Err(ChangeError::NotALearner { id: 2 })
        );
        assert_eq!(
            three.apply(ConfChange::Promote(9)),
            Err(ChangeError::UnknownNode { id: 9 })
        );
        assert_eq!(
            three.apply(ConfChange::Remove(9)),
            Err(ChangeError::UnknownNode { id: 9 })
        );
        let one = Membership::of_voters([5]);
        assert_eq!(
            one.apply(ConfChange::Remove(5)),
            Err(ChangeError::LastVoter { id: 5 })
        );
        let with_learner = one.apply(ConfChange::AddLearner(6)).unwrap();
        assert_eq!(
            with_learner.apply(ConfChange::Remove(6)),
            Ok(one),
            "a learner may always leave"
        );
    }

    /// §4.1: one voter more or less, and any majority of the old voters
    /// meets any majority of the new.
    #[test]
    fn majorities_before_and_after_a_single_change_overlap() {
        let subsets = |m: &Membership| -> Vec<BTreeSet<u64>> {
            let voters: Vec<u64> = m.voters.iter().copied().collect();
            (0u32..1 << voters.len())
                .map(|mask| {
                    voters
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(_, v)| *v)
                        .collect::<BTreeSet<u64>>()
                })
                .filter(|s| s.len() >= m.quorum())
                .collect()
        };
        for voters in 1..=6u64 {
            let old = Membership::of_voters(1..=voters);
            let grown = old
                .apply(ConfChange::AddLearner(99))
                .unwrap()
                .apply(ConfChange::Promote(99))
                .unwrap();
            let mut changed = vec![grown];
            if voters > 1 {
                changed.push(old.apply(ConfChange::Remove(1)).unwrap());
            }
            for new in changed {
                for a in subsets(&old) {
                    for b in subsets(&new) {
                        assert!(
                            !a.is_disjoint(&b),
                            "{old} vs {new}: {a:?} and {b:?} are disjoint"
                        );
                    }
                }
            }
        }
    }
}
