//! Focused scenarios for the Raft core, in the style of etcd's raft_test.go:
//! in-memory peers wired through a network that delivers until quiet.

mod raft_support;

use std::collections::BTreeSet;

use faultline_node::raft::{
    Config, Entry, EntryKind, HardState, Message, MessageBody, ProposeError, RawNode, ReadState,
    Restored, Role, Snapshot, SnapshotMeta, StepError,
};
use raft_support::{config, disk_with, Network};


#[test]
fn config_validation_rejects_bad_limits() {
    let mut bad = Config::new(1, vec![1, 2, 3]);
    bad.heartbeat_interval_ticks = bad.election_timeout_ticks_min;
    assert!(bad.validate().is_err());
    assert!(
        Config::new(4, vec![1, 2, 3]).validate().is_ok(),
        "a node joining a cluster is not among its bootstrap voters"
    );
    assert!(Config::new(1, vec![0, 1]).validate().is_err());
    assert!(Config::new(1, vec![1, 1, 2]).validate().is_err());
    let mut zero = Config::new(1, vec![1]);
    zero.inflight_messages_max = 0;
    assert!(zero.validate().is_err());
    assert!(Config::new(1, vec![1, 2, 3]).validate().is_ok());
}

#[test]
fn single_node_elects_itself_and_commits() {
    let mut network = Network::new(1, |_| {});
    network.tick_all(25);
    assert_eq!(network.leaders(), vec![1]);
    network.propose(1, b"x");
    assert_eq!(network.applied_data(1), vec![b"x".to_vec()]);
    let status = network.node(1).status();
    assert_eq!(status.commit, 2, "no-op at 1, proposal at 2");
    assert_eq!(status.applied, 2);
}

#[test]
fn three_nodes_elect_exactly_one_leader_by_timeout() {
    let mut network = Network::new(3, |_| {});
    network.tick_all(30);
    let leaders = network.leaders();
    assert_eq!(leaders.len(), 1, "leaders: {leaders:?}");
    let term = network.node(leaders[0]).status().term;
    for node in network.nodes.values() {
        assert_eq!(node.status().term, term);
        assert_eq!(node.status().leader, Some(leaders[0]));
    }
}

#[test]
fn proposals_replicate_and_apply_everywhere() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    for k in 0..10u8 {
        network.propose(1, &[k + 1]);
    }
    for id in 1..=3 {
        assert_eq!(network.applied_data(id).len(), 10, "node {id}");
        assert_eq!(network.disks[&id].entries.len(), 11);
    }
    let err = network.node_mut(2).propose(b"y".to_vec()).unwrap_err();
    assert_eq!(err, ProposeError::NotLeader { leader: Some(1) });
}

#[test]
fn vote_refused_to_a_candidate_with_a_stale_log() {
    let mut network = Network::new(3, |c| {
        c.pre_vote = false;
        c.check_quorum = false;
    });
    network.elect(1);
    network.isolate(3);
    network.propose(1, b"a");
    network.heal();
    network.isolate(1);
    network.node_mut(3).campaign();
    network.stabilize();
    assert_ne!(
        network.node(3).status().role,
        Role::Leader,
        "3 misses entry 2, 2 must refuse"
    );
    network.elect(2);
}

#[test]
fn pre_vote_keeps_a_rejoining_node_from_deposing_the_leader() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    let term = network.node(1).status().term;
    network.isolate(3);
    network.tick(3, 100);
    assert_eq!(
        network.node(3).status().term,
        term,
        "pre-vote failed, so the term never rose"
    );
    network.heal();
    network.tick_all(5);
    assert_eq!(network.node(1).status().role, Role::Leader);
    assert_eq!(network.node(1).status().term, term);
    assert_eq!(network.node(3).status().leader, Some(1));
}

#[test]
fn without_pre_vote_a_rejoining_node_disrupts_the_term() {
    let mut network = Network::new(3, |c| {
        c.pre_vote = false;
        c.check_quorum = false;
    });
    network.elect(1);
    let term = network.node(1).status().term;
    network.isolate(3);
    network.tick(3, 100);
    assert!(network.node(3).status().term > term);
    network.heal();
    network.tick_all(30);
    assert!(
        network.node(1).status().term > term,
        "the old leader was deposed"
    );
}

