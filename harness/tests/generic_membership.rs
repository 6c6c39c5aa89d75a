//! A generic system's membership commands on real processes: a system of
//! shell commands that keeps its membership in two files (`voters`,
//! `learners`; one 0-based node a line), three nodes and one spare. A
//! learner is added (after one "try again"), promoted and started with the
//! members it joins; a refused removal is reported with the system's
//! reason; a removal takes a voter out and stops it. Every command line is
//! logged, so the test checks the placeholders each one saw. Needs only
//! /bin/sh and coreutils.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline::cluster::{Cluster, ClusterConfig, Members};
use faultline::systems::generic::{GenericDb, GenericSpec, MemberCommands};

/// Bound on the whole test: each request the cluster retries for at most
/// 20 s, and none of these should need more than one retry.
const TEST_TIMEOUT_S: u64 = 60;

fn system(dir: &Path) -> GenericDb {
    let d = dir.display();
    let spec = GenericSpec {
        start: format!("echo \"start {{node}} members={{members}} ids={{member_ids}} state={{cluster_state}}\" >> {d}/log; exec sleep 600"),
        wipe: None,
        ready: Some(format!("grep -q '^start {{node}} ' {d}/log")),
        leader: Some("echo n1".into()),
        digest: None,
        clock: None,
        peer_routing: "per-pair".into(),
        peer_ports: Vec::new(),
        log_error_patterns: vec![],
        client: "external".into(),
        client_command: Some("true".into()),
    };
    let mut db = spec.db(None);
    db.membership = MemberCommands {
        add_member: Some(format!(
            "echo \"add via {{node}}: {{target}} {{target_id}} {{target_client_addr}} {{target_peer_addr}}\" >> {d}/log
             if [ -e {d}/busy ]; then rm {d}/busy; echo 'a change is in progress' >&2; exit 75; fi
             echo {{target}} >> {d}/learners"
        )),
        promote_member: Some(format!(
            "echo \"promote via {{node}}: {{target_id}}\" >> {d}/log
             grep -vx {{target}} {d}/learners > {d}/learners.new; mv {d}/learners.new {d}/learners
             echo {{target}} >> {d}/voters"
        )),
        remove_member: Some(format!(
            "echo \"remove via {{node}}: {{target_id}}\" >> {d}/log
             if [ {{target}} = 0 ]; then echo 'warning: ignored' >&2; echo 'n1 is the leader; move it first' >&2; exit 1; fi
             grep -vx {{target}} {d}/voters > {d}/voters.new; mv {d}/voters.new {d}/voters"
        )),
        members: Some(format!(
            "printf '{{\"voters\":[%s],\"learners\":[%s]}}' \"$(paste -sd, {d}/voters)\" \"$(paste -sd, {d}/learners)\""
        )),
    };
    db
}

fn test_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-generic-membership-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("voters"), "0\n1\n2\n").unwrap();
    std::fs::write(dir.join("learners"), "").unwrap();
    dir
}

fn log_lines(dir: &Path, prefix: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("log")).unwrap();
    text.lines().filter(|line| line.starts_with(prefix)).map(str::to_string).collect()
}

fn members(voters: &[usize], learners: &[usize]) -> Option<Members> {
    Some(Members { voters: voters.to_vec(), learners: learners.to_vec() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spare_joins_is_promoted_and_a_voter_leaves_through_the_commands() {
    let dir = test_dir();
    let config = ClusterConfig { spares: 1, ..ClusterConfig::new(3, dir.join("cluster"), 7) };
    let cluster = Cluster::start(Arc::new(system(&dir)), config).await.unwrap_or_else(|e| panic!("start: {e}"));
    let steps = async {
        let mut starts = log_lines(&dir, "start");
        starts.sort();
        let first = (0..3).map(|node| format!("start {node} members=0,1,2 ids=1,2,3 state=new")).collect::<Vec<_>>();
        assert_eq!(starts, first, "the spare has not started");
        assert_eq!(cluster.reported_members().await, members(&[0, 1, 2], &[]));

        // Add the spare: refused once with 75, done on the second try,
        // through the node `leader` names (n1), with the spare's addresses.
        std::fs::write(dir.join("busy"), "").unwrap();
        let added = cluster.add_learner(3).await.unwrap_or_else(|e| panic!("add: {e}"));
        assert_eq!((added.action, added.tries), ("add", 2));
        let spare = cluster.node_env(3);
        let route = cluster.node_env(0).peer_dial.iter().find(|(node, _)| *node == 3).unwrap().1;
        let add = format!("add via 0: 3 4 {} {route}", spare.client_listen);
        assert_eq!(log_lines(&dir, "add"), [add.clone(), add]);
        assert_eq!(log_lines(&dir, "start 3"), ["start 3 members=0,1,2,3 ids=1,2,3,4 state=existing"], "it joins");
        assert!(cluster.pid(3).is_some());
        assert_eq!(cluster.members(), [0, 1, 2, 3]);
        assert_eq!(cluster.reported_members().await, members(&[0, 1, 2], &[3]));

        let promoted = cluster.promote_member(3).await.unwrap_or_else(|e| panic!("promote: {e}"));
        assert_eq!(promoted.tries, 1);
        assert_eq!(log_lines(&dir, "promote"), ["promote via 0: 4"]);
        assert_eq!(cluster.reported_members().await, members(&[0, 1, 2, 3], &[]));

        // A refusal says why (the last line of stderr) and changes nothing.
        let refused = cluster.remove_member(0).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.ends_with("n1 is the leader; move it first (remove_member exited 1)"), "{refused}");
        assert_eq!(cluster.members(), [0, 1, 2, 3]);
        assert!(cluster.pid(0).is_some());

        let removed = cluster.remove_member(1).await.unwrap_or_else(|e| panic!("remove: {e}"));
        assert_eq!((removed.action, removed.tries), ("remove", 1));
        assert_eq!(log_lines(&dir, "remove"), ["remove via 0: 1", "remove via 0: 2"]);
        assert_eq!(cluster.members(), [0, 2, 3]);
        assert_eq!(cluster.pid(1), None, "a removed node is stopped");
        assert_eq!(cluster.reported_members().await, members(&[0, 2, 3], &[]));
        [0, 2, 3].map(|node| cluster.pid(node).unwrap())
    };
    let pids = tokio::time::timeout(Duration::from_secs(TEST_TIMEOUT_S), steps).await.expect("the test's bound");
    cluster.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|pid| Path::new(&format!("/proc/{pid}")).exists()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left: Vec<u32> = pids.into_iter().filter(|pid| Path::new(&format!("/proc/{pid}")).exists()).collect();
    assert!(left.is_empty(), "nodes left running: {left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
