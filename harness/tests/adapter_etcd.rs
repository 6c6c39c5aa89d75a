//! The etcd adapter on a real 3-member etcd cluster behind the fault proxy:
//! register, cas and set operations through the v3 gateway client; a
//! partition that isolates the leader stops writes through it while the
//! majority goes on; a killed member comes back; the members' hashkv
//! digests agree once settled; nothing is left running.
//!
//! Skipped with a message when etcd is not installed, unless
//! `FAULTLINE_REQUIRE_ADAPTERS=1` (CI), where a missing etcd fails.
mod etcd_support;
use etcd_support::{etcd_or_skip, test_dir};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline::systems::etcd::EtcdClient;
use faultline::client::{Client, ClientConfig, Outcome};
use faultline::systems::etcd::EtcdDb;
use faultline::cluster::{Cluster, ClusterConfig, ClusterError};
use faultline::nemesis::partition::isolate;
use faultline::verdict::Convergence;
use faultline_checkers::Verdict;
use faultline_workloads::{Invocation, WorkloadKind};
use serde_json::{json, Value};

fn fast_db(binary: PathBuf) -> EtcdDb {
    EtcdDb { election_timeout_ms: 500, heartbeat_interval_ms: 50, ..EtcdDb::new(binary) }
}

/// Clients start at node `process % nodes`.
fn config_for(cluster: &Cluster, kind: WorkloadKind) -> Arc<ClientConfig> {
    let addrs = (0..cluster.nodes()).map(|n| cluster.client_addr(n)).collect::<Vec<_>>();
    Arc::new(ClientConfig { addrs, kind, transactions: None, op_timeout_ms: 1_500, connect_timeout_ms: 500, redirects_max: 0 })
}

fn op(f: &str, key: &str, value: Value) -> Invocation {
    Invocation { f: f.into(), key: Some(key.into()), value }
}

async fn leader(cluster: &Cluster) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(leader) = cluster.leader().await {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no etcd leader within 10 s");
}

fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_serves_partitions_and_restarts_behind_the_proxy() {
    let Some(binary) = etcd_or_skip("etcd adapter test") else { return };
    let dir = test_dir("etcd");
    let config = ClusterConfig { ready_timeout_ms: 15_000, ..ClusterConfig::new(3, dir.clone(), 7) };
    let cluster = Cluster::start(Arc::new(fast_db(binary)), config).await.unwrap_or_else(|e| panic!("etcd start: {e}"));
    let pids: Vec<u32> = (0..3).map(|n| cluster.pid(n).unwrap()).collect();

    // Registers, cas and sets through every member.
    let register = config_for(&cluster, WorkloadKind::CasRegister);
    let mut client = EtcdClient::new(register.clone(), 0);
    assert_eq!(client.invoke(&op("read", "r", Value::Null)).await.outcome, Outcome::Ok(Value::Null));
    assert_eq!(client.invoke(&op("write", "r", json!(3))).await.outcome, Outcome::Ok(json!(3)));
    let mut other = EtcdClient::new(register.clone(), 1);
    assert_eq!(other.invoke(&op("read", "r", Value::Null)).await.outcome, Outcome::Ok(json!(3)));
    assert_eq!(other.invoke(&op("cas", "r", json!([3, 4]))).await.outcome, Outcome::Ok(json!([3, 4])));
    assert!(matches!(client.invoke(&op("cas", "r", json!([3, 5]))).await.outcome, Outcome::Fail(_)));
    let set = config_for(&cluster, WorkloadKind::Set);
    let mut adder = EtcdClient::new(set.clone(), 2);
    for element in [5, 1, 9] {
        assert_eq!(adder.invoke(&op("add", "s", json!(element))).await.outcome, Outcome::Ok(json!(element)));
    }
    assert_eq!(adder.invoke(&op("read", "s", Value::Null)).await.outcome, Outcome::Ok(json!([1, 5, 9])));
    let list = config_for(&cluster, WorkloadKind::Append);
    let mut appender = EtcdClient::new(list, 0);
    assert_eq!(appender.invoke(&op("append", "l", json!(2))).await.outcome, Outcome::Ok(json!(2)));
    assert_eq!(appender.invoke(&op("append", "l", json!(7))).await.outcome, Outcome::Ok(json!(7)));
    assert_eq!(appender.invoke(&op("read", "l", Value::Null)).await.outcome, Outcome::Ok(json!([2, 7])));

    // Isolate the leader: a write through it cannot commit; the majority
    // elects a new leader and commits.
    let old = leader(&cluster).await;
    cluster.proxy().partition(&isolate(old, 3));
    let mut cut_off = EtcdClient::new(register.clone(), old as u64);
    let outcome = cut_off.invoke(&op("write", "r", json!(10))).await.outcome;
    assert!(matches!(outcome, Outcome::Info(_)), "a write through the isolated leader must not succeed: {outcome:?}");
    let majority_node = (old + 1) % 3;
    let mut majority = EtcdClient::new(register.clone(), majority_node as u64);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut committed = false;
    while Instant::now() < deadline && !committed {
        committed = majority.invoke(&op("write", "r", json!(11))).await.outcome == Outcome::Ok(json!(11));
        if !committed {
            majority = EtcdClient::new(register.clone(), majority_node as u64);
        }
    }
    assert!(committed, "the majority side never committed a write");
    assert!(cluster.proxy().stats().connections_cut > 0, "the partition cut no established peer stream");
    cluster.proxy().heal();

    // Kill a member; the rest serve; it comes back with its data.
    cluster.kill(old).await.unwrap();
    assert!(dead(pids[old]));
    let mut survivor = EtcdClient::new(register.clone(), majority_node as u64);
    let outcome = survivor.invoke(&op("write", "r", json!(12))).await.outcome;
    assert_eq!(outcome, Outcome::Ok(json!(12)));
    cluster.restart(old).await.unwrap();
    let mut back = EtcdClient::new(register.clone(), old as u64);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = back.invoke(&op("read", "r", Value::Null)).await.outcome;
    while seen != Outcome::Ok(json!(12)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        back = EtcdClient::new(register.clone(), old as u64);
        seen = back.invoke(&op("read", "r", Value::Null)).await.outcome;
    }
    assert_eq!(seen, Outcome::Ok(json!(12)), "the restarted member never served the latest write");

    // Settled, every member reports the same hashkv at one revision.
    let convergence = Convergence::probe(&cluster, 10_000).await;
    assert_eq!(convergence.check().verdict, Verdict::Valid, "{convergence:?}");
    assert!(convergence.nodes.iter().all(|node| node.digest.as_ref().is_some_and(|d| d.position.is_some())));
    assert!(cluster.unexpected_exits().is_empty(), "{:?}", cluster.unexpected_exits());

    let all: Vec<u32> = (0..3).filter_map(|n| cluster.pid(n)).chain(pids).collect();
    cluster.shutdown().await;
    for pid in all {
        assert!(dead(pid), "etcd pid {pid} survived shutdown");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_missing_etcd_binary_is_a_clear_start_error() {
    let dir = test_dir("etcd-missing");
    let config = ClusterConfig { ready_timeout_ms: 2_000, ..ClusterConfig::new(3, dir.clone(), 1) };
    let error = Cluster::start(Arc::new(EtcdDb::new("/nonexistent/etcd".into())), config).await.err();
    let Some(error) = error else { panic!("a cluster started without its binary") };
    assert!(matches!(error, ClusterError::Spawn { .. }), "{error}");
    assert!(error.to_string().contains("/nonexistent/etcd"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_etcd_that_never_becomes_ready_is_killed_and_reported() {
    let Some(binary) = etcd_or_skip("etcd adapter test") else { return };
    let dir = test_dir("etcd-never-ready");
    // A one-member start of a three-member cluster: it never sees a
    // leader, so it never reports healthy.
    let db = fast_db(binary);
    let config = ClusterConfig { ready_timeout_ms: 1_500, ..ClusterConfig::new(3, dir.clone(), 1) };
    let started = Instant::now();
    let result = Cluster::start(Arc::new(BrokenPeers(db)), config).await;
    let Err(error) = result else { panic!("a leaderless etcd was called ready") };
    assert!(matches!(error, ClusterError::NotReady { .. } | ClusterError::ExitedEarly { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let leftovers = std::process::Command::new("pgrep").args(["-f", &dir.display().to_string()]).output().unwrap();
    assert!(leftovers.stdout.is_empty(), "etcd processes left running: {}", String::from_utf8_lossy(&leftovers.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

/// etcd whose members dial a peer address nobody serves, so no quorum ever
/// forms.
struct BrokenPeers(EtcdDb);

impl faultline::cluster::Db for BrokenPeers {
    fn name(&self) -> &str {
        "etcd-broken-peers"
    }
    fn peer_routing(&self) -> faultline::cluster::PeerRouting {
        self.0.peer_routing()
    }
    fn launch(&self, node: usize, env: &faultline::cluster::NodeEnv) -> Result<faultline::cluster::NodeLaunch, ClusterError> {
        let mut env = env.clone();
        for (peer, addr) in env.peer_dial.iter_mut() {
            if *peer != node {
                addr.set_port(1);
            }
        }
        self.0.launch(node, &env)
    }
    fn wipe(&self, node: usize, env: &faultline::cluster::NodeEnv) -> Result<(), ClusterError> {
        self.0.wipe(node, env)
    }
    fn log_error_patterns(&self) -> Vec<String> {
        self.0.log_error_patterns()
    }
    fn is_ready<'a>(&'a self, node: usize, env: &'a faultline::cluster::NodeEnv) -> faultline::cluster::BoxFuture<'a, bool> {
        self.0.is_ready(node, env)
    }
    fn leader<'a>(&'a self, envs: &'a [faultline::cluster::NodeEnv]) -> faultline::cluster::BoxFuture<'a, Option<usize>> {
        self.0.leader(envs)
    }
}