#[test]
fn check_quorum_makes_an_isolated_leader_step_down() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    network.isolate(1);
    network.tick(1, 25);
    assert_eq!(network.node(1).status().role, Role::Follower);
    assert_eq!(network.node(1).status().leader, None);
}

#[test]
fn leader_without_check_quorum_stays_leader_when_isolated() {
    let mut network = Network::new(3, |c| c.check_quorum = false);
    network.elect(1);
    network.isolate(1);
    network.tick(1, 25);
    assert_eq!(network.node(1).status().role, Role::Leader);
}

#[test]
fn lease_read_bug_keeps_an_isolated_leader_past_the_followers_election() {
    let mut network = Network::new(3, |c| c.bugs.lease_read = true);
    network.elect(1);
    network.isolate(1);
    // Two of the longest election timeouts: the others elect a new leader,
    // yet node 1 still believes it leads (two leaders, so local reads are stale).
    network.tick_all(40);
    assert_eq!(network.node(1).status().role, Role::Leader);
    assert!(network.leaders().iter().any(|&l| l != 1), "no second leader");
    // The lease (3 x 20 ticks) is checked against what node 1 heard during
    // the previous one, so it steps down by the end of the second.
    network.tick(1, 90);
    assert_eq!(network.node(1).status().role, Role::Follower, "the lease never ends");
}

#[test]
fn failover_elects_a_new_leader_with_every_committed_entry() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    network.propose(1, b"a");
    network.isolate(1);
    network.tick_all(40);
    let leaders: Vec<u64> = network.leaders().into_iter().filter(|&l| l != 1).collect();
    assert_eq!(leaders.len(), 1);
    let new_leader = leaders[0];
    network.propose(new_leader, b"b");
    let other = if new_leader == 2 { 3 } else { 2 };
    assert_eq!(
        network.applied_data(other),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
}

#[test]
fn fast_backtracking_skips_a_divergent_suffix_in_few_round_trips() {
    // Leader 1 holds terms 1,1,4,4,...; follower 2 has a long suffix of term 2/3.
    let mut leader_terms = vec![1, 1];
    leader_terms.extend(std::iter::repeat_n(4, 30));
    let mut follower_terms = vec![1, 1];
    follower_terms.extend(std::iter::repeat_n(2, 40));
    follower_terms.extend(std::iter::repeat_n(3, 40));
    let mut network = Network::with_disks(
        3,
        |c| c.pre_vote = false,
        |id| match id {
            1 | 3 => disk_with(&leader_terms, 4, 2),
            _ => disk_with(&follower_terms, 3, 2),
        },
    );
    network.elect(1);
    let rejections = network.count_delivered(|m| {
        m.to == 1
            && m.from == 2
            && matches!(
                m.body,
                MessageBody::AppendResponse {
                    rejection: Some(_),
                    ..
                }
            )
    });
    assert!(
        rejections >= 1,
        "the follower must have rejected at least once"
    );
    assert!(
        rejections <= 3,
        "fast backtracking took {rejections} rejections"
    );
    assert_eq!(network.node(2).entries(), network.node(1).entries());
}

#[test]
fn conflicting_uncommitted_suffix_is_truncated_in_memory_and_on_disk() {
    let mut network = Network::with_disks(
        3,
        |c| c.pre_vote = false,
        |id| match id {
            3 => disk_with(&[1, 2, 2, 2], 2, 1),
            _ => disk_with(&[1, 3], 3, 1),
        },
    );
    network.elect(1);
    network.propose(1, b"new");
    let leader_log = network.node(1).entries().to_vec();
    assert_eq!(network.node(3).entries(), &leader_log[..]);
    assert_eq!(
        network.disks[&3].entries, leader_log,
        "the WAL was truncated before the append"
    );
    assert!(network.disks[&3].entries.iter().all(|e| e.term != 2));
}

