//! Process tests: real 3- and 5-node clusters on 127.0.0.1.
mod support;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    call_leader, spawn_writers, stop_writers, verify_acked, Cluster, ClusterView, WAIT_MS_MAX,
};

fn deadline() -> Instant {
    Instant::now() + Duration::from_millis(WAIT_MS_MAX)
}

#[test]
fn three_nodes_serve_every_operation() {
    let cluster = Cluster::start("ops", 3, &[]);
    let leader = cluster.wait_leader();
    let mut c = cluster.client(leader).unwrap();
    let ok = |v: serde_json::Value| {
        assert_eq!(v["ok"], true, "{v}");
        v["value"].clone()
    };
    assert_eq!(
        ok(c.call(json!({"op":"get","key":"k"})).unwrap()),
        json!(null)
    );
    ok(c.call(json!({"op":"put","key":"k","value":"a"})).unwrap());
    assert_eq!(
        ok(c.call(json!({"op":"append","key":"k","value":"b"}))
            .unwrap()),
        json!("ab")
    );
    let mismatch = c
        .call(json!({"op":"cas","key":"k","from":"zz","to":"c"}))
        .unwrap();
    assert_eq!(
        (
            mismatch["error"].clone(),
            mismatch["definite"].clone(),
            mismatch["value"].clone()
        ),
        (json!("cas_mismatch"), json!(true), json!("ab"))
    );
    ok(c.call(json!({"op":"cas","key":"k","from":"ab","to":"c"}))
        .unwrap());
    assert_eq!(
        ok(c.call(json!({"op":"get","key":"k"})).unwrap()),
        json!("c")
    );
    ok(c.call(json!({"op":"delete","key":"k"})).unwrap());
    ok(
        c.call(json!({"op":"cas","key":"k","from":null,"to":"fresh"}))
            .unwrap(),
    );
    // A retried (client, seq) applies once.
    let append = json!({"op":"append","key":"once","value":"x","client":"c1","seq":1});
    assert_eq!(ok(c.call(append.clone()).unwrap()), json!("x"));
    assert_eq!(ok(c.call(append).unwrap()), json!("x"));
    assert_eq!(
        ok(c.call(json!({"op":"get","key":"once"})).unwrap()),
        json!("x")
    );
    // A follower refuses with a hint.
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let refused = cluster
        .client(follower)
        .unwrap()
        .call(json!({"op":"put","key":"k","value":"v"}))
        .unwrap();
    assert_eq!(
        (refused["error"].clone(), refused["definite"].clone()),
        (json!("not_leader"), json!(true))
    );
    assert_eq!(refused["leader"], json!(leader));
    let read = cluster
        .client(follower)
        .unwrap()
        .call(json!({"op":"get","key":"k"}))
        .unwrap();
    assert_eq!(
        read["error"],
        json!("not_leader"),
        "a follower must not serve reads from local state"
    );
    cluster.wait_converged();
}

