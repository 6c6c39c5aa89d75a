//! Nothing is left running after a test: not after a normal end, and not
//! after SIGTERM or SIGINT of the harness, which must also exit 3 and keep
//! the history recorded so far.
mod process_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use process_support::{processes_mentioning, wait_for};

fn node_binary() -> PathBuf {
    faultline::systems::faultline_node::find_node_binary()
        .expect("faultline-node must be built before these tests: cargo build --release -p faultline-node")
}

fn store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-cleanup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn start(store: &Path, time_limit: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test", "--quiet", "--nodes", "3", "--time-limit", time_limit, "--rate", "50", "--concurrency", "3"])
        .args(["--workload", "kv", "--nemesis", "kill,pause", "--seed", "5", "--name", "t"])
        .args(["--store", store.to_str().unwrap(), "--node-binary", node_binary().to_str().unwrap()])
        .args(["--set", "schedule.recovery=200ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut Child, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the harness did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn nodes_marker(store: &Path) -> String {
    store.join("t").display().to_string()
}

#[test]
fn nothing_survives_a_normal_end() {
    let store = store("normal");
    let marker = nodes_marker(&store);
    let mut child = start(&store, "3s");
    wait_for("3 node processes", Duration::from_secs(30), || processes_mentioning(&marker).len() >= 3);
    let code = wait_exit(&mut child, Duration::from_secs(90));
    assert!(code == 0 || code == 1 || code == 2, "a finished run exits 0-2, got {code}");
    assert_eq!(processes_mentioning(&marker), Vec::<u32>::new(), "node processes left behind");
    assert!(store.join("t/latest/results.json").exists());
    std::fs::remove_dir_all(&store).unwrap();
}

fn interrupted_by(signal: Signal, name: &str) {
    let store = store(name);
    let marker = nodes_marker(&store);
    let mut child = start(&store, "60s");
    wait_for("3 node processes", Duration::from_secs(30), || processes_mentioning(&marker).len() >= 3);
    let history = store.join("t/latest/history.jsonl");
    wait_for("history lines", Duration::from_secs(30), || {
        std::fs::read_to_string(&history).map(|text| text.lines().count() > 20).unwrap_or(false)
    });
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    let code = wait_exit(&mut child, Duration::from_secs(30));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(code, 3, "{name}: exit code; stderr {stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(processes_mentioning(&marker), Vec::<u32>::new(), "{name}: node processes left behind");
    let lines = std::fs::read_to_string(&history).unwrap();
    let mut lines = lines.lines();
    let header = lines.next().and_then(|line| faultline_checkers::Header::parse(line.as_bytes()));
    assert!(header.is_some(), "the history opens with its header line");
    for line in lines {
        let _: faultline_checkers::Event = serde_json::from_str(line).expect("every recorded line is a whole event");
    }
    let summary = std::fs::read_to_string(store.join("t/latest/summary.txt")).unwrap();
    assert!(summary.contains("interrupted by"), "{summary}");
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn nothing_survives_sigterm() {
    interrupted_by(Signal::SIGTERM, "sigterm");
}

#[test]
fn nothing_survives_sigint() {
    interrupted_by(Signal::SIGINT, "sigint");
}

/// What a node starts in the background (here a `sleep` beside the server,
/// as a start script without `exec`, or a sidecar, would leave) gets no
/// parent-death signal of its own; the guard kills it when the harness is
/// killed with SIGKILL.
#[test]
fn a_nodes_background_children_die_with_a_sigkilled_harness() {
    let store = store("grandchild");
    let marker = format!("faultline-grandchild-{}", std::process::id());
    let start = format!(
        "sleep 1000 & exec python3 -c 'import socket,time;s=socket.socket();s.bind((\"127.0.0.1\",{{client_port}}));s.listen();time.sleep(1000)' {marker}"
    );
    let mut harness = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test", "--quiet", "--nodes", "2", "--time-limit", "60s", "--nemesis", "none", "--name", "t"])
        .args(["--workload", "register", "--store", store.to_str().unwrap()])
        .args(["--set", "cluster.system=generic", "--set", &format!("cluster.generic.start={start:?}")])
        .args(["--set", "cluster.generic.client=external", "--set", "cluster.generic.client_command='exec cat >/dev/null'"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Each node: a python server (argv has the marker) whose group also
    // holds a `sleep 1000` started by the same shell.
    wait_for("2 node servers", Duration::from_secs(30), || servers(&marker).len() >= 2);
    // argv words are NUL-separated in /proc/<pid>/cmdline.
    let sleepers = || processes_mentioning("sleep\u{0}1000").into_iter().filter(|pid| in_group_of(*pid, &servers(&marker))).count();
    assert_eq!(sleepers(), 2, "each node runs a background sleep");
    let groups: Vec<String> = servers(&marker).into_iter().filter_map(group_of).collect();
    assert_eq!(groups.len(), 2);
    harness.kill().unwrap(); // SIGKILL: only PDEATHSIG and the guard act now.
    harness.wait().unwrap();
    wait_for("node servers to die", Duration::from_secs(10), || servers(&marker).is_empty());
    let in_old_groups = || {
        processes_mentioning("sleep\u{0}1000").into_iter().filter(|pid| group_of(*pid).is_some_and(|g| groups.contains(&g))).count()
    };
    wait_for("background children to die", Duration::from_secs(10), || in_old_groups() == 0);
    let _ = std::fs::remove_dir_all(&store);
}

/// The node servers: python processes whose argv holds `marker`.
fn servers(marker: &str) -> Vec<u32> {
    processes_mentioning(marker)
        .into_iter()
        .filter(|pid| {
            // argv[0], which a pyenv shim turns into a full path.
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline.split(|b| *b == 0).next().is_some_and(|program| program.ends_with(b"python3"))
        })
        .collect()
}

fn group_of(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(2)).map(str::to_string)
}

/// True when `pid` shares a process group with one of `others`.
fn in_group_of(pid: u32, others: &[u32]) -> bool {
    let wanted = group_of(pid);
    wanted.is_some() && others.iter().any(|other| group_of(*other) == wanted)
}