#[test]
fn figure_8_old_term_entry_is_not_committed_by_counting_replicas() {
    // S1 led term 2 and wrote (2, term 2) only locally; S3 holds (2, term 3).
    let mut network = Network::with_disks(
        3,
        |c| {
            c.pre_vote = false;
            c.entries_per_message_max = 1;
        },
        |id| match id {
            1 => disk_with(&[1, 2], 3, 1),
            2 => disk_with(&[1], 3, 1),
            _ => disk_with(&[1, 3], 3, 1),
        },
    );
    // After the first probe (which both followers reject, lacking (2, term 2)),
    // term-4 entries never arrive: only the old entry 2 is replicated.
    let probed = std::cell::RefCell::new(BTreeSet::new());
    network.filter = Some(Box::new(move |m| {
        let carries_term_4 = matches!(&m.body, MessageBody::Append { entries, .. } if entries.iter().any(|e| e.term == 4));
        carries_term_4 && !probed.borrow_mut().insert(m.to)
    }));
    network.elect(1);
    assert_eq!(network.node(1).status().term, 4);
    for id in 1..=3 {
        assert_eq!(
            network.node(id).term_at(2),
            Some(2),
            "node {id} holds the old-term entry 2"
        );
    }
    assert_eq!(
        network.node(1).status().commit,
        1,
        "entry 2 (term 2) must not commit by counting"
    );
    network.heal();
    network.tick(1, 2);
    assert_eq!(
        network.node(1).status().commit,
        3,
        "it commits with the term-4 no-op"
    );
    assert_eq!(network.node(3).status().commit, 3);
}

#[test]
fn commit_old_term_bug_commits_an_old_entry_by_counting_without_a_no_op() {
    // The same logs as above, with the planted bug: no no-op, and entry 2
    // (term 2) commits once S1 and S2 hold it, though S3 holds (2, term 3).
    let mut network = Network::with_disks(
        3,
        |c| {
            c.pre_vote = false;
            c.bugs.commit_old_term = true;
        },
        |id| match id {
            1 => disk_with(&[1, 2], 3, 1),
            2 => disk_with(&[1], 3, 1),
            _ => disk_with(&[1, 3], 3, 1),
        },
    );
    network.elect(1);
    assert_eq!(network.node(1).status().term, 4);
    assert_eq!(network.node(1).term_at(3), None, "no no-op of term 4");
    assert_eq!(network.node(2).term_at(2), Some(2));
    assert_eq!(
        network.node(1).status().commit,
        2,
        "entry 2 (term 2) committed by counting replicas"
    );
}

#[test]
fn lagging_follower_catches_up_through_a_chunked_snapshot() {
    let mut network = Network::new(3, |c| c.snapshot_chunk_bytes = 7);
    network.elect(1);
    network.isolate(3);
    for k in 0..20u8 {
        network.propose(1, &[b'a' + k]);
    }
    let applied = network.node(1).status().applied;
    let image: Vec<u8> = network.applied_data(1).concat();
    let term = network
        .node(1)
        .term_at(applied)
        .expect("applied entry in log");
    let meta = SnapshotMeta {
        last_index: applied,
        last_term: term,
        voters: vec![1, 2, 3],
        learners: vec![],
    };
    network
        .node_mut(1)
        .compact(Snapshot {
            meta,
            data: image.clone(),
        })
        .expect("compaction");
    assert_eq!(network.node(1).first_index(), applied + 1);
    network.heal();
    network.tick(1, 3);
    assert_eq!(network.snapshots_installed.get(&3), Some(&1));
    assert_eq!(
        network.disks[&3].snapshot.as_ref().map(|s| s.data.clone()),
        Some(image.clone())
    );
    let chunks = network.count_delivered(|m| matches!(m.body, MessageBody::InstallSnapshot { .. }));
    assert!(
        chunks >= image.len().div_ceil(7),
        "{chunks} chunks for {} bytes",
        image.len()
    );
    network.propose(1, b"after");
    assert_eq!(network.applied_data(3), vec![b"after".to_vec()]);
    assert_eq!(
        network.node(3).status().commit,
        network.node(1).status().commit
    );
}