#[test]
fn bad_input_gets_clear_errors_and_the_node_survives() {
    let cluster = Cluster::start("bad", 3, &[]);
    let leader = cluster.wait_leader();
    let mut c = cluster.client(leader).unwrap();
    let garbage = c.send_raw(b"{this is not json\n").unwrap();
    assert_eq!(
        (garbage["error"].clone(), garbage["definite"].clone()),
        (json!("bad_request"), json!(true))
    );
    let unknown = c
        .send_raw(b"{\"id\":5,\"op\":\"explode\",\"key\":\"k\"}\n")
        .unwrap();
    assert_eq!(
        (unknown["id"].clone(), unknown["error"].clone()),
        (json!(5), json!("bad_request"))
    );
    let big_key = format!(
        "{{\"id\":6,\"op\":\"put\",\"key\":\"{}\",\"value\":\"v\"}}\n",
        "k".repeat(2000)
    );
    assert_eq!(
        c.send_raw(big_key.as_bytes()).unwrap()["error"],
        json!("too_large")
    );
    // Peers speaking garbage or naming another cluster are dropped; the node keeps serving.
    for (i, addr) in cluster.peer_addrs.iter().enumerate() {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let _ = s.write_all(b"\x00\x00\x00\x05hello garbage\xff\xff\xff\xff");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let hello = json!({"cluster":"other","from":1,"to":i + 1}).to_string();
        let _ = s.write_all(&(hello.len() as u32).to_be_bytes());
        let _ = s.write_all(hello.as_bytes());
    }
    // A line over 2 MiB gets too_large and the connection closes.
    let mut huge = vec![b'x'; 2 * 1024 * 1024 + 10];
    huge.push(b'\n');
    let mut c2 = cluster.client(leader).unwrap();
    assert_eq!(c2.send_raw(&huge).unwrap()["error"], json!("too_large"));
    assert!(
        c2.call(json!({"op":"status"})).is_none(),
        "connection must be closed after an oversized line"
    );
    let put = json!({"op":"put","key":"after","value":"ok"});
    assert_eq!(
        call_leader(&ClusterView::of(&cluster), &put, deadline()).unwrap()["ok"],
        true
    );
    std::thread::sleep(Duration::from_millis(200));
    let logs: String = (1..=3)
        .map(|id| std::fs::read_to_string(cluster.log_path(id)).unwrap())
        .collect();
    assert!(
        logs.contains("dropping peer connection"),
        "garbage peers must be logged"
    );
    assert!(
        logs.contains("cluster id `other`"),
        "wrong cluster id must be named in the log"
    );
    assert!(!logs.contains("panicked"));
}

/// Poses as peer `from` on `to`'s peer port and sends one whole snapshot
/// through `last_index` (at a term far above the cluster's) in one chunk.
fn send_snapshot_as_peer(cluster: &Cluster, from: u64, to: u64, last_index: u64, data: Vec<u8>) {
    use faultline_node::raft::{Message, MessageBody, SnapshotMeta};
    use std::io::Write;
    let frame = |payload: &[u8]| {
        let mut out = (payload.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    };
    let hello = json!({"cluster":"faultline","from":from,"to":to}).to_string();
    let message = Message {
        from,
        to,
        term: 1_000,
        body: MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                last_index,
                last_term: 1_000,
                voters: vec![1, 2, 3],
                learners: vec![],
            },
            offset: 0,
            total_bytes: data.len() as u64,
            data,
            done: true,
        },
    };
    let mut payload = Vec::new();
    faultline_node::wire::encode(&message, &mut payload);
    let mut s = std::net::TcpStream::connect(cluster.peer_addrs[(to - 1) as usize]).unwrap();
    s.write_all(&frame(hello.as_bytes())).unwrap();
    s.write_all(&frame(&payload)).unwrap();
    s.flush().unwrap();
}

