//! The planted `lease-wallclock` bug: a read lease kept on the wall clock.
//!
//! While the node leads, each voter's answer in its term (to an append, a
//! heartbeat or a snapshot chunk) is stamped with the wall clock. The lease
//! starts at the oldest answer among the latest ones of a quorum (this node
//! included, if it votes), so each of those voters heard from this node at
//! or after its start, and lasts `lease_duration`: a bit less than the
//! shortest time a follower waits before it votes for another leader. Within a term
//! the lease only ever grows. A read is served from local state while the
//! wall clock is before the lease's end and the node is still in the term
//! it was granted in, even after check-quorum made it step down: with
//! honest clocks no other leader can be elected before the lease ends.
//! A wall clock set back N s (or running slow) keeps the lease N s longer
//! in real time, and an isolated leader serves stale reads.
//!
//! The Raft core never reads a clock: the server stamps the answers it
//! steps, and every function here is given the wall-clock reading. Only
//! the server with this bug on reads the wall clock for a decision.
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::raft::{Membership, MessageBody};

/// A lease lasts this fraction of the followers' shortest wait.
const LEASE_NUMERATOR: u32 = 4;
const LEASE_DENOMINATOR: u32 = 5;

/// The lease of one term, by this node's wall clock.
#[derive(Clone, Debug)]
pub struct WallClockLease {
    duration: Duration,
    /// The term the answers and the lease belong to.
    term: u64,
    /// Each voter's latest answer in `term`, read on the wall clock.
    acks_wall: BTreeMap<u64, SystemTime>,
    until_wall: Option<SystemTime>,
}

impl WallClockLease {
    pub fn new(tick: Duration, election_timeout_ticks_min: u32) -> WallClockLease {
        WallClockLease {
            duration: lease_duration(tick, election_timeout_ticks_min),
            term: 0,
            acks_wall: BTreeMap::new(),
            until_wall: None,
        }
    }

    /// Voter `from` answered this node, leader of `term`, at `now_wall`.
    /// Answers from nodes that are not voters count for nothing.
    pub(super) fn acknowledged(&mut self, term: u64, from: u64, membership: &Membership, leader_id: u64, now_wall: SystemTime) {
        if term != self.term {
            self.term = term;
            self.revoke();
        }
        if !membership.is_voter(from) {
            return;
        }
        self.acks_wall.insert(from, now_wall);
        let needed = membership.quorum() - usize::from(membership.is_voter(leader_id));
        let voters_acks = self.acks_wall.iter().filter(|(id, _)| membership.is_voter(**id)).map(|(_, at)| *at);
        let until = quorum_acknowledged_at(voters_acks, needed).and_then(|at| at.checked_add(self.duration));
        // Option orders None first: an existing lease is never shortened.
        self.until_wall = self.until_wall.max(until);
    }

    /// Drops the lease (a leadership transfer may elect the target at once).
    pub(super) fn revoke(&mut self) {
        self.acks_wall.clear();
        self.until_wall = None;
    }

    /// True if a node in `term` may read locally at `now_wall`.
    pub(super) fn serves_locally(&self, term: u64, now_wall: SystemTime) -> bool {
        term == self.term && lease_serves_locally(now_wall, self.until_wall)
    }
}

/// The lease decision: serve locally iff the wall clock reads before the
/// lease's end.
pub(super) fn lease_serves_locally(now_wall: SystemTime, lease_until_wall: Option<SystemTime>) -> bool {
    lease_until_wall.is_some_and(|until| now_wall < until)
}

/// How long a lease lasts after a quorum answered: four fifths of the
/// shortest time a follower waits before it may vote for another leader.
/// A follower counts whole ticks from the first tick after it heard the
/// leader, which may come at once: `election_timeout_ticks_min - 1` ticks.
pub(super) fn lease_duration(tick: Duration, election_timeout_ticks_min: u32) -> Duration {
    let wait = tick.saturating_mul(election_timeout_ticks_min.saturating_sub(1));
    wait.saturating_mul(LEASE_NUMERATOR) / LEASE_DENOMINATOR
}

/// When the lease starts: the `needed`-th latest answer, so `needed`
/// voters answered at or after it. None when fewer answered, or when none
/// is needed (a leader that is the only voter hears no answers and reads
/// by ReadIndex).
fn quorum_acknowledged_at(acks_wall: impl Iterator<Item = SystemTime>, needed: usize) -> Option<SystemTime> {
    let mut latest_first: Vec<SystemTime> = acks_wall.collect();
    latest_first.sort_unstable_by(|a, b| b.cmp(a));
    latest_first.get(needed.checked_sub(1)?).copied()
}

