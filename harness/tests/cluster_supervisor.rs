//! The cluster supervisor on real processes (a small python line-echo
//! server stands in for a node): start behind the proxy, kill, restart,
//! pause, resume, wipe, crash detection, port retry, readiness bound, and
//! cleanup after shutdown, a panic, SIGTERM and a SIGKILL of the harness.
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline::cluster::{
    BoxFuture, Cluster, ClusterConfig, ClusterError, Db, NodeEnv, NodeLaunch, NodeState, PeerRouting,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::TcpStream;

const ECHO_NODE: &str = r#"
import os, socket, sys, threading
client, data, fail_marker = sys.argv[1], sys.argv[2], sys.argv[3]
if fail_marker != "-" and not os.path.exists(fail_marker):
    open(fail_marker, "w").close()
    sys.exit(7)
with open(os.path.join(data, "state"), "a") as f:
    f.write("started\n")
host, port = client.rsplit(":", 1)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, int(port)))
server.listen(16)
def serve(conn):
    stream = conn.makefile("rwb")
    for line in stream:
        if line.strip() == b"exit":
            os._exit(3)
        stream.write(line)
        stream.flush()
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

/// A node that echoes lines on its client port; "exit" makes it crash.
struct EchoDb {
    /// When set, each node's first launch exits at once (as if its port
    /// were taken), leaving this marker file behind.
    fail_first_launch_dir: Option<PathBuf>,
    never_ready: bool,
}

impl EchoDb {
    fn new() -> Self {
        EchoDb { fail_first_launch_dir: None, never_ready: false }
    }
}

impl Db for EchoDb {
    fn name(&self) -> &str {
        "echo"
    }
    fn peer_routing(&self) -> PeerRouting {
        PeerRouting::PerPair
    }
    fn launch(&self, node: usize, env: &NodeEnv) -> Result<NodeLaunch, ClusterError> {
        let marker = match &self.fail_first_launch_dir {
            Some(dir) => dir.join(format!("failed-{node}")).display().to_string(),
            None => "-".to_string(),
        };
        let args = vec![
            "-c".to_string(),
            ECHO_NODE.to_string(),
            env.client_listen.to_string(),
            env.data_dir.display().to_string(),
            marker,
        ];
        Ok(NodeLaunch { program: "python3".into(), args, env: Vec::new(), files: Vec::new() })
    }
    fn wipe(&self, _node: usize, env: &NodeEnv) -> Result<(), ClusterError> {
        let _ = std::fs::remove_file(env.data_dir.join("state"));
        Ok(())
    }
    fn log_error_patterns(&self) -> Vec<String> {
        vec!["Traceback".to_string()]
    }
    fn is_ready<'a>(&'a self, _node: usize, env: &'a NodeEnv) -> BoxFuture<'a, bool> {
        Box::pin(async move { !self.never_ready && echo(env.client_listen, "ready", 500).await })
    }
    fn leader<'a>(&'a self, envs: &'a [NodeEnv]) -> BoxFuture<'a, Option<usize>> {
        Box::pin(async move { envs.first().map(|env| env.node) })
    }
}

/// Send one line and expect it back within `timeout_ms`.
async fn echo(addr: SocketAddr, text: &str, timeout_ms: u64) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(format!("{text}\n").as_bytes()).await.ok()?;
        let mut line = String::new();
        AsyncBufReader::new(stream).read_line(&mut line).await.ok()?;
        Some(line.trim() == text)
    };
    let result = tokio::time::timeout(Duration::from_millis(timeout_ms), exchange).await;
    result.ok().flatten().unwrap_or(false)
}

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-cluster-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn start(name: &str, db: EchoDb, nodes: usize) -> Cluster {
    let config = ClusterConfig { ready_timeout_ms: 5_000, ..ClusterConfig::new(nodes, test_dir(name), 1) };
    Cluster::start(Arc::new(db), config).await.unwrap()
}

/// The process is gone (or a zombie about to be reaped by init).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T')))
}

fn wait_until(bound_ms: u64, condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_millis(bound_ms);
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    condition()
}