#[test]
fn restart_recovers_from_snapshot_plus_wal() {
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            last_index: 3,
            last_term: 1,
            voters: vec![1],
            learners: vec![],
        },
        data: b"image".to_vec(),
    };
    let wal = vec![
        Entry {
            term: 1,
            index: 2,
            data: b"old".to_vec(),
            kind: EntryKind::Normal,
        },
        Entry {
            term: 1,
            index: 3,
            data: b"old".to_vec(),
            kind: EntryKind::Normal,
        },
        Entry {
            term: 1,
            index: 4,
            data: b"four".to_vec(),
            kind: EntryKind::Normal,
        },
        Entry {
            term: 2,
            index: 5,
            data: b"five".to_vec(),
            kind: EntryKind::Normal,
        },
    ];
    let restored = Restored {
        hard_state: HardState {
            term: 2,
            vote: Some(1),
            commit: 5,
        },
        snapshot: Some(snapshot),
        entries: wal,
    };
    let mut node = RawNode::new(config(1, 1), 7, restored).expect("restores");
    assert_eq!(node.first_index(), 4);
    let status = node.status();
    assert_eq!(
        (
            status.term,
            status.commit,
            status.applied,
            status.last_index
        ),
        (2, 5, 3, 5)
    );
    let ready = node.ready();
    let applied: Vec<u64> = ready.committed_entries.iter().map(|e| e.index).collect();
    assert_eq!(
        applied,
        vec![4, 5],
        "entries after the snapshot are applied again"
    );
    assert!(
        ready.entries.is_empty() && ready.hard_state.is_none(),
        "restored state is already durable"
    );
    node.advance(ready);
    assert_eq!(node.status().applied, 5);
}

#[test]
fn restore_rejects_a_wal_with_a_gap() {
    let restored = Restored {
        hard_state: HardState {
            term: 1,
            vote: None,
            commit: 0,
        },
        snapshot: None,
        entries: vec![Entry {
            term: 1,
            index: 2,
            data: vec![1],
            kind: EntryKind::Normal,
        }],
    };
    assert!(RawNode::new(config(1, 3), 7, restored).is_err());
}

#[test]
fn read_index_needs_a_quorum_to_confirm_leadership() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    network.propose(1, b"a");
    network.isolate(1);
    network
        .node_mut(1)
        .read_index(7)
        .expect("leader takes reads");
    network.tick(1, 3);
    assert!(
        network.read_states.get(&1).is_none_or(|r| r.is_empty()),
        "no read without a quorum"
    );
    network.heal();
    network.tick(1, 2);
    let commit = network.node(1).status().commit;
    assert_eq!(
        network.read_states[&1],
        vec![ReadState {
            ctx: 7,
            index: commit
        }]
    );
    assert!(matches!(
        network.node_mut(2).read_index(8),
        Err(ProposeError::NotLeader { leader: Some(1) })
    ));
}

#[test]
fn read_index_waits_for_the_leader_to_commit_in_its_term() {
    let mut network = Network::new(3, |_| {});
    network.filter = Some(Box::new(|m| matches!(m.body, MessageBody::Append { .. })));
    network.elect(1);
    network
        .node_mut(1)
        .read_index(9)
        .expect("leader takes reads");
    network.tick(1, 3);
    assert!(
        network.read_states.get(&1).is_none_or(|r| r.is_empty()),
        "heartbeats alone do not serve it"
    );
    network.heal();
    network.tick(1, 2);
    assert_eq!(
        network.read_states[&1],
        vec![ReadState { ctx: 9, index: 1 }],
        "served at the no-op's index"
    );
}

#[test]
fn votes_and_acks_wait_for_persistence_in_the_ready() {
    let mut a_config = config(1, 3);
    a_config.pre_vote = false;
    let mut a = RawNode::new(a_config, 1, Restored::default()).expect("node");
    let mut b = RawNode::new(config(2, 3), 2, Restored::default()).expect("node");
    a.campaign();
    let ready = a.ready();
    assert!(
        ready.messages.is_empty(),
        "vote requests promise a durable self-vote"
    );
    assert_eq!(ready.messages_after_persist.len(), 2);
    assert_eq!(ready.hard_state.as_ref().map(|h| h.vote), Some(Some(1)));
    assert!(ready.must_sync);
    let request = ready
        .messages_after_persist
        .iter()
        .find(|m| m.to == 2)
        .cloned()
        .expect("request to 2");
    a.advance(ready);
    b.step(request).expect("step");
    let ready = b.ready();
    assert!(ready.messages.is_empty());
    assert!(matches!(
        ready.messages_after_persist[0].body,
        MessageBody::VoteResponse { granted: true }
    ));
    assert_eq!(
        ready.hard_state,
        Some(HardState {
            term: 1,
            vote: Some(1),
            commit: 0
        })
    );
    assert!(ready.must_sync);
}

