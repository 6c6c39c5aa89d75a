//! Membership changes on real processes: a fourth node joins a running
//! cluster as a learner, catches up through a snapshot taken while writes
//! continue and then the log, is promoted, and counts toward the quorum; a
//! voter is removed and stopped; the configuration survives a restart; and
//! bad requests get one-line refusals.
mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Cluster, WAIT_MS_MAX};

/// Sends `request` to the leader until it answers ok (bounded): a change
/// refused because another is in flight or the learner is behind is
/// retried.
fn change_until_ok(cluster: &Cluster, request: Value) -> Value {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let leader = cluster.wait_leader();
        if let Some(answer) = cluster.client(leader).and_then(|mut c| c.call(request.clone())) {
            if answer["ok"] == true {
                return answer["value"].clone();
            }
            last = answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{request} never succeeded; last answer {last}\n{}", cluster.logs_tail());
}

fn put(cluster: &Cluster, key: &str) {
    change_until_ok(cluster, json!({"op": "put", "key": key, "value": key}));
}

#[test]
fn a_node_joins_catches_up_from_a_snapshot_is_promoted_and_a_voter_leaves() {
    let extra = ["--voters", "1,2,3", "--snapshot-entries", "40"];
    let mut cluster = Cluster::start_some("membership", 4, 3, &extra);
    for k in 0..100 {
        put(&cluster, &format!("before-{k}"));
    }
    cluster.start_node(4);
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    let status = loop {
        if let Some(status) = cluster.status(4) {
            break status;
        }
        assert!(Instant::now() < deadline, "node 4 did not start\n{}", cluster.logs_tail());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!((status["role"].clone(), status["voters"].clone()), (json!("follower"), json!([1, 2, 3])), "not a member yet");
    let added = change_until_ok(&cluster, json!({"op": "member_add", "node": 4}));
    assert_eq!(added, json!({"voters": [1, 2, 3], "learners": [4]}));
    // Writes go on while the learner catches up.
    for k in 0..60 {
        put(&cluster, &format!("during-{k}"));
    }
    let promoted = change_until_ok(&cluster, json!({"op": "member_promote", "node": 4}));
    assert_eq!(promoted, json!({"voters": [1, 2, 3, 4], "learners": []}));
    cluster.wait_converged();
    let four = cluster.status(4).unwrap();
    assert!(four["snapshot_index"].as_u64().unwrap() > 0, "node 4 started from a snapshot: {four}");
    let log = std::fs::read_to_string(cluster.log_path(4)).unwrap();
    assert!(log.contains("installed snapshot from leader"), "{}", cluster.logs_tail());
    // Four voters: with two of them down, nothing commits.
    let leader = cluster.wait_leader();
    let down: Vec<u64> = (1..=4).filter(|id| *id != leader).take(2).collect();
    for id in &down {
        cluster.kill(*id);
    }
    let mut client = cluster.client(leader).unwrap();
    let stuck = client.call(json!({"op": "put", "key": "needs-three", "value": "x"})).unwrap();
    assert_eq!(stuck["error"], "timeout", "two of four voters are no quorum: {stuck}");
    for id in &down {
        cluster.start_node(*id);
    }
    put(&cluster, "after-restart");

    // Remove a voter, then stop it; the other three go on.
    let leader = cluster.wait_leader();
    let removed = (1..=4).find(|id| *id != leader).unwrap();
    let remaining: Vec<u64> = (1..=4).filter(|id| *id != removed).collect();
    let left = change_until_ok(&cluster, json!({"op": "member_remove", "node": removed}));
    assert_eq!(left, json!({"voters": remaining, "learners": []}));
    cluster.kill(removed);
    put(&cluster, "without-the-removed");
    cluster.wait_converged();

    // The configuration survives a restart (WAL and snapshot).
    let survivor = remaining[remaining.len() - 1];
    cluster.kill(survivor);
    cluster.start_node(survivor);
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    let members = loop {
        let answer = cluster.client(survivor).and_then(|mut c| c.call(json!({"op": "members"})));
        if let Some(answer) = answer.filter(|a| a["ok"] == true) {
            break answer["value"].clone();
        }
        assert!(Instant::now() < deadline, "node {survivor} did not come back");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(members, json!({"voters": remaining, "learners": []}));
}

#[test]
fn membership_requests_that_cannot_apply_are_refused_in_one_line() {
    let cluster = Cluster::start("membership-refusals", 3, &[]);
    let leader = cluster.wait_leader();
    put(&cluster, "ready");
    let mut client = cluster.client(leader).unwrap();
    let mut refused = |request: Value| {
        let answer = client.call(request).unwrap();
        assert_eq!((answer["ok"].clone(), answer["definite"].clone()), (json!(false), json!(true)), "{answer}");
        (answer["error"].as_str().unwrap_or_default().to_string(), answer["message"].as_str().unwrap_or_default().to_string())
    };
    let (error, message) = refused(json!({"op": "member_add", "node": 2}));
    assert_eq!((error.as_str(), message.as_str()), ("refused", "node 2 is already a member"));
    let (error, message) = refused(json!({"op": "member_remove", "node": 9}));
    assert_eq!((error.as_str(), message.as_str()), ("refused", "node 9 is not a member"));
    let (error, message) = refused(json!({"op": "member_promote", "node": 3}));
    assert_eq!((error.as_str(), message.as_str()), ("refused", "node 3 is a voter, not a learner"));
    let (error, message) = refused(json!({"op": "member_add"}));
    assert_eq!((error.as_str(), message.as_str()), ("bad_request", "missing field `node`"));
    let (error, _) = refused(json!({"op": "member_add", "node": 0}));
    assert_eq!(error, "bad_request");
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let answer = cluster.client(follower).unwrap().call(json!({"op": "member_add", "node": 4})).unwrap();
    assert_eq!((answer["error"].clone(), answer["leader"].clone()), (json!("not_leader"), json!(leader)));
    let members = cluster.client(follower).unwrap().call(json!({"op": "members"})).unwrap();
    assert_eq!(members["value"], json!({"voters": [1, 2, 3], "learners": []}));
}

#[test]
fn a_leader_hands_over_then_removes_itself_without_an_election_timeout() {
    let cluster = Cluster::start("membership-transfer", 3, &[]);
    put(&cluster, "before");
    let leader = cluster.wait_leader();
    let term = cluster.status(leader).unwrap()["term"].as_u64().unwrap();
    let target = (1..=3).find(|id| *id != leader).unwrap();
    let mut client = cluster.client(leader).unwrap();
    let started = client.call(json!({"op": "transfer_leader", "node": target})).unwrap();
    assert_eq!(started["value"], json!({"transferring_to": target}), "{started}");
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    let handed = loop {
        let status = cluster.status(target).unwrap_or(Value::Null);
        if status["role"] == "leader" {
            break status;
        }
        assert!(Instant::now() < deadline, "node {target} never took over\n{}", cluster.logs_tail());
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(handed["term"].as_u64(), Some(term + 1), "one election, the transfer's");
    // The old leader, now a follower, is removed; writes go on.
    let remaining: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let left = change_until_ok(&cluster, json!({"op": "member_remove", "node": leader}));
    assert_eq!(left, json!({"voters": remaining, "learners": []}));
    put(&cluster, "after");
    let refused = cluster.client(target).unwrap().call(json!({"op": "transfer_leader", "node": target})).unwrap();
    assert_eq!((refused["error"].clone(), refused["message"].clone()), (json!("refused"), json!(format!("node {target} leads already"))));
}
