//! Throughput figures for the Raft core (printed, never asserted on time).
//! Run: `cargo test --release -p faultline-node --test raft_bench -- --ignored --nocapture`

use std::collections::VecDeque;
use std::time::Instant;

use faultline_node::raft::{Config, Message, RawNode, Restored, Role};

const PROPOSALS: u64 = 200_000;
const BATCH: u64 = 64;

/// Three cores with instant, lossless delivery and instant persistence.
fn cluster() -> Vec<RawNode> {
    (1..=3)
        .map(|id| {
            let mut config = Config::new(id, vec![1, 2, 3]);
            config.pre_vote = false;
            RawNode::new(config, id, Restored::default()).expect("valid config")
        })
        .collect()
}

/// Drains every Ready and delivers every message until quiet; returns the
/// number of committed non-empty entries node 1 applied.
fn stabilize(nodes: &mut [RawNode], queue: &mut VecDeque<Message>) -> u64 {
    let mut applied = 0;
    // Bounded: a quiet cluster produces no Ready and no message.
    for _ in 0..1_000_000 {
        let mut busy = false;
        for (k, node) in nodes.iter_mut().enumerate() {
            if node.has_ready() {
                busy = true;
                let ready = node.ready();
                queue.extend(ready.messages.iter().cloned());
                queue.extend(ready.messages_after_persist.iter().cloned());
                if k == 0 {
                    applied += ready
                        .committed_entries
                        .iter()
                        .filter(|e| !e.data.is_empty())
                        .count() as u64;
                }
                node.advance(ready);
            }
        }
        match queue.pop_front() {
            Some(message) => {
                let to = (message.to - 1) as usize;
                nodes[to].step(message).expect("well-formed");
            }
            None if !busy => return applied,
            None => {}
        }
    }
    panic!("did not stabilize");
}

#[test]
#[ignore = "benchmark: prints figures"]
fn bench_three_node_commit_throughput() {
    let mut nodes = cluster();
    let mut queue = VecDeque::new();
    nodes[0].campaign();
    stabilize(&mut nodes, &mut queue);
    assert_eq!(nodes[0].status().role, Role::Leader);
    let start = Instant::now();
    let mut committed = 0;
    for batch in 0..PROPOSALS / BATCH {
        for k in 0..BATCH {
            nodes[0]
                .propose((batch * BATCH + k).to_le_bytes().to_vec())
                .expect("leader");
        }
        committed += stabilize(&mut nodes, &mut queue);
    }
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(committed, PROPOSALS);
    println!(
        "raft_bench: 3 nodes, {PROPOSALS} proposals in batches of {BATCH}: {seconds:.3} s, {:.0} commits/s",
        PROPOSALS as f64 / seconds
    );
}
