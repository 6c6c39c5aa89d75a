//! The generic adapter and the external client on real processes: start
//! failures (program missing, never ready) are clear errors that leave
//! nothing running; an external client program that hangs is killed and
//! its operation recorded as `info`; spec validation of `cluster.system`.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod process_support;

use faultline::systems::generic::{ExternalClient, ExternalCommand};
use faultline::client::{Client, ClientConfig, Outcome};
use faultline::systems::generic::GenericSpec;
use faultline::cluster::{Cluster, ClusterConfig, ClusterError};
use faultline::plan::{SpecFile, TestPlan};
use faultline_workloads::{Invocation, WorkloadKind};
use serde_json::json;

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-adapter-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn spec(start: &str, ready: Option<&str>) -> GenericSpec {
    GenericSpec {
        start: start.into(),
        wipe: None,
        ready: ready.map(str::to_string),
        leader: None,
        digest: None,
        clock: None,
        peer_routing: "per-pair".into(),
        peer_ports: Vec::new(),
        log_error_patterns: vec![],
        client: "faultline-node".into(),
        client_command: None,
    }
}

/// Processes whose command line mentions `marker`.
fn running(marker: &str) -> String {
    let output = std::process::Command::new("pgrep").args(["-af", marker]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).lines().filter(|l| !l.contains("pgrep")).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn a_node_never_ready_is_a_clear_error_and_is_killed() {
    let dir = test_dir("generic-never-ready");
    let marker = format!("faultline-never-ready-{}", std::process::id());
    let db = spec(&format!("exec sleep 30 # {marker}"), Some("exit 1")).db(None);
    let config = ClusterConfig { ready_timeout_ms: 600, ..ClusterConfig::new(2, dir.clone(), 1) };
    let started = Instant::now();
    let error = Cluster::start(Arc::new(db), config).await.err().expect("a never-ready cluster started");
    assert!(matches!(error, ClusterError::NotReady { node: 0, timeout_ms: 600, .. }), "{error}");
    assert!(error.to_string().contains("not ready after 600 ms"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(running(&marker), "", "nodes left running");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_missing_program_is_a_clear_error() {
    let dir = test_dir("generic-missing");
    let db = spec("exec /nonexistent/faultline-server {client_addr}", None).db(None);
    let config = ClusterConfig { ready_timeout_ms: 2_000, ..ClusterConfig::new(1, dir.clone(), 1) };
    let error = Cluster::start(Arc::new(db), config).await.err().expect("started without its program");
    // The shell starts, then exits 127: the node exited during start-up,
    // and its log says why.
    assert!(matches!(error, ClusterError::ExitedEarly { node: 0, code: Some(127), .. }), "{error}");
    let log = std::fs::read_to_string(dir.join("node-0.log")).unwrap();
    assert!(log.contains("/nonexistent/faultline-server"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn external(command: &str, op_timeout_ms: u64) -> ExternalClient {
    let config = ClientConfig {
        addrs: vec!["127.0.0.1:1".parse().unwrap()],
        kind: WorkloadKind::Register,
        transactions: None,
        op_timeout_ms,
        connect_timeout_ms: 100,
        redirects_max: 0,
    };
    let command = ExternalCommand { command: command.into(), dir: None };
    ExternalClient::new(Arc::new(config), Arc::new(command), 0)
}

fn write(value: i64) -> Invocation {
    Invocation { f: "write".into(), key: Some("r".into()), value: json!(value) }
}

#[tokio::test]
async fn external_programs_answer_by_line_and_hung_ones_are_killed() {
    // A shell client that acknowledges every operation and reports its env.
    let echo = r#"while read -r line; do id=$(echo "$line" | sed 's/.*"id":\([0-9]*\).*/\1/'); echo "{\"id\":$id,\"type\":\"ok\",\"error\":\"$FAULTLINE_NODES $FAULTLINE_WORKLOAD\"}"; done"#;
    let mut client = external(echo, 2_000);
    assert_eq!(client.invoke(&write(1)).await.outcome, Outcome::Ok(json!(1)));
    assert_eq!(client.invoke(&write(2)).await.outcome, Outcome::Ok(json!(2)));

    let marker = format!("faultline-hung-client-{}", std::process::id());
    let mut hung = external(&format!("exec sleep 30 # {marker}"), 300);
    let outcome = hung.invoke(&write(3)).await.outcome;
    assert_eq!(outcome, Outcome::Info("timeout".into()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(running(&marker), "", "the hung client program was not killed");

    let mut crashing = external("exit 3", 1_000);
    assert!(matches!(crashing.invoke(&write(4)).await.outcome, Outcome::Info(_) | Outcome::Fail(_)));
}

#[test]
fn specs_choose_and_validate_the_system() {
    let plan = |yaml: &str| {
        let spec = SpecFile::from_yaml(yaml, "test").map_err(|e| e.to_string())?;
        TestPlan::from_spec(&spec, 1).map_err(|e| e.to_string())
    };
    assert_eq!(plan("cluster: {system: etcd, nodes: 3}").unwrap().cluster.system.name(), "etcd");
    assert_eq!(plan("cluster: {system: redis-sentinel, nodes: 3}").unwrap().cluster.system.name(), "redis-sentinel");
    let generic = "cluster:\n  system: generic\n  generic:\n    start: exec ./server {client_addr}\n    client: external\n    client_command: python3 client.py\n";
    assert_eq!(plan(generic).unwrap().cluster.system.name(), "generic");
    let error = plan("cluster: {system: cassandra}").unwrap_err();
    assert!(error.contains("cluster.system") && error.contains("generic"), "{error}");
    let error = plan("cluster: {system: generic}").unwrap_err();
    assert!(error.contains("cluster.generic"), "{error}");
    let error = plan(&generic.replace("client: external", "client: grpc")).unwrap_err();
    assert!(error.contains("cluster.generic.client"), "{error}");
    let error = plan(&generic.replace("system: generic", "system: etcd")).unwrap_err();
    assert!(error.contains("unknown field `generic`") && error.contains("system etcd"), "{error}");
    let error = plan(&generic.replace("    client_command: python3 client.py\n", "")).unwrap_err();
    assert!(error.contains("client_command"), "{error}");
}

/// A generic node whose wall clock its `clock` command reports: a shell
/// writing `date +%s` (a libc program, so libfaketime reaches it) to a file.
fn clock_node(clock: &str) -> GenericSpec {
    let start = "exec sh -c 'while true; do date +%s > {data_dir}/now; sleep 0.1; done'";
    GenericSpec { clock: Some(clock.into()), ..spec(start, Some("test -s {data_dir}/now")) }
}

fn with_clock(dir: &std::path::Path) -> Option<ClusterConfig> {
    if !process_support::faketime_or_skip() {
        return None;
    }
    let library = faultline::cluster::find_libfaketime().ok()?;
    let clock = faultline::cluster::ClockConfig { library, fake_monotonic: false };
    Some(ClusterConfig { ready_timeout_ms: 5_000, clock: Some(clock), ..ClusterConfig::new(2, dir.to_path_buf(), 1) })
}

#[tokio::test]
async fn a_generic_clock_command_shows_the_faked_clock_and_a_probe_that_misses_it_is_refused() {
    let dir = test_dir("generic-clock");
    let Some(config) = with_clock(&dir) else { return };
    let cluster = Cluster::start(Arc::new(clock_node("cat {data_dir}/now").db(None)), config.clone()).await.unwrap();
    let verified = cluster.verify_clocks().await;
    cluster.shutdown().await;
    assert!(verified.is_ok(), "{verified:?}");
    // The harness's own `date` is not the node's clock: the offset is not seen.
    let blind = Cluster::start(Arc::new(clock_node("date +%s").db(None)), config).await.unwrap();
    let refused = blind.verify_clocks().await.unwrap_err().to_string();
    blind.shutdown().await;
    assert!(refused.contains("clock faults do not reach node 0"), "{refused}");
    let _ = std::fs::remove_dir_all(&dir);
}
