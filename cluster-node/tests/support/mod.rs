//! Process-test support: a cluster of real `faultline-node` processes on
//! 127.0.0.1, in a temp dir, killed and reaped on drop, plus a tiny client.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const WAIT_MS_MAX: u64 = 15_000;

/// Ports handed out in this test process: the kernel may offer a port again
/// once its probe listener is closed, so never hand one out twice.
static PORTS_GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
const PORT_ATTEMPTS_MAX: usize = 1000;

pub fn free_addr() -> SocketAddr {
    let mut given = PORTS_GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..PORT_ATTEMPTS_MAX {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("local addr");
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr;
        }
    }
    panic!("no fresh ephemeral port in {PORT_ATTEMPTS_MAX} attempts");
}

pub struct Cluster {
    pub dir: PathBuf,
    pub client_addrs: Vec<SocketAddr>,
    pub peer_addrs: Vec<SocketAddr>,
    pub children: Vec<Option<Child>>,
    pub extra_args: Vec<String>,
}

impl Cluster {
    /// Starts `size` nodes (ids 1..=size).
    pub fn start(name: &str, size: usize, extra_args: &[&str]) -> Cluster {
        Cluster::start_some(name, size, size, extra_args)
    }

    /// Gives `size` nodes addresses (every node's `--peers` lists them all)
    /// and starts ids 1..=running; the rest wait for `start_node`.
    pub fn start_some(name: &str, size: usize, running: usize, extra_args: &[&str]) -> Cluster {
        let dir = std::env::temp_dir().join(format!("fl-node-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the test dir");
        let mut cluster = Cluster {
            dir,
            client_addrs: (0..size).map(|_| free_addr()).collect(),
            peer_addrs: (0..size).map(|_| free_addr()).collect(),
            children: (0..size).map(|_| None).collect(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        for id in 1..=running as u64 {
            cluster.start_node(id);
        }
        cluster
    }

    pub fn size(&self) -> usize {
        self.children.len()
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node{id}.log"))
    }

    pub fn start_node(&mut self, id: u64) {
        let i = (id - 1) as usize;
        assert!(self.children[i].is_none(), "node {id} is already running");
        let peers: Vec<String> = (1..=self.size() as u64)
            .filter(|&p| p != id)
            .map(|p| format!("{p}={}", self.peer_addrs[(p - 1) as usize]))
            .collect();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .expect("open node log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_faultline-node"));
        // A test binary killed from outside (a bench's timeout) or aborted
        // skips Drop: the kernel kills its nodes with it. Seen: a node of
        // a mutant's `kill3` test, orphaned under init for two hours.
        // SAFETY: prctl is async-signal-safe and touches no memory.
        unsafe {
            command.pre_exec(|| nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from));
        }
        let child = command
            .args(["--id", &id.to_string()])
            .arg("--data-dir")
            .arg(self.dir.join(format!("node{id}")))
            .args(["--client-addr", &self.client_addrs[i].to_string()])
            .args(["--peer-addr", &self.peer_addrs[i].to_string()])
            .args(["--peers", &peers.join(",")])
            .args([
                "--election-timeout-ms",
                "150",
                "--heartbeat-interval-ms",
                "25",
            ])
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn faultline-node");
        self.children[i] = Some(child);
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.children[(id - 1) as usize].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns the exit code.
    pub fn terminate(&mut self, id: u64) -> Option<i32> {
        let mut child = self.children[(id - 1) as usize].take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_millis(5_000);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Waits (bounded) for node `id` to exit on its own; returns its exit code.
    pub fn wait_exit(&mut self, id: u64, timeout_ms: u64) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        while Instant::now() < deadline {
            let child = self.children[(id - 1) as usize].as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.children[(id - 1) as usize] = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn wal_segment(&self, id: u64) -> PathBuf {
        let dir = self.dir.join(format!("node{id}")).join("wal");
        let mut segments: Vec<PathBuf> = fs::read_dir(&dir)
            .expect("read the WAL dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        segments.sort();
        segments.pop().expect("at least one WAL segment")
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.children[(id - 1) as usize].is_some()
    }

    pub fn client(&self, id: u64) -> Option<Client> {
        Client::connect(self.client_addrs[(id - 1) as usize])
    }

    pub fn status(&self, id: u64) -> Option<Value> {
        let mut c = self.client(id)?;
        let r = c.call(json!({"op": "status"}))?;
        r.get("value").cloned()
    }

    /// Waits (bounded) for a running node that reports itself leader.
    pub fn wait_leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        while Instant::now() < deadline {
            for id in 1..=self.size() as u64 {
                if !self.is_running(id) {
                    continue;
                }
                if let Some(s) = self.status(id) {
                    if s["role"] == "leader" {
                        return id;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!("no leader within {WAIT_MS_MAX} ms\n{}", self.logs_tail());
    }

    /// Waits (bounded) until every running node applied the same index with the same digest.
    pub fn wait_converged(&self) -> (u64, u64) {
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last = (1..=self.size() as u64)
                .filter(|&id| self.is_running(id))
                .map(|id| {
                    self.status(id).map(|s| {
                        (
                            s["commit"].as_u64(),
                            s["applied"].as_u64(),
                            s["digest"].as_u64(),
                        )
                    })
                })
                .collect::<Vec<_>>();
            let first = last.first().cloned().flatten();
            if let Some((Some(commit), Some(applied), Some(digest))) = first {
                if commit == applied && last.iter().all(|s| *s == first) {
                    return (applied, digest);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "nodes did not converge within {WAIT_MS_MAX} ms: {last:?}\n{}",
            self.logs_tail()
        );
    }

    pub fn logs_tail(&self) -> String {
        let mut out = String::new();
        for id in 1..=self.size() as u64 {
            let text = fs::read_to_string(self.log_path(id)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            out.push_str(&format!("--- node {id} ---\n{}\n", tail.join("\n")));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in 1..=self.size() as u64 {
            self.kill(id);
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("{}", self.logs_tail());
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// One connection; one request at a time.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    id_next: u64,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Option<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_millis(4_000)))
            .ok()?;
        let writer = stream.try_clone().ok()?;
        Some(Client {
            reader: BufReader::new(stream),
            writer,
            id_next: 1,
        })
    }

    pub fn send_raw(&mut self, line: &[u8]) -> Option<Value> {
        self.writer.write_all(line).ok()?;
        self.read_answer()
    }

    /// Reads the next answer line (for pipelined requests).
    pub fn read_answer(&mut self) -> Option<Value> {
        let mut answer = String::new();
        self.reader.read_line(&mut answer).ok()?;
        serde_json::from_str(&answer).ok()
    }

    /// Sends `request` with a fresh `id` and returns the answer.
    pub fn call(&mut self, mut request: Value) -> Option<Value> {
        let id = self.id_next;
        self.id_next += 1;
        request["id"] = json!(id);
        let mut line = request.to_string();
        line.push('\n');
        let answer = self.send_raw(line.as_bytes())?;
        assert_eq!(
            answer["id"],
            json!(id),
            "answer for another request: {answer}"
        );
        Some(answer)
    }
}

/// The addresses and liveness of a cluster, for client threads that must not
/// hold the cluster (and its children) while they wait on the network.
#[derive(Clone, Debug)]
pub struct ClusterView {
    pub client_addrs: Vec<SocketAddr>,
    pub running: Vec<bool>,
}

impl ClusterView {
    pub fn of(cluster: &Cluster) -> ClusterView {
        let running = (1..=cluster.size() as u64)
            .map(|id| cluster.is_running(id))
            .collect();
        ClusterView {
            client_addrs: cluster.client_addrs.clone(),
            running,
        }
    }
}

/// Sends `request` to whichever node leads, retrying (same client/seq) until
/// a definite answer or `deadline`. Returns the definite answer.
pub fn call_leader(view: &ClusterView, request: &Value, deadline: Instant) -> Option<Value> {
    let size = view.client_addrs.len() as u64;
    let running = |id: u64| view.running[(id - 1) as usize];
    let mut target = 1u64;
    while Instant::now() < deadline {
        if running(target) {
            if let Some(answer) = Client::connect(view.client_addrs[(target - 1) as usize])
                .and_then(|mut c| c.call(request.clone()))
            {
                if answer["ok"] == true
                    || (answer["definite"] == true && answer["error"] != "not_leader")
                {
                    return Some(answer);
                }
                if let Some(leader) = answer["leader"].as_u64() {
                    if leader != target && leader >= 1 && leader <= size && running(leader) {
                        target = leader;
                        continue;
                    }
                }
            }
        }
        target = target % size + 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Writers put distinct keys through whichever node leads, retrying with the
/// same (client, seq), and return the keys that were acknowledged.
pub fn spawn_writers(
    cluster: &Arc<Mutex<Cluster>>,
    writers: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<String>>> {
    (0..writers)
        .map(|w| {
            let (cluster, stop) = (cluster.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut acked, mut seq) = (Vec::new(), 0u64);
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let key = format!("w{w}-{seq}");
                    let request = json!({"op":"put","key":key,"value":"v","client":format!("writer{w}"),"seq":seq});
                    let view = ClusterView::of(&cluster.lock().unwrap());
                    let answer = call_leader(&view, &request, Instant::now() + Duration::from_millis(1_500));
                    if answer.is_some_and(|a| a["ok"] == true) {
                        acked.push(key);
                    }
                }
                acked
            })
        })
        .collect()
}

pub fn verify_acked(cluster: &Cluster, acked: &BTreeSet<String>) {
    let view = ClusterView::of(cluster);
    for key in acked {
        let answer = call_leader(
            &view,
            &json!({"op":"get","key":key}),
            Instant::now() + Duration::from_millis(WAIT_MS_MAX),
        )
        .expect("read an acknowledged key");
        assert_eq!(
            answer["value"],
            json!("v"),
            "acknowledged write {key} lost: {answer}"
        );
    }
}

pub fn stop_writers(
    stop: &AtomicBool,
    writers: Vec<std::thread::JoinHandle<Vec<String>>>,
) -> BTreeSet<String> {
    stop.store(true, Ordering::Relaxed);
    writers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}