#[test]
fn garbage_messages_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    network.propose(1, b"a");
    for _ in 0..5000 {
        let to = rng.random_range(1..=3);
        let from = rng.random_range(0..=4);
        // Mostly plausible values, sometimes extremes that could overflow.
        let mut pick = |plausible_max: u64| match rng.random_range(0..20) {
            0 => u64::MAX - rng.random_range(0..2),
            1 => (1 << 62) + rng.random_range(0..2),
            _ => rng.random_range(0..=plausible_max),
        };
        let (term, index, entry_term) = (pick(4), pick(6), pick(4));
        let body = match rng.random_range(0..10) {
            0 => MessageBody::PreVote {
                last_index: index,
                last_term: entry_term,
            },
            1 => MessageBody::Vote {
                last_index: index,
                last_term: entry_term,
                transfer: rng.random(),
            },
            2 => MessageBody::VoteResponse {
                granted: rng.random(),
            },
            3 => MessageBody::Append {
                prev_index: index,
                prev_term: entry_term,
                entries: vec![Entry {
                    term: rng.random_range(0..=4),
                    index: rng.random_range(0..=8),
                    data: vec![1],
                    kind: EntryKind::Normal,
                }],
                commit: rng.random_range(0..=9),
            },
            4 => MessageBody::AppendResponse {
                index,
                rejection: None,
            },
            5 => MessageBody::Heartbeat {
                commit: rng.random_range(0..=9),
                read_seq: 1,
            },
            6 => MessageBody::HeartbeatResponse {
                read_seq: rng.random_range(0..=3),
            },
            7 => MessageBody::InstallSnapshot {
                meta: SnapshotMeta {
                    last_index: index,
                    last_term: entry_term,
                    voters: vec![1, 2, 3],
                    learners: vec![],
                },
                offset: rng.random_range(0..=4),
                total_bytes: rng.random_range(0..=8),
                data: vec![0; rng.random_range(0..=4)],
                done: rng.random(),
            },
            8 => MessageBody::InstallSnapshotResponse {
                last_index: index,
                offset_next: 2,
                done: rng.random(),
            },
            _ => MessageBody::PreVoteResponse {
                granted: rng.random(),
            },
        };
        let _ = network.node_mut(to).step(Message {
            from,
            to,
            term,
            body,
        });
        let ids: Vec<u64> = network.nodes.keys().copied().collect();
        for id in ids {
            network.node_mut(id).tick();
            // Drain without delivering: the garbage may make peers disagree.
            if network.node(id).has_ready() {
                let ready = network.node_mut(id).ready();
                network.node_mut(id).advance(ready);
            }
        }
    }
    for node in network.nodes.values() {
        let status = node.status();
        assert!(status.applied <= status.commit && status.commit <= status.last_index);
    }
}

fn append(
    from: u64,
    to: u64,
    term: u64,
    prev: (u64, u64),
    entries: Vec<Entry>,
    commit: u64,
) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::Append {
            prev_index: prev.0,
            prev_term: prev.1,
            entries,
            commit,
        },
    }
}

#[test]
fn truncation_between_ready_and_advance_keeps_the_durable_prefix() {
    let mut follower = RawNode::new(config(2, 3), 2, Restored::default()).expect("node");
    let old = vec![
        Entry {
            term: 1,
            index: 1,
            data: vec![1],
            kind: EntryKind::Normal,
        },
        Entry {
            term: 1,
            index: 2,
            data: vec![2],
            kind: EntryKind::Normal,
        },
        Entry {
            term: 1,
            index: 3,
            data: vec![3],
            kind: EntryKind::Normal,
        },
    ];
    follower
        .step(append(1, 2, 1, (0, 0), old, 1))
        .expect("step");
    let ready = follower.ready();
    assert_eq!(ready.entries.len(), 3);
    // While the server writes 1..=3, a term-2 leader replaces entry 3.
    let new = vec![Entry {
        term: 2,
        index: 3,
        data: vec![30],
        kind: EntryKind::Normal,
    }];
    follower
        .step(append(3, 2, 2, (2, 1), new, 1))
        .expect("step");
    follower.advance(ready);
    let ready = follower.ready();
    let indexes: Vec<u64> = ready.entries.iter().map(|e| e.index).collect();
    assert_eq!(
        indexes,
        vec![3],
        "entries 1 and 2 are durable; only the new 3 is written"
    );
}

