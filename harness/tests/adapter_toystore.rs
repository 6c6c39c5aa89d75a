//! The generic adapter against toystore (`examples/generic/toystore.py`), a
//! small primary-backup store written for these tests, each spec a system
//! that faultline once judged wrongly or could not describe:
//! - a store that forgets its data on restart, whose reads then fail: never
//!   `valid` (it was, before the verdicts needed evidence);
//! - a store with a lagging replica: stale reads caught, each answer names
//!   the node that served it, and `kill-leader` hits the node `leader` names;
//! - a node with two peer ports: a partition cuts both (with one proxied
//!   port it cut half the links); correct, so valid, and its replicas agree;
//! - a follower that advertises its own address (shared routing and
//!   `{advertise_addr}`): valid, replicas agree, every connection attributed.
//!
//! Needs python3, skipped without it unless `FAULTLINE_REQUIRE_ADAPTERS=1`.
mod spec_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline::cluster::{Cluster, ClusterConfig};
use faultline::nemesis::partition::isolate;
use faultline::systems::generic::GenericSpec;
use serde_json::Value;
use spec_support::{installed, run_spec, workspace};

fn python_or_skip() -> bool {
    installed(&["python3"])
}

/// A generic system that cannot name its leader records its faults, and a
/// test following that schedule injects them again on the recorded nodes.
#[test]
fn a_generic_systems_schedule_is_recorded_and_followed() {
    if !python_or_skip() {
        return;
    }
    let store = std::env::temp_dir().join(format!("faultline-generic-schedule-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let test = |name: &str, schedule: Option<&std::path::Path>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"));
        command.current_dir(workspace()).args(["test", "--quiet", "--spec", "examples/generic/toystore-forgetful.yaml"]);
        command.args(["--store", store.to_str().unwrap(), "--name", name]);
        if let Some(path) = schedule {
            command.args(["--schedule", path.to_str().unwrap()]);
        }
        let status = command.stdout(std::process::Stdio::null()).status().unwrap();
        assert!(status.code().is_some_and(|code| code < 3), "{name}: {status}");
        let text = std::fs::read_to_string(store.join(name).join("latest/schedule.jsonl")).unwrap();
        text.lines().skip(1).map(|line| serde_json::from_str::<Value>(line).unwrap()).collect::<Vec<Value>>()
    };
    let recorded = test("recorded", None);
    assert!(!recorded.is_empty(), "kills over 6 s");
    for event in &recorded {
        assert_eq!(event["fault"], "kill-random", "kill-leader is kill-random without a leader: {event}");
        assert!(event["leader"].is_null() && event["nodes"].is_array(), "{event}");
    }
    let followed = test("followed", Some(&store.join("recorded/latest/schedule.jsonl")));
    let what = |events: &[Value]| events.iter().map(|e| format!("{} {} {}", e["fault"], e["nodes"], e["duration_ms"])).collect::<Vec<_>>();
    assert_eq!(what(&followed), what(&recorded));
    std::fs::remove_dir_all(&store).unwrap();
}

/// A generic system's failure replays and shrinks like faultline-node's:
/// the lagging store's stale reads need no fault, so the shrink drops
/// every kill, and what it writes runs again as a test.
#[test]
fn a_generic_systems_failure_replays_and_shrinks() {
    if !python_or_skip() {
        return;
    }
    let store = std::env::temp_dir().join(format!("faultline-generic-shrink-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let faultline = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_faultline")).current_dir(workspace()).args(args).output().unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stdout).to_string())
    };
    let (code, stdout) = faultline(&["test", "--quiet", "--spec", "examples/generic/toystore-lagging.yaml", "--store", store.to_str().unwrap(), "--name", "lag"]);
    assert_eq!(code, Some(1), "stale reads: {stdout}");
    let dir = store.join("lag/latest");
    let (code, stdout) = faultline(&["replay", dir.to_str().unwrap(), "--runs", "1"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("run 1/1  same     invalid  linearizable-register"), "the lag shows in every run: {stdout}");
    let (code, stdout) = faultline(&["shrink", dir.to_str().unwrap(), "--budget", "75s"]);
    assert_eq!(code, Some(0), "{stdout}");
    let record: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("shrink/shrink.json")).unwrap()).unwrap();
    assert_eq!(record["after"]["events"], 0, "no kill is needed for a stale read: {stdout}");
    assert!(record["after"]["time_limit_ms"].as_u64() < record["before"]["time_limit_ms"].as_u64(), "{stdout}");
    let page = std::fs::read_to_string(dir.join("shrink/report.html")).unwrap();
    assert!(page.contains("Minimal failing schedule") && page.contains("No fault survived"), "the report says so");
    let spec = dir.join("shrink/spec.yaml");
    let schedule = dir.join("shrink/schedule.jsonl");
    let again = store.join("again");
    let (code, stdout) = faultline(&["test", "--quiet", "--spec", spec.to_str().unwrap(), "--schedule", schedule.to_str().unwrap(), "--store", again.to_str().unwrap()]);
    assert!(code.is_some_and(|code| code <= 1), "the minimal test runs: {stdout}");
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn a_store_that_forgets_its_data_is_never_valid() {
    if !python_or_skip() {
        return;
    }
    let run = run_spec("examples/generic/toystore-forgetful.yaml");
    assert_eq!(run.code, Some(2), "unknown: {}", run.stdout);
    let durability = run.check("durability");
    assert_eq!(durability["verdict"], "unknown", "{durability:#}");
    let reason = durability["reason"].as_str().unwrap();
    assert!(reason.contains("were never confirmed by a read"), "{reason}");
    assert_eq!(run.check("liveness")["verdict"], "valid", "writes still succeed after the restart");
    let kills = run.history.iter().filter(|e| e["f"] == "kill-random" && e["type"] == "ok").count();
    assert!(kills > 0, "the node was never restarted: {}", run.stdout);
}

