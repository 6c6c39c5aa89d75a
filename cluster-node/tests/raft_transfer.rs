//! Leadership transfer in the Raft core: the leader brings the target up
//! to date, sends it `TimeoutNow`, and the target wins at once, though
//! every voter heard from the old leader within its lease; proposals wait
//! meanwhile; a transfer that cannot finish is abandoned after an
//! election timeout.
mod raft_support;

use faultline_node::raft::{Message, MessageBody, ProposeError, Role, TransferError};
use raft_support::Network;

#[test]
fn a_caught_up_voter_takes_over_without_an_election_timeout() {
    let mut network = Network::new(3, |_| {});
    assert!(
        network.node(1).config().check_quorum && network.node(1).config().pre_vote,
        "leases are on"
    );
    network.elect(1);
    network.propose(1, b"a");
    let term = network.node(1).status().term;
    network.node_mut(1).transfer_leadership(2).unwrap();
    network.stabilize(); // no ticks: nobody's election timer fired
    assert_eq!(network.leaders(), vec![2]);
    assert_eq!(network.node(2).status().term, term + 1);
    assert_eq!(network.node(1).status().role, Role::Follower);
    assert_eq!(network.node(1).transferring_to(), None);
    let (index, _) = network.propose(2, b"b");
    for id in 1..=3 {
        assert!(
            network.node(id).status().commit >= index,
            "node {id} has the new leader's entry"
        );
    }
    let timeout_now = network.count_delivered(|m| matches!(m.body, MessageBody::TimeoutNow));
    assert_eq!(timeout_now, 1);
}

#[test]
fn a_lagging_target_is_caught_up_first_and_proposals_wait() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    // Node 3 misses these appends.
    network.filter = Some(Box::new(|m: &Message| {
        m.to == 3 && matches!(m.body, MessageBody::Append { .. })
    }));
    for k in 0..5 {
        network.propose(1, format!("w{k}").as_bytes());
    }
    network.filter = None;
    network.node_mut(1).transfer_leadership(3).unwrap();
    assert_eq!(network.node(1).transferring_to(), Some(3));
    assert_eq!(
        network.node_mut(1).propose(b"x".to_vec()),
        Err(ProposeError::Transferring { to: 3 })
    );
    // Heartbeats find node 3 behind; the leader sends what it missed.
    network.tick(1, 2);
    assert_eq!(network.leaders(), vec![3], "caught up, then took over");
    assert_eq!(
        network.node(3).status().last_index,
        network.node(1).status().last_index
    );
    assert_eq!(network.applied_data(3)[..5], network.applied_data(1)[..5]);
}

#[test]
fn a_transfer_that_cannot_finish_is_abandoned_after_an_election_timeout() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    network.isolate(3);
    network.node_mut(1).transfer_leadership(3).unwrap();
    network.stabilize();
    let timeout = network.node(1).config().election_timeout_ticks_min;
    network.tick(1, timeout - 1);
    assert_eq!(network.node(1).transferring_to(), Some(3));
    network.tick(1, 1);
    assert_eq!(network.node(1).transferring_to(), None, "abandoned");
    assert_eq!(
        network.node(1).status().role,
        Role::Leader,
        "node 2 keeps the quorum"
    );
    network.propose(1, b"after");
}

#[test]
fn transfers_that_cannot_be_are_refused_with_their_reason() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    assert_eq!(
        network.node_mut(1).transfer_leadership(1),
        Err(TransferError::ToSelf { id: 1 })
    );
    assert_eq!(
        network.node_mut(1).transfer_leadership(9),
        Err(TransferError::NotAVoter { id: 9 })
    );
    assert_eq!(
        network.node_mut(2).transfer_leadership(3),
        Err(TransferError::NotLeader { leader: Some(1) })
    );
}

#[test]
fn an_ordinary_campaign_within_the_lease_still_fails() {
    // Node 2 campaigns on its own: the others heard from the leader within
    // their lease and refuse; only a transfer's vote requests pass.
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    let term = network.node(1).status().term;
    network.node_mut(2).campaign();
    network.stabilize();
    assert_eq!(
        network.leaders(),
        vec![1],
        "node 2's campaign changed nothing"
    );
    network.tick(1, 1); // a heartbeat: node 2 follows again
    network.node_mut(1).transfer_leadership(2).unwrap();
    network.stabilize();
    assert_eq!(network.leaders(), vec![2]);
    assert_eq!(network.node(2).status().term, term + 1);
}
