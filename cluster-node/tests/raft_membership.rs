//! Membership changes in the Raft core, scenario by scenario: a learner
//! joins, catches up and is promoted; one change at a time; a leader that
//! removes itself steps down; configurations survive restarts, truncation
//! and snapshots; and the two planted membership bugs do what they say.
mod raft_support;

use faultline_node::raft::{
    ChangeError, ConfChange, Config, Entry, EntryKind, Membership, MessageBody, RawNode, Role,
    Snapshot, SnapshotMeta,
};
use raft_support::Network;

fn voters(ids: &[u64]) -> Membership {
    Membership::of_voters(ids.iter().copied())
}

fn with_learners(voter_ids: &[u64], learner_ids: &[u64]) -> Membership {
    Membership {
        voters: voter_ids.iter().copied().collect(),
        learners: learner_ids.iter().copied().collect(),
    }
}

/// Proposes `change` at `leader` and delivers until quiet.
fn change(
    network: &mut Network,
    leader: u64,
    change: ConfChange,
) -> Result<(u64, u64), ChangeError> {
    let result = network.node_mut(leader).propose_conf_change(change);
    network.stabilize();
    result
}

/// The state-machine commands a node applied (no no-ops, no changes).
fn commands(network: &Network, id: u64) -> Vec<Vec<u8>> {
    let applied = network.applied.get(&id).map_or(&[][..], Vec::as_slice);
    applied
        .iter()
        .filter(|e| e.kind == EntryKind::Normal && !e.data.is_empty())
        .map(|e| e.data.clone())
        .collect()
}

/// No pre-vote and no check-quorum: a node told to campaign wins without
/// waiting out the followers' leader lease.
fn forced_elections(config: &mut Config) {
    config.pre_vote = false;
    config.check_quorum = false;
}

fn write_many(network: &mut Network, leader: u64, count: u32) {
    for k in 0..count {
        network.propose(leader, format!("w{k}").as_bytes());
    }
}

#[test]
fn a_learner_joins_catches_up_and_is_promoted() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    write_many(&mut network, 1, 20);
    network.add_node(4, 3, |_| {});
    assert_eq!(
        network.node(4).membership(),
        &voters(&[1, 2, 3]),
        "a joining node starts from the bootstrap voters"
    );
    change(&mut network, 1, ConfChange::AddLearner(4)).unwrap();
    for id in 1..=4 {
        assert_eq!(
            network.node(id).membership(),
            &with_learners(&[1, 2, 3], &[4]),
            "node {id}"
        );
    }
    assert_eq!(
        commands(&network, 4),
        commands(&network, 1),
        "the learner received the whole log"
    );
    // A learner never campaigns, however long it hears nothing.
    network.isolate(4);
    network.tick(4, 200);
    assert_eq!(network.node(4).status().role, Role::Follower);
    network.heal();
    // Nor does it count: without two of the three voters nothing commits.
    network.isolate(2);
    network.cut.insert((1, 3));
    let (index, _) = network.propose(1, b"needs-a-voter");
    assert!(
        network.node(1).status().commit < index,
        "a learner's copy is not a vote for commit"
    );
    network.heal();
    network.tick(1, 2);
    assert!(network.node(1).status().commit >= index);

    change(&mut network, 1, ConfChange::Promote(4)).unwrap();
    for id in 1..=4 {
        assert_eq!(
            network.node(id).membership(),
            &voters(&[1, 2, 3, 4]),
            "node {id}"
        );
    }
    // Four voters: three make a quorum, so the leader and the new voter
    // alone commit nothing; with one more they do.
    network.cut.extend([(1, 2), (1, 3)]);
    let (index, _) = network.propose(1, b"needs-three");
    assert!(network.node(1).status().commit < index);
    network.cut.remove(&(1, 2));
    network.tick(1, 2);
    assert!(network.node(1).status().commit >= index);
}

#[test]
fn promotion_waits_until_the_learner_caught_up() {
    let mut network = Network::new(3, |c| c.catch_up_entries_max = 8);
    network.elect(1);
    network.add_node(4, 3, |c| c.catch_up_entries_max = 8);
    change(&mut network, 1, ConfChange::AddLearner(4)).unwrap();
    network.cut.insert((1, 4));
    write_many(&mut network, 1, 30);
    let refused = change(&mut network, 1, ConfChange::Promote(4)).unwrap_err();
    assert!(
        matches!(
            refused,
            ChangeError::NotCaughtUp {
                id: 4,
                limit: 8,
                ..
            }
        ),
        "{refused:?}"
    );
    assert!(
        refused.to_string().contains("entries behind the leader"),
        "{refused}"
    );
    network.heal();
    network.tick(1, 3);
    change(&mut network, 1, ConfChange::Promote(4)).unwrap();
    assert!(network.node(1).membership().is_voter(4));
}