fn refuses(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_restart_pause_resume_on_real_processes() {
    let cluster = start("lifecycle", EchoDb::new(), 3).await;
    for node in 0..3 {
        assert_eq!(cluster.node_state(node), NodeState::Running);
        assert!(echo(cluster.client_addr(node), "hi", 2_000).await, "node {node} through the proxy");
        assert_ne!(cluster.client_addr(node), cluster.node_env(node).client_listen);
    }
    let pid = cluster.pid(1).unwrap();
    cluster.kill(1).await.unwrap();
    assert_eq!(cluster.node_state(1), NodeState::Killed);
    assert!(dead(pid), "killed and reaped");
    assert!(!echo(cluster.client_addr(1), "hi", 500).await);

    cluster.restart(1).await.unwrap();
    assert_ne!(cluster.pid(1), Some(pid));
    assert!(echo(cluster.client_addr(1), "back", 2_000).await);

    let pid = cluster.pid(2).unwrap();
    cluster.pause(2).unwrap();
    assert_eq!(cluster.node_state(2), NodeState::Paused);
    assert!(wait_until(2_000, || stopped(pid)));
    assert!(!echo(cluster.client_addr(2), "asleep", 300).await);
    cluster.resume(2).unwrap();
    assert!(echo(cluster.client_addr(2), "awake", 2_000).await);
    assert_eq!(cluster.leader().await, Some(0));
    assert!(cluster.unexpected_exits().is_empty(), "{:?}", cluster.unexpected_exits());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_is_an_unexpected_exit() {
    let cluster = start("crash", EchoDb::new(), 2).await;
    let pid = cluster.pid(0).unwrap();
    let _ = echo(cluster.client_addr(0), "exit", 300).await;
    assert!(wait_until(3_000, || cluster.node_state(0) == NodeState::Killed));
    let exits = cluster.unexpected_exits();
    assert_eq!(exits.len(), 1, "{exits:?}");
    assert_eq!((exits[0].node, exits[0].pid, exits[0].code), (0, pid, Some(3)));
    assert_eq!(cluster.node_state(1), NodeState::Running);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_needs_a_killed_node_and_deletes_its_data() {
    let cluster = start("wipe", EchoDb::new(), 1).await;
    let state = cluster.node_env(0).data_dir.join("state");
    assert!(state.exists());
    assert!(matches!(cluster.wipe(0).await, Err(ClusterError::WrongState { .. })));
    cluster.kill(0).await.unwrap();
    cluster.wipe(0).await.unwrap();
    assert!(!state.exists());
    assert!(matches!(cluster.kill(5).await, Err(ClusterError::NoSuchNode(5))));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_fails_to_start_is_moved_to_fresh_ports() {
    let dir = test_dir("retry-markers");
    let db = EchoDb { fail_first_launch_dir: Some(dir.clone()), never_ready: false };
    let cluster = start("retry", db, 2).await;
    for node in 0..2 {
        assert!(dir.join(format!("failed-{node}")).exists(), "the first launch failed");
        assert!(echo(cluster.client_addr(node), "moved", 2_000).await);
    }
    assert!(cluster.unexpected_exits().is_empty(), "startup failures are not crashes");
    // Each launch line names the client address the node was given; the
    // failed launch's output is set aside, out of the log the checks read.
    let launches = |path: &std::path::Path| {
        let log = std::fs::read_to_string(path).unwrap();
        log.lines().filter(|l| l.contains("launching node 0")).map(String::from).collect::<Vec<_>>()
    };
    let log_path = cluster.log_paths()[0].clone();
    let (running, failed) = (launches(&log_path), launches(&log_path.with_extension("failed-starts.log")));
    assert_eq!((running.len(), failed.len()), (1, 1), "{running:?} {failed:?}");
    let now = cluster.node_env(0).client_listen.to_string();
    assert!(!failed[0].contains(&now) && running[0].contains(&now), "moved to {now}: {running:?} {failed:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_bounded_and_a_failed_start_leaves_nothing() {
    let dir = test_dir("never-ready");
    let config = ClusterConfig { ready_timeout_ms: 300, ..ClusterConfig::new(1, dir.clone(), 1) };
    let db = EchoDb { fail_first_launch_dir: None, never_ready: true };
    let start = Instant::now();
    let result = Cluster::start(Arc::new(db), config).await;
    assert!(matches!(result, Err(ClusterError::NotReady { node: 0, timeout_ms: 300, .. })));
    assert!(start.elapsed() < Duration::from_secs(5));
    let log = std::fs::read_to_string(dir.join("node-0.log")).unwrap();
    let pid: u32 = log
        .lines()
        .find_map(|line| line.strip_prefix("--- faultline supervisor: node 0 is pid "))
        .expect("the supervisor logs the pid")
        .parse()
        .unwrap();
    assert!(dead(pid), "the node that never got ready must be killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_child_and_no_port() {
    let cluster = start("shutdown", EchoDb::new(), 3).await;
    let pids: Vec<u32> = (0..3).map(|node| cluster.pid(node).unwrap()).collect();
    let addrs: Vec<SocketAddr> = (0..3)
        .flat_map(|node| [cluster.client_addr(node), cluster.node_env(node).client_listen])
        .collect();
    cluster.shutdown().await;
    cluster.shutdown().await; // idempotent
    assert!(pids.iter().all(|pid| dead(*pid)));
    assert!(wait_until(2_000, || addrs.iter().all(|addr| refuses(*addr))));
    assert_eq!(cluster.node_state(0), NodeState::Killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_cluster_kills_the_nodes() {
    let cluster = start("drop", EchoDb::new(), 2).await;
    let pids: Vec<u32> = (0..2).map(|node| cluster.pid(node).unwrap()).collect();
    drop(cluster);
    assert!(pids.iter().all(|pid| dead(*pid)));
}

// --- The harness dying: a parent process (this test binary, re-executed)
// starts a cluster, then is killed or panics; its nodes must die with it.

const HELPER_MODE: &str = "FAULTLINE_CLUSTER_HELPER_MODE";

/// Not a test on its own: the parent process of the tests below, run only
/// when they re-execute this binary with `HELPER_MODE` set.
#[test]
#[ignore = "helper process for the parent-death tests"]
fn helper_parent_process() {
    let mode = std::env::var(HELPER_MODE).expect("run by the parent-death tests only");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cluster = start(&format!("helper-{mode}"), EchoDb::new(), 2).await;
        if mode == "sigterm" {
            faultline::cluster::install_signal_cleanup(&cluster).unwrap();
        }
        for node in 0..2 {
            println!("PID {}", cluster.pid(node).unwrap());
            println!("ADDR {}", cluster.client_addr(node));
            println!("ADDR {}", cluster.node_env(node).client_listen);
        }
        println!("READY");
        if mode == "panic" {
            panic!("the harness panics with a cluster running");
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
}

/// Kills and reaps the helper whatever happens to the test.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run the helper in `mode`; returns it with its nodes' pids and addresses.
fn spawn_helper(mode: &str) -> (Reaped, Vec<u32>, Vec<SocketAddr>) {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args(["--ignored", "--exact", "helper_parent_process", "--nocapture", "--test-threads=1"])
        .env(HELPER_MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut helper = Reaped(child);
    let stdout = helper.0.stdout.take().unwrap();
    let (mut pids, mut addrs) = (Vec::new(), Vec::new());
    // libtest prints "test helper_parent_process ... " without a newline
    // before the helper's first line: match the words anywhere in a line.
    for line in BufReader::new(stdout).lines().take(100) {
        let line = line.unwrap();
        let after = |word: &str| line.split_once(word).map(|(_, rest)| rest.trim().to_string());
        if let Some(pid) = after("PID ") {
            pids.push(pid.parse().unwrap());
        } else if let Some(addr) = after("ADDR ") {
            addrs.push(addr.parse().unwrap());
        } else if line.ends_with("READY") {
            break;
        }
    }
    assert_eq!((pids.len(), addrs.len()), (2, 4), "the helper started its cluster");
    (helper, pids, addrs)
}

fn wait_exit(helper: &mut Reaped, bound_ms: u64) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_millis(bound_ms);
    while Instant::now() < deadline {
        if let Some(status) = helper.0.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn assert_nothing_left(pids: &[u32], addrs: &[SocketAddr]) {
    assert!(wait_until(3_000, || pids.iter().all(|pid| dead(*pid))), "nodes {pids:?} survived");
    // A freed port may be bound again at once by another test of this
    // binary (CI saw it once): only a listener the helper started counts.
    let left: Vec<&SocketAddr> = addrs.iter().filter(|addr| !refuses(**addr) && helper_started_a_listener_on(**addr)).collect();
    assert!(left.is_empty(), "ports {left:?} of {addrs:?} still listen, held by a process the helper started");
}

/// Whether a live process with the helper's mode in its environment (the
/// helper's nodes inherit it; this binary's other tests do not have it)
/// holds a listening socket on `addr`'s port.
fn helper_started_a_listener_on(addr: SocketAddr) -> bool {
    let inodes = listening_inodes(addr.port());
    let Ok(processes) = std::fs::read_dir("/proc") else { return false };
    processes.flatten().any(|process| {
        let path = process.path();
        let from_helper = std::fs::read(path.join("environ"))
            .is_ok_and(|environ| environ.split(|b| *b == 0).any(|var| var.starts_with(HELPER_MODE.as_bytes())));
        let Ok(fds) = std::fs::read_dir(path.join("fd")) else { return false };
        from_helper
            && fds.flatten().any(|fd| {
                let target = std::fs::read_link(fd.path()).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                inodes.iter().any(|inode| target == format!("socket:[{inode}]"))
            })
    })
}

#[test]
fn a_listener_is_blamed_on_the_helper_only_when_the_helper_started_it() {
    let ours = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    assert!(!helper_started_a_listener_on(ours.local_addr().unwrap()), "this test binary is not a helper");
    let script = "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen()\nprint(s.getsockname()[1],flush=True)\ntime.sleep(30)";
    let Ok(child) = Command::new("python3").args(["-c", script]).env(HELPER_MODE, "probe").stdout(Stdio::piped()).spawn() else {
        eprintln!("SKIP: no python3 to hold a listener");
        return;
    };
    let mut child = Reaped(child);
    let stdout = child.0.stdout.take().unwrap();
    let port: u16 = BufReader::new(stdout).lines().next().unwrap().unwrap().trim().parse().unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(wait_until(2_000, || helper_started_a_listener_on(addr)), "a listener the helper's environment holds is found");
}

/// Inodes of the sockets listening on `port` (`/proc/net/tcp`, state 0A).
fn listening_inodes(port: u16) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields.len() > 9 && fields[1].ends_with(&local) && fields[3] == "0A")
        .map(|fields| fields[9].to_string())
        .collect()
}

#[test]
fn nodes_die_when_the_harness_is_sigkilled() {
    let (mut helper, pids, addrs) = spawn_helper("sigkill");
    assert!(pids.iter().all(|pid| !dead(*pid)));
    helper.0.kill().unwrap(); // SIGKILL: no cleanup code runs.
    assert!(wait_exit(&mut helper, 5_000).is_some());
    assert_nothing_left(&pids, &addrs);
    assert!(!Path::new(&format!("/proc/{}", helper.0.id())).join("status").exists());
}

#[test]
fn nodes_die_when_the_harness_panics() {
    let (mut helper, pids, addrs) = spawn_helper("panic");
    let status = wait_exit(&mut helper, 10_000).expect("the helper exits");
    assert!(!status.success());
    assert_nothing_left(&pids, &addrs);
}

#[test]
fn sigterm_shuts_the_cluster_down_and_exits_143() {
    let (mut helper, pids, addrs) = spawn_helper("sigterm");
    let pid = nix::unistd::Pid::from_raw(helper.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut helper, 10_000).expect("the helper exits");
    assert_eq!(status.code(), Some(143));
    assert_nothing_left(&pids, &addrs);
}
