//! Crash tests on real processes: kill -9 of any node and of the whole
//! cluster during writes, and restarts on damaged WAL files.
mod support;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::json;
use support::{
    call_leader, spawn_writers, stop_writers, verify_acked, Cluster, ClusterView, WAIT_MS_MAX,
};

fn deadline() -> Instant {
    Instant::now() + Duration::from_millis(WAIT_MS_MAX)
}

#[test]
fn any_node_kill9_rounds_keep_acknowledged_writes() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let cluster = Arc::new(Mutex::new(Cluster::start(
        "anykill",
        5,
        &["--snapshot-entries", "100"],
    )));
    cluster.lock().unwrap().wait_leader();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&cluster, 4, &stop);
    let mut victims = Vec::new();
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(300));
        let leader = cluster.lock().unwrap().wait_leader();
        // Even rounds kill the leader, odd rounds a seeded random node.
        let victim = if round % 2 == 0 {
            leader
        } else {
            rng.random_range(1..=5u64)
        };
        victims.push(victim);
        cluster.lock().unwrap().kill(victim);
        std::thread::sleep(Duration::from_millis(400));
        cluster.lock().unwrap().start_node(victim);
    }
    std::thread::sleep(Duration::from_millis(300));
    let acked = stop_writers(&stop, writers);
    let cluster = cluster.lock().unwrap();
    assert!(
        acked.len() >= 20,
        "too few writes acknowledged ({})",
        acked.len()
    );
    let (applied, _) = cluster.wait_converged();
    verify_acked(&cluster, &acked);
    eprintln!(
        "anykill: victims {victims:?}; {} acknowledged writes kept; all 5 nodes at index {applied}",
        acked.len()
    );
}

#[test]
fn whole_cluster_kill9_keeps_acknowledged_writes() {
    let cluster = Arc::new(Mutex::new(Cluster::start("allkill", 3, &[])));
    cluster.lock().unwrap().wait_leader();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&cluster, 4, &stop);
    std::thread::sleep(Duration::from_millis(600));
    for id in 1..=3 {
        cluster.lock().unwrap().kill(id);
    }
    let acked = stop_writers(&stop, writers);
    let mut cluster = cluster.lock().unwrap();
    assert!(
        acked.len() >= 10,
        "too few writes acknowledged ({})",
        acked.len()
    );
    for id in 1..=3 {
        cluster.start_node(id);
    }
    cluster.wait_leader();
    cluster.wait_converged();
    verify_acked(&cluster, &acked);
    eprintln!(
        "allkill: {} acknowledged writes kept across a whole-cluster kill -9",
        acked.len()
    );
}

#[test]
fn damaged_wal_torn_tail_recovers_and_mid_file_damage_refuses() {
    let mut cluster = Cluster::start("damage", 3, &[]);
    let view = ClusterView::of(&cluster);
    for i in 0..40 {
        let put = json!({"op":"put","key":format!("k{i}"),"value":"v"});
        assert_eq!(call_leader(&view, &put, deadline()).unwrap()["ok"], true);
    }
    cluster.wait_converged();
    let leader = cluster.wait_leader();
    let mut followers = (1..=3).filter(|&id| id != leader);
    let (torn, flipped) = (followers.next().unwrap(), followers.next().unwrap());
    assert_eq!(cluster.terminate(torn), Some(0));
    assert_eq!(cluster.terminate(flipped), Some(0));

    // A torn tail (half a record) is cut off and the node rejoins.
    let segment = cluster.wal_segment(torn);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9]);
    std::fs::write(&segment, &bytes).unwrap();
    cluster.start_node(torn);

    // A flipped bit in the middle refuses to start, naming file and offset.
    let segment = cluster.wal_segment(flipped);
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();
    cluster.start_node(flipped);
    assert_eq!(
        cluster.wait_exit(flipped, 5_000),
        Some(2),
        "a corrupt WAL must stop the node with exit code 2"
    );
    let log = std::fs::read_to_string(cluster.log_path(flipped)).unwrap();
    assert!(
        log.contains("WAL corrupt")
            && log.contains(&segment.display().to_string())
            && log.contains("offset"),
        "{log}"
    );

    let put = json!({"op":"put","key":"after","value":"v"});
    assert_eq!(
        call_leader(&ClusterView::of(&cluster), &put, deadline()).unwrap()["ok"],
        true
    );
    cluster.wait_converged();
    let torn_log = std::fs::read_to_string(cluster.log_path(torn)).unwrap();
    assert!(torn_log.contains("WAL torn tail truncated"), "{torn_log}");
}