/// Waits (bounded) until node `id`'s log contains `text`.
fn wait_log(cluster: &Cluster, id: u64, text: &str) -> bool {
    let deadline = deadline();
    while Instant::now() < deadline {
        let log = std::fs::read_to_string(cluster.log_path(id)).unwrap_or_default();
        if log.contains(text) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn undecodable_snapshot_from_a_peer_is_dropped_and_the_node_survives() {
    let mut cluster = Cluster::start("badsnap", 3, &[]);
    cluster.wait_leader();
    let put = json!({"op":"put","key":"before","value":"v"});
    assert_eq!(
        call_leader(&ClusterView::of(&cluster), &put, deadline()).unwrap()["ok"],
        true
    );
    cluster.wait_converged();
    // Node 1 alone, so only our fake leader (posing as a stopped peer) talks to it.
    let (target, fake) = (1, 2);
    for id in [2, 3] {
        cluster.kill(id);
    }
    let fields = |s: serde_json::Value| {
        ["applied", "commit", "snapshot_index", "digest"].map(|f| s[f].as_u64())
    };
    let before = fields(cluster.status(target).unwrap());

    send_snapshot_as_peer(&cluster, fake, target, 50, b"{not a state machine".to_vec());
    assert_eq!(
        cluster.wait_exit(target, 1_000),
        None,
        "an undecodable snapshot from the network must not stop the node"
    );
    assert!(
        wait_log(&cluster, target, "rejected"),
        "the rejected snapshot must be logged\n{}",
        cluster.logs_tail()
    );
    assert_eq!(fields(cluster.status(target).unwrap()), before);

    // The same path with a decodable snapshot installs it: the rejection
    // above was the check, not a message that never arrived.
    let mut kv = faultline_node::kv::KvState::new(16);
    let op = faultline_node::kv::KvOp::Put {
        key: "snap".into(),
        value: "v".into(),
    };
    kv.apply(
        1,
        &faultline_node::kv::Command {
            client: None,
            seq: None,
            op,
        },
    );
    send_snapshot_as_peer(&cluster, fake, target, 50, kv.to_bytes());
    assert!(
        wait_log(&cluster, target, "installed snapshot from leader"),
        "{}",
        cluster.logs_tail()
    );
    let after = fields(cluster.status(target).unwrap());
    assert_eq!(after, [Some(50), Some(50), Some(50), Some(kv.digest())]);
}

#[test]
fn sigterm_exits_zero() {
    let mut cluster = Cluster::start("sigterm", 3, &[]);
    cluster.wait_leader();
    for id in 1..=3 {
        assert_eq!(
            cluster.terminate(id),
            Some(0),
            "node {id} must exit 0 on SIGTERM"
        );
    }
}

fn kill_leader_during_writes(name: &str, size: usize, rounds: usize) {
    let cluster = Arc::new(Mutex::new(Cluster::start(
        name,
        size,
        &["--snapshot-entries", "200"],
    )));
    let stop = Arc::new(AtomicBool::new(false));
    cluster.lock().unwrap().wait_leader();
    let writers = spawn_writers(&cluster, 4, &stop);
    for _ in 0..rounds {
        std::thread::sleep(Duration::from_millis(400));
        let leader = cluster.lock().unwrap().wait_leader();
        cluster.lock().unwrap().kill(leader);
        std::thread::sleep(Duration::from_millis(600));
        cluster.lock().unwrap().start_node(leader);
    }
    std::thread::sleep(Duration::from_millis(400));
    let acked = stop_writers(&stop, writers);
    let cluster = cluster.lock().unwrap();
    assert!(
        acked.len() >= 20,
        "too few writes acknowledged ({}) to mean anything",
        acked.len()
    );
    cluster.wait_leader();
    let (applied, _) = cluster.wait_converged();
    verify_acked(&cluster, &acked);
    eprintln!("{name}: {} acknowledged writes survived {rounds} leader kills; all nodes at index {applied}", acked.len());
}

#[test]
fn three_nodes_survive_leader_kill9_during_writes() {
    kill_leader_during_writes("kill3", 3, 2);
}

#[test]
fn five_nodes_survive_leader_kill9_during_writes() {
    kill_leader_during_writes("kill5", 5, 2);
}

#[test]
fn lagging_follower_catches_up_through_install_snapshot() {
    let mut cluster = Cluster::start("snap", 3, &["--snapshot-entries", "50"]);
    let leader = cluster.wait_leader();
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    cluster.kill(follower);
    let view = ClusterView::of(&cluster);
    for i in 0..300 {
        let put = json!({"op":"put","key":format!("k{i}"),"value":format!("v{i}")});
        assert_eq!(call_leader(&view, &put, deadline()).unwrap()["ok"], true);
    }
    let leader_status = cluster.status(cluster.wait_leader()).unwrap();
    assert!(
        leader_status["snapshot_index"].as_u64().unwrap() >= 250,
        "leader must have compacted: {leader_status}"
    );
    cluster.start_node(follower);
    cluster.wait_converged();
    let log = std::fs::read_to_string(cluster.log_path(follower)).unwrap();
    assert!(
        log.contains("installed snapshot from leader"),
        "follower must catch up through InstallSnapshot"
    );
    // The follower's state is the leader's: make it lead and read through it.
    let digest = |id: u64| cluster.status(id).unwrap()["digest"].clone();
    assert_eq!(digest(follower), digest(leader));
}

#[test]
fn pipelined_writes_share_fsyncs() {
    let cluster = Cluster::start("group", 3, &[]);
    let leader = cluster.wait_leader();
    let syncs = |id: u64| cluster.status(id).unwrap()["wal_syncs"].as_u64().unwrap();
    let before = syncs(leader);
    let writes_count = 200u64;
    let lines: String = (1..=writes_count)
        .map(|i| format!("{{\"id\":{i},\"op\":\"put\",\"key\":\"g{i}\",\"value\":\"v\"}}\n"))
        .collect();
    let mut c = cluster.client(leader).unwrap();
    let first = c.send_raw(lines.as_bytes()).unwrap();
    assert_eq!(first["ok"], true, "{first}");
    for _ in 1..writes_count {
        let answer = c.read_answer().unwrap();
        assert_eq!(answer["ok"], true, "{answer}");
    }
    let used = syncs(leader) - before;
    eprintln!("group commit: {writes_count} pipelined writes took {used} leader fsyncs");
    assert!(
        used < writes_count / 2,
        "{writes_count} pipelined writes took {used} fsyncs: no group commit"
    );
}

#[test]
fn values_at_the_size_limit_replicate_to_a_lagging_follower() {
    let mut cluster = Cluster::start("big", 3, &[]);
    let leader = cluster.wait_leader();
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    cluster.kill(follower);
    let value = "x".repeat(faultline_node::protocol::VALUE_BYTES_MAX);
    let mut c = cluster.client(leader).unwrap();
    // More than one Append's worth, so the catch-up needs several maximal frames.
    for i in 0..(faultline_node::transport::APPEND_ENTRIES_MAX + 2) {
        let answer = c
            .call(json!({"op":"put","key":format!("big{i}"),"value":value}))
            .unwrap();
        assert_eq!(
            answer["ok"],
            true,
            "{}",
            answer.to_string().chars().take(200).collect::<String>()
        );
    }
    let started = Instant::now();
    cluster.start_node(follower);
    cluster.wait_converged();
    eprintln!(
        "big: follower caught up on {} MiB in {:?}",
        faultline_node::transport::APPEND_ENTRIES_MAX + 2,
        started.elapsed()
    );
}

/// The helper half of `a_killed_test_binary_takes_its_nodes_with_it`
/// (run only by it, through `--ignored`): starts one node, prints its pid
/// and its dir, and waits to be killed.
#[test]
#[ignore = "a helper: a_killed_test_binary_takes_its_nodes_with_it runs it in a process it kills"]
fn helper_starts_a_node_and_waits_to_be_killed() {
    let cluster = Cluster::start("orphan", 1, &[]);
    let pid = cluster.children[0].as_ref().map(|child| child.id()).expect("node 1 runs");
    println!("node-pid {pid} dir {}", cluster.dir.display());
    std::thread::sleep(Duration::from_millis(WAIT_MS_MAX));
}

#[test]
fn a_killed_test_binary_takes_its_nodes_with_it() {
    use std::io::BufRead;
    let mut helper = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--ignored", "--exact", "helper_starts_a_node_and_waits_to_be_killed", "--nocapture"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run the helper");
    let stdout = std::io::BufReader::new(helper.stdout.take().expect("piped"));
    let line = stdout.lines().map_while(Result::ok).find(|line| line.starts_with("node-pid ")).expect("the helper names its node");
    let mut words = line.split_whitespace().skip(1);
    let pid: u32 = words.next().and_then(|pid| pid.parse().ok()).expect("a pid");
    let dir = words.nth(1).expect("a dir").to_string();
    // SIGKILL: no Drop runs in the helper.
    helper.kill().expect("kill the helper");
    helper.wait().expect("reap the helper");
    let alive = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the command's closing parenthesis; a zombie is dead.
        stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z'))
    };
    let deadline = Instant::now() + Duration::from_millis(5_000);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!alive(), "node pid {pid} outlived its killed test binary");
}