#[test]
fn a_lagging_replica_is_caught_and_each_answer_names_its_node() {
    if !python_or_skip() {
        return;
    }
    let run = run_spec("examples/generic/toystore-lagging.yaml");
    assert_eq!(run.code, Some(1), "invalid: {}", run.stdout);
    assert_eq!(run.check("linearizable-register")["verdict"], "invalid");
    let reads_from = |node: &str| run.history.iter().any(|e| e["f"] == "read" && e["type"] == "ok" && e["node"] == node);
    assert!(["n1", "n2", "n3"].iter().all(|node| reads_from(node)), "reads from every node are recorded with it");
    let kills: Vec<&Value> = run.history.iter().filter(|e| e["f"] == "kill-leader" && e["type"] == "ok").collect();
    assert!(!kills.is_empty(), "kill-leader ran as itself, the `leader` command naming the primary");
    assert!(kills.iter().all(|e| e["value"]["killed"] == serde_json::json!(["n1"])), "{kills:?}");
}

#[test]
fn a_two_port_system_is_valid_and_its_replicas_agree() {
    if !python_or_skip() {
        return;
    }
    let run = run_spec("examples/generic/toystore-two-ports.yaml");
    assert_eq!(run.code, Some(0), "valid: {}", run.stdout);
    assert_eq!(run.check("convergence")["verdict"], "valid");
    assert!(run.results["proxy"]["connections_cut"].as_u64().unwrap() > 0, "partitions cut links: {}", run.results["proxy"]);
}

#[test]
fn an_advertised_address_system_is_valid_and_every_connection_is_attributed() {
    if !python_or_skip() {
        return;
    }
    let run = run_spec("examples/generic/toystore-advertised.yaml");
    assert_eq!(run.code, Some(0), "valid: {}", run.stdout);
    assert_eq!(run.check("convergence")["verdict"], "valid");
    assert_eq!(run.results["proxy"]["connections_unattributed"], 0, "{}", run.results["proxy"]);
    assert!(run.results["proxy"]["connections_cut"].as_u64().unwrap() > 0, "partitions cut links: {}", run.results["proxy"]);
}

/// toystore's STATUS of node `node`, through its (never partitioned)
/// client route.
fn status(cluster: &Cluster, node: usize) -> Value {
    let mut stream = TcpStream::connect(cluster.client_addr(node)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    stream.write_all(b"STATUS\n").unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    serde_json::from_str(line.trim_end().strip_prefix("OK ").unwrap()).unwrap()
}

/// Polls until node's links are `up` (both), or 5 s pass.
fn links_become(cluster: &Cluster, node: usize, up: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = status(cluster, node);
        if seen["repl_link"] == up && seen["election_link"] == up || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_cuts_both_peer_ports_of_a_node() {
    if !python_or_skip() {
        return;
    }
    let script = workspace().join("examples/generic/toystore.py");
    let script = script.display();
    let start = format!(
        "exec python3 {script} node --id {{id}} --data {{data_dir}} --client {{client_addr}} --repl {{peer_addr}} \
         --peers {{peers}} --election {{peer_addr:election}} --election-peers {{peers:election}}"
    );
    let spec = GenericSpec {
        start,
        wipe: None,
        ready: Some(format!("python3 {script} ask {{client_addr}} PING")),
        leader: None,
        digest: None,
        clock: None,
        peer_routing: "per-pair".into(),
        peer_ports: vec!["election".into()],
        log_error_patterns: vec![],
        client: "external".into(),
        client_command: Some("true".into()),
    };
    let dir = std::env::temp_dir().join(format!("faultline-toystore-ports-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = ClusterConfig { ready_timeout_ms: 15_000, ..ClusterConfig::new(3, dir.clone(), 5) };
    let cluster = Cluster::start(Arc::new(spec.db(None)), config).await.unwrap_or_else(|e| panic!("toystore start: {e}"));
    let cluster = tokio::task::spawn_blocking(move || {
        let up = links_become(&cluster, 1, true);
        assert_eq!((&up["repl_link"], &up["election_link"]), (&Value::Bool(true), &Value::Bool(true)), "{up}");
        // Cut the primary (node 0) off: the follower loses it on both ports.
        cluster.proxy().partition(&isolate(0, 3));
        let cut = links_become(&cluster, 1, false);
        assert_eq!((&cut["repl_link"], &cut["election_link"]), (&Value::Bool(false), &Value::Bool(false)), "{cut}");
        cluster.proxy().heal();
        let healed = links_become(&cluster, 1, true);
        assert_eq!((&healed["repl_link"], &healed["election_link"]), (&Value::Bool(true), &Value::Bool(true)), "{healed}");
        cluster
    })
    .await
    .unwrap();
    cluster.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