#[test]
fn the_leader_takes_one_change_at_a_time() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    network.add_node(4, 3, |_| {});
    network.add_node(5, 3, |_| {});
    network.cut.extend([(1, 2), (1, 3)]);
    let (index, _) = change(&mut network, 1, ConfChange::AddLearner(4)).unwrap();
    assert!(
        network.node(1).membership().contains(4),
        "in force once appended, before it commits"
    );
    let refused = change(&mut network, 1, ConfChange::AddLearner(5)).unwrap_err();
    assert_eq!(refused, ChangeError::InProgress { index });
    network.heal();
    network.tick(1, 2);
    change(&mut network, 1, ConfChange::AddLearner(5)).unwrap();
    assert_eq!(
        network.node(2).membership(),
        &with_learners(&[1, 2, 3], &[4, 5])
    );
}

#[test]
fn the_concurrent_changes_bug_accepts_a_second_change_in_flight() {
    let mut network = Network::new(3, |c| c.bugs.concurrent_changes = true);
    network.elect(1);
    network.add_node(4, 3, |_| {});
    network.add_node(5, 3, |_| {});
    network.cut.extend([(1, 2), (1, 3)]);
    change(&mut network, 1, ConfChange::AddLearner(4)).unwrap();
    change(&mut network, 1, ConfChange::AddLearner(5))
        .expect("the bug takes a second uncommitted change");
}

#[test]
fn a_new_leader_changes_nothing_before_it_committed_in_its_term() {
    let mut network = Network::new(3, forced_elections);
    network.elect(1);
    network.add_node(4, 3, |_| {});
    // Appends never arrive: the new leader's no-op stays uncommitted.
    network.filter = Some(Box::new(|m| matches!(m.body, MessageBody::Append { .. })));
    network.node_mut(2).campaign();
    network.stabilize();
    assert_eq!(network.node(2).status().role, Role::Leader);
    assert_eq!(
        change(&mut network, 2, ConfChange::AddLearner(4)),
        Err(ChangeError::LeaderNotReady)
    );
    network.heal();
    network.tick(2, 2);
    change(&mut network, 2, ConfChange::AddLearner(4)).unwrap();
}

#[test]
fn changes_that_cannot_apply_are_refused_with_their_reason() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    assert_eq!(
        change(&mut network, 2, ConfChange::AddLearner(4)),
        Err(ChangeError::NotLeader { leader: Some(1) })
    );
    assert_eq!(
        change(&mut network, 1, ConfChange::AddLearner(2)),
        Err(ChangeError::AlreadyMember { id: 2 })
    );
    assert_eq!(
        change(&mut network, 1, ConfChange::Promote(3)),
        Err(ChangeError::NotALearner { id: 3 })
    );
    assert_eq!(
        change(&mut network, 1, ConfChange::Remove(7)),
        Err(ChangeError::UnknownNode { id: 7 })
    );
    let mut single = Network::new(1, |_| {});
    single.tick_all(25);
    assert_eq!(
        change(&mut single, 1, ConfChange::Remove(1)),
        Err(ChangeError::LastVoter { id: 1 })
    );
}

#[test]
fn a_leader_that_removes_itself_steps_down_once_the_change_commits() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    write_many(&mut network, 1, 3);
    change(&mut network, 1, ConfChange::Remove(1)).unwrap();
    assert_eq!(
        network.node(1).status().role,
        Role::Follower,
        "stepped down after the commit"
    );
    assert_eq!(network.node(2).membership(), &voters(&[2, 3]));
    // The removed node never campaigns; the two voters elect a leader and
    // commit with the two of them.
    network.tick_all(60);
    let leaders = network.leaders();
    assert!(leaders.len() == 1 && leaders[0] != 1, "{leaders:?}");
    let leader = leaders[0];
    let (index, _) = network.propose(leader, b"after");
    assert!(network.node(leader).status().commit >= index);
    assert_eq!(
        commands(&network, 2).last().map(Vec::as_slice),
        Some(&b"after"[..])
    );
}

#[test]
fn a_removed_follower_no_longer_counts() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    change(&mut network, 1, ConfChange::Remove(3)).unwrap();
    // The leader replicates to the new configuration only: node 3 never
    // hears of its removal (the operator stops it, as the harness does).
    assert_eq!(network.node(3).membership(), &voters(&[1, 2, 3]));
    network.isolate(3);
    network.cut.insert((1, 2));
    let (index, _) = network.propose(1, b"two-voters");
    assert!(
        network.node(1).status().commit < index,
        "two voters: both are needed"
    );
    network.cut.remove(&(1, 2));
    network.tick(1, 2);
    assert!(
        network.node(1).status().commit >= index,
        "node 3's silence does not matter"
    );
}