/// The peer messages that show a voter follows this node in the message's
/// term: the answers to what only a leader sends.
pub(super) fn acknowledges_leader(body: &MessageBody) -> bool {
    matches!(
        body,
        MessageBody::AppendResponse { .. } | MessageBody::HeartbeatResponse { .. } | MessageBody::InstallSnapshotResponse { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(50);

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
    }

    #[test]
    fn the_decision_serves_before_the_end_and_not_after() {
        assert!(lease_serves_locally(at(999), Some(at(1_000))));
        assert!(!lease_serves_locally(at(1_000), Some(at(1_000))));
        assert!(!lease_serves_locally(at(1_001), Some(at(1_000))));
        assert!(!lease_serves_locally(at(0), None), "no lease, no local read");
    }

    #[test]
    fn the_lease_ends_before_a_follower_may_vote_again() {
        // 6 ticks of 50 ms: a follower waits at least 5 ticks, 250 ms.
        assert_eq!(lease_duration(TICK, 6), Duration::from_millis(200));
        assert_eq!(lease_duration(TICK, 2), Duration::from_millis(40));
        assert_eq!(lease_duration(TICK, 0), Duration::ZERO);
    }

    #[test]
    fn a_quorum_of_answers_grants_the_lease_from_its_oldest_answer() {
        let five = Membership::of_voters([1, 2, 3, 4, 5]);
        let mut lease = WallClockLease::new(TICK, 6);
        lease.acknowledged(3, 2, &five, 1, at(0));
        assert!(!lease.serves_locally(3, at(1)), "the leader and one voter are no quorum of five");
        lease.acknowledged(3, 3, &five, 1, at(10));
        assert!(lease.serves_locally(3, at(199)));
        assert!(!lease.serves_locally(3, at(200)), "runs 200 ms from voter 2's answer at 0");
        assert!(!lease.serves_locally(4, at(11)), "a later term voids it");
        lease.acknowledged(3, 9, &five, 1, at(500));
        assert!(!lease.serves_locally(3, at(200)), "a non-voter extends nothing");
        lease.acknowledged(3, 2, &five, 1, at(500));
        assert!(lease.serves_locally(3, at(209)), "voter 3's answer at 10 is now the older one");
        assert!(!lease.serves_locally(3, at(210)));
        lease.acknowledged(3, 3, &five, 1, at(600));
        assert!(lease.serves_locally(3, at(699)));
        assert!(!lease.serves_locally(3, at(700)));
    }

    #[test]
    fn a_clock_set_back_extends_the_lease_by_as_much() {
        let three = Membership::of_voters([1, 2, 3]);
        let mut lease = WallClockLease::new(TICK, 6);
        lease.acknowledged(7, 2, &three, 1, at(30_000));
        // The clock goes back 30 s: answers now read 30 s earlier, and the
        // lease granted before the bump still stands.
        lease.acknowledged(7, 2, &three, 1, at(50));
        let real_after_lease_ms = 250;
        let set_back_ms = 30_000;
        assert!(lease.serves_locally(7, at(real_after_lease_ms)), "the correct lease would be over");
        assert!(lease.serves_locally(7, at(set_back_ms + 199)));
        assert!(!lease.serves_locally(7, at(set_back_ms + 200)), "about N s longer, no more");
    }

    #[test]
    fn revoking_or_a_new_term_drops_the_lease() {
        let three = Membership::of_voters([1, 2, 3]);
        let mut lease = WallClockLease::new(TICK, 6);
        lease.acknowledged(2, 3, &three, 1, at(0));
        assert!(lease.serves_locally(2, at(100)));
        lease.revoke();
        assert!(!lease.serves_locally(2, at(100)));
        lease.acknowledged(2, 3, &three, 1, at(0));
        lease.acknowledged(5, 2, &three, 1, at(10));
        assert!(!lease.serves_locally(2, at(100)), "the old term's lease is gone");
        assert!(lease.serves_locally(5, at(100)));
        let alone = Membership::of_voters([1]);
        lease.acknowledged(6, 2, &alone, 1, at(0));
        assert!(!lease.serves_locally(6, at(1)), "a lone voter is granted no lease");
    }

    #[test]
    fn only_answers_to_a_leader_acknowledge_it() {
        assert!(acknowledges_leader(&MessageBody::HeartbeatResponse { read_seq: 0 }));
        assert!(acknowledges_leader(&MessageBody::AppendResponse { index: 1, rejection: None }));
        assert!(!acknowledges_leader(&MessageBody::VoteResponse { granted: true }));
        assert!(!acknowledges_leader(&MessageBody::TimeoutNow));
    }
}