#[test]
fn acks_for_entries_dropped_by_a_truncation_are_withdrawn() {
    let mut follower = RawNode::new(config(2, 3), 2, Restored::default()).expect("node");
    let old = vec![
        Entry {
            term: 1,
            index: 1,
            data: vec![1],
            kind: EntryKind::Normal,
        },
        Entry {
            term: 1,
            index: 2,
            data: vec![2],
            kind: EntryKind::Normal,
        },
    ];
    follower
        .step(append(1, 2, 1, (0, 0), old, 0))
        .expect("step");
    // Before any Ready, a term-2 leader replaces entry 2.
    let new = vec![Entry {
        term: 2,
        index: 2,
        data: vec![20],
        kind: EntryKind::Normal,
    }];
    follower
        .step(append(3, 2, 2, (1, 1), new, 0))
        .expect("step");
    let ready = follower.ready();
    let acks: Vec<(u64, u64, u64)> = ready
        .messages_after_persist
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::AppendResponse {
                index,
                rejection: None,
            } => Some((m.to, m.term, index)),
            _ => None,
        })
        .collect();
    assert_eq!(
        acks,
        vec![(3, 2, 2)],
        "the term-1 ack of entry 2 must not leave: it no longer holds"
    );
}

#[test]
fn steps_refuse_misaddressed_and_unknown_senders() {
    let mut node = RawNode::new(config(1, 3), 1, Restored::default()).expect("node");
    let body = MessageBody::Heartbeat {
        commit: 0,
        read_seq: 0,
    };
    let wrong_to = Message {
        from: 2,
        to: 3,
        term: 1,
        body: body.clone(),
    };
    assert!(node.step(wrong_to).is_err());
    // Any other id may be a member this node has not heard of yet; id 0
    // is no node.
    let stranger = Message {
        from: 0,
        to: 1,
        term: 1,
        body: body.clone(),
    };
    assert!(node.step(stranger).is_err());
    let from_self = Message {
        from: 1,
        to: 1,
        term: 1,
        body,
    };
    assert!(node.step(from_self).is_err());
    assert_eq!(node.status().term, 0, "refused messages change nothing");
}

#[test]
fn proposals_and_reads_are_bounded() {
    let mut network = Network::new(3, |c| {
        c.uncommitted_entries_max = 3;
        c.reads_pending_max = 2;
    });
    network.elect(1);
    network.isolate(1);
    for k in 0..3u8 {
        network
            .node_mut(1)
            .propose(vec![k + 1])
            .expect("within the bound");
    }
    let err = network.node_mut(1).propose(vec![9]).unwrap_err();
    assert_eq!(err, ProposeError::TooManyUncommitted { limit: 3 });
    assert_eq!(
        network.node_mut(1).propose(Vec::new()).unwrap_err(),
        ProposeError::Empty
    );
    network.node_mut(1).read_index(1).expect("read 1");
    network.node_mut(1).read_index(2).expect("read 2");
    assert_eq!(
        network.node_mut(1).read_index(3).unwrap_err(),
        ProposeError::TooManyReads { limit: 2 }
    );
}

#[test]
fn compaction_refuses_snapshots_outside_the_applied_log() {
    use faultline_node::raft::CompactError;
    let mut network = Network::new(1, |_| {});
    network.elect(1);
    network.propose(1, b"a");
    network.propose(1, b"b");
    let snapshot = |index, term| Snapshot {
        meta: SnapshotMeta {
            last_index: index,
            last_term: term,
            voters: vec![1],
            learners: vec![],
        },
        data: Vec::new(),
    };
    let node = network.node_mut(1);
    assert_eq!(node.status().applied, 3);
    assert!(matches!(
        node.compact(snapshot(4, 1)),
        Err(CompactError::BeyondApplied {
            index: 4,
            applied: 3
        })
    ));
    assert!(matches!(
        node.compact(snapshot(2, 7)),
        Err(CompactError::TermMismatch { .. })
    ));
    node.compact(snapshot(2, 1)).expect("compacts through 2");
    assert_eq!(node.first_index(), 3);
    assert_eq!(
        node.term_at(2),
        Some(1),
        "the snapshot's last term stays known"
    );
    assert_eq!(node.term_at(1), None, "compacted");
    assert!(matches!(
        node.compact(snapshot(2, 1)),
        Err(CompactError::NotNewer {
            index: 2,
            current: 2
        })
    ));
}