#[test]
fn a_configuration_survives_a_restart() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    network.add_node(4, 3, |_| {});
    change(&mut network, 1, ConfChange::AddLearner(4)).unwrap();
    change(&mut network, 1, ConfChange::Promote(4)).unwrap();
    for id in [2, 4] {
        let config = network.node(id).clone();
        let restarted = RawNode::new(
            raft_support::config(id, 3),
            7,
            network.disks[&id].restored(),
        )
        .unwrap();
        assert_eq!(
            restarted.membership(),
            config.membership(),
            "node {id} after restart"
        );
    }
}

#[test]
fn a_truncated_configuration_entry_takes_its_configuration_with_it() {
    let mut network = Network::new(5, forced_elections);
    network.elect(1);
    network.add_node(6, 5, |_| {});
    // Only node 5 receives the change; it never commits.
    network.cut.extend([(1, 2), (1, 3), (1, 4)]);
    change(&mut network, 1, ConfChange::AddLearner(6)).unwrap();
    assert!(network.node(5).membership().contains(6));
    network.heal();
    network.isolate(1);
    network.isolate(5);
    network.elect(2);
    network.propose(2, b"overwrites");
    network.heal();
    network.tick(2, 3);
    assert_eq!(
        network.node(5).membership(),
        &voters(&[1, 2, 3, 4, 5]),
        "the entry was truncated, and its change with it"
    );
    assert_eq!(network.node(1).membership(), &voters(&[1, 2, 3, 4, 5]));
}

#[test]
fn snapshots_carry_the_configuration_to_a_node_behind_them() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    network.add_node(4, 3, |_| {});
    change(&mut network, 1, ConfChange::AddLearner(4)).unwrap();
    network.isolate(4);
    write_many(&mut network, 1, 10);
    let applied = network.node(1).status().applied;
    let membership = network.node(1).membership_at(applied);
    let term = network.disks[&1]
        .entries
        .iter()
        .find(|e| e.index == applied)
        .map(|e| e.term)
        .unwrap();
    let meta = |membership: &Membership| SnapshotMeta {
        last_index: applied,
        last_term: term,
        voters: membership.voters.iter().copied().collect(),
        learners: membership.learners.iter().copied().collect(),
    };
    let wrong = Snapshot {
        meta: meta(&voters(&[1, 2, 3])),
        data: b"image".to_vec(),
    };
    let refused = network.node_mut(1).compact(wrong).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("carries voters [1,2,3], but voters [1,2,3] learners [4] was in force"),
        "{refused}"
    );
    network
        .node_mut(1)
        .compact(Snapshot {
            meta: meta(&membership),
            data: b"image".to_vec(),
        })
        .unwrap();
    // Node 4 restarts empty and can only catch up from the snapshot.
    network.add_node(4, 3, |_| {});
    network.heal();
    network.tick(1, 3);
    assert_eq!(network.snapshots_installed.get(&4), Some(&1));
    assert_eq!(
        network.node(4).membership(),
        &with_learners(&[1, 2, 3], &[4])
    );
}

/// A write held by the leader and a learner only: the correct leader
/// does not count the learner, so the write stays uncommitted; the bug
/// counts it, and the two voters that lack the write elect a leader
/// without it once the old leader is gone.
#[test]
fn the_promote_bug_counts_a_learner_toward_commit() {
    let run = |bug: bool| {
        let tweak = move |c: &mut Config| {
            forced_elections(c);
            c.bugs.promote_before_caught_up = bug;
        };
        let mut network = Network::new(3, tweak);
        network.elect(1);
        network.add_node(4, 3, tweak);
        change(&mut network, 1, ConfChange::AddLearner(4)).unwrap();
        network.cut.extend([(1, 2), (1, 3)]);
        let (index, _) = network.propose(1, b"leader-and-learner");
        let committed = network.node(1).status().commit >= index;
        (network, index, committed)
    };
    assert!(!run(false).2, "a learner's copy is no vote");
    let (mut network, index, committed) = run(true);
    assert!(
        committed,
        "the bug commits on the leader's and the learner's copies"
    );
    network.heal();
    network.isolate(1);
    network.elect(2);
    let has = |id: u64| {
        network.disks[&id]
            .entries
            .iter()
            .any(|e: &Entry| e.index == index && e.data == b"leader-and-learner")
    };
    assert!(
        !has(2) && !has(3),
        "the new leader and its voters lack a committed write"
    );
}

#[test]
fn the_promote_bug_promotes_a_learner_that_is_far_behind() {
    let mut network = Network::new(3, |c| c.bugs.promote_before_caught_up = true);
    network.elect(1);
    network.add_node(4, 3, |c| c.bugs.promote_before_caught_up = true);
    change(&mut network, 1, ConfChange::AddLearner(4)).unwrap();
    network.cut.insert((1, 4));
    write_many(&mut network, 1, 100);
    change(&mut network, 1, ConfChange::Promote(4)).expect("no catch-up check");
}