#[test]
fn a_snapshot_failing_the_state_machine_check_is_not_adopted() {
    use faultline_node::raft::StepError;
    let mut node = RawNode::new(config(3, 3), 7, disk_with(&[1, 1, 1], 1, 3).restored())
        .expect("a valid restored follower");
    node.set_snapshot_check(|data| match data.starts_with(b"ok") {
        true => Ok(()),
        false => Err("undecodable".to_string()),
    });
    let install = |data: &[u8]| Message {
        from: 1,
        to: 3,
        term: 2,
        body: MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                last_index: 10,
                last_term: 2,
                voters: vec![1, 2, 3],
                learners: vec![],
            },
            offset: 0,
            total_bytes: data.len() as u64,
            data: data.to_vec(),
            done: true,
        },
    };
    let err = node.step(install(b"garbage")).unwrap_err();
    assert!(
        matches!(&err, StepError::SnapshotRejected { index: 10, reason } if reason == "undecodable"),
        "{err}"
    );
    // Nothing moved: no snapshot to install, no ack, the log and commit as before.
    let ready = node.ready();
    assert!(ready.snapshot.is_none());
    let acks = ready
        .messages
        .iter()
        .chain(&ready.messages_after_persist)
        .filter(|m| matches!(m.body, MessageBody::InstallSnapshotResponse { .. }))
        .count();
    assert_eq!(acks, 0, "a rejected snapshot must not be acknowledged");
    let status = node.status();
    assert_eq!((status.commit, status.last_index), (3, 3));
    assert_eq!(node.first_index(), 1);
    node.advance(ready);

    // The leader's resend with data the state machine accepts is adopted.
    node.step(install(b"ok: a state machine image"))
        .expect("an acceptable snapshot");
    let ready = node.ready();
    assert_eq!(ready.snapshot.map(|s| s.meta.last_index), Some(10));
}

#[test]
fn a_second_leader_in_one_term_is_reported_as_a_safety_violation() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    let term = network.node(1).status().term;
    let heartbeat = |to| Message { from: 3, to, term, body: MessageBody::Heartbeat { commit: 0, read_seq: 0 } };
    // Node 2 follows node 1 in this term; node 1 leads it.
    for to in [2, 1] {
        let error = network.node_mut(to).step(heartbeat(to)).expect_err("refused");
        assert!(matches!(error, StepError::SafetyViolation { from: 3, .. }), "{error}");
    }
    assert_eq!(network.node(1).status().role, Role::Leader);
    assert_eq!(network.node(2).status().leader, Some(1));
}

#[test]
fn a_follower_reporting_entries_beyond_the_leaders_log_is_a_safety_violation() {
    let mut network = Network::new(3, |_| {});
    network.elect(1);
    let status = network.node(1).status();
    let beyond = Message {
        from: 2,
        to: 1,
        term: status.term,
        body: MessageBody::AppendResponse { index: 1_000, rejection: None },
    };
    let error = network.node_mut(1).step(beyond).expect_err("refused");
    assert!(matches!(error, StepError::SafetyViolation { from: 2, .. }), "{error}");
}

#[test]
fn a_candidate_asks_again_for_votes_lost_on_the_way() {
    let mut network = Network::new(3, |_| {});
    network.filter = Some(Box::new(|m: &Message| matches!(m.body, MessageBody::Vote { .. })));
    network.node_mut(1).campaign();
    network.stabilize();
    let status = network.node(1).status();
    assert_eq!(status.role, Role::Candidate, "pre-votes pass, every vote request is lost");
    network.heal();
    // One heartbeat interval, well inside the election timeout: the retry,
    // not a new campaign, wins the election in the same term.
    network.tick(1, 1);
    assert_eq!(network.node(1).status().role, Role::Leader);
    assert_eq!(network.node(1).status().term, status.term);
    let asked = network.count_delivered(|m| matches!(m.body, MessageBody::Vote { .. }));
    assert!(asked >= 1, "the vote requests were sent again");
}
