//! Nodes on hosts, the hosts being network namespaces of this machine with
//! an sshd each (`cluster.hosts: {netns: N}`): the same SSH, iptables and
//! tc code path a user's VMs get. Root and Debian's openssh-server are
//! needed; without them each test says SKIP (and fails where
//! FAULTLINE_REQUIRE_NETNS=1, as `.ci/run` sets as root).
mod etcd_support;
mod netns_support;
mod process_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use netns_support::netns_or_skip;
use process_support::{processes_mentioning, wait_child, wait_for};

/// One netns run at a time: each makes five to ten processes per host.
static SERIAL: Mutex<()> = Mutex::new(());

fn node_binary() -> PathBuf {
    faultline::systems::faultline_node::find_node_binary()
        .expect("faultline-node must be built before these tests: cargo build --release -p faultline-node")
}

/// `faultline test` of faultline-node (the built one).
fn faultline(store: &Path, args: &[&str]) -> Command {
    let mut command = any_system(store, args);
    command.args(["--node-binary", node_binary().to_str().unwrap()]);
    command
}

fn any_system(store: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_faultline"));
    command.args(["test", "--quiet", "--name", "t", "--store", store.to_str().unwrap()]).args(args);
    command
}

fn run(store: &Path, args: &[&str]) -> Output {
    faultline(store, args).output().unwrap()
}

/// The one results folder under the store.
fn results_dir(store: &Path) -> PathBuf {
    let runs = store.join("t");
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(&runs).unwrap().flatten().map(|entry| entry.path()).filter(|path| path.is_dir()).collect();
    dirs.sort();
    dirs.pop().expect("a results folder")
}

/// Namespaces, bridges and interfaces named for the harness `pid`.
fn leftovers_of(pid: u32) -> Vec<String> {
    let prefix = format!("f{pid}");
    let list = |args: &[&str]| String::from_utf8_lossy(&Command::new("ip").args(args).output().unwrap().stdout).into_owned();
    let namespaces = list(&["netns", "list"]);
    let links = list(&["-o", "link", "show"]);
    namespaces
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .chain(links.lines().filter_map(|line| line.split(':').nth(1)).map(|name| name.trim().split('@').next().unwrap_or("")))
        .filter(|name| name.strip_prefix(&prefix).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_lowercase())))
        .map(String::from)
        .collect()
}

fn nemesis_effects(history: &str) -> Vec<serde_json::Value> {
    history
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["process"] == "nemesis" && event["type"] == "ok")
        .collect()
}

#[test]
fn network_faults_on_namespace_hosts_cut_connections_and_leave_nothing() {
    if !netns_or_skip("network_faults_on_namespace_hosts_cut_connections_and_leave_nothing") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let store = etcd_support::test_dir("netns-faults");
    let child = faultline(&store, &["--nodes", "3", "--seed", "2", "--time-limit", "12s", "--workload", "kv"])
        .args(["--nemesis", "partition,link-drop,link-slow,kill,pause", "--set", "cluster.hosts={\"netns\":3}"])
        .args(["--set", "nemesis.fault_duration_min=1s", "--set", "nemesis.fault_duration_max=2s"])
        .args(["--set", "nemesis.heal_duration_min=500ms", "--set", "nemesis.heal_duration_max=1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let harness = child.id();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "valid expected: {stderr}");
    let dir = results_dir(&store);
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let header: serde_json::Value = serde_json::from_str(history.lines().next().unwrap()).unwrap();
    for node in ["n1", "n2", "n3"] {
        assert!(header["hosts"][node].as_str().is_some_and(|host| host.starts_with("10.254.")), "{header}");
    }
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["hosts"], header["hosts"], "results name the hosts too");
    let effects = nemesis_effects(&history);
    let aborted: u64 = effects.iter().filter_map(|event| event["value"]["connections_aborted"].as_u64()).sum();
    let families: Vec<&str> = effects.iter().filter_map(|event| event["f"].as_str()).collect();
    assert!(families.iter().any(|f| f.starts_with("partition")), "seed 2 draws a partition: {families:?}");
    assert!(aborted > 0, "a partition aborts the established connections it cuts: {effects:?}");
    for node in 0..3 {
        let log = std::fs::read_to_string(dir.join(format!("nodes/node-{node}.log"))).unwrap();
        assert!(log.contains(&format!("node {node}'s log from host 10.254.")), "the host's log is collected: {log}");
    }
    assert_eq!(leftovers_of(harness), Vec::<String>::new(), "namespaces, bridge and veths are removed");
    assert_eq!(processes_mentioning(&store.display().to_string()), Vec::<u32>::new(), "no node, sshd or ssh is left");
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn a_killed_harness_leaves_no_node_and_the_next_run_removes_its_namespaces() {
    if !netns_or_skip("a_killed_harness_leaves_no_node_and_the_next_run_removes_its_namespaces") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let store = etcd_support::test_dir("netns-kill9");
    let mut child: Child = faultline(&store, &["--nodes", "3", "--time-limit", "60s", "--nemesis", "none"])
        .args(["--set", "cluster.hosts={\"netns\":3}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let harness = child.id();
    let marker = store.display().to_string();
    wait_for("three nodes running on their hosts", Duration::from_secs(60), || {
        let history = store.join("t").read_dir().ok().and_then(|mut runs| runs.next()).and_then(|run| run.ok());
        history.is_some_and(|run| std::fs::read_to_string(run.path().join("history.jsonl")).is_ok_and(|h| h.lines().count() > 50))
    });
    child.kill().unwrap(); // SIGKILL: no cleanup of its own
    child.wait().unwrap();
    // Each node's watcher sees the SSH channel end and kills its group.
    wait_for("every node, sshd and ssh gone", Duration::from_secs(10), || processes_mentioning(&marker).is_empty());
    assert!(!leftovers_of(harness).is_empty(), "the namespaces stay until another run starts");
    let next = run(&etcd_support::test_dir("netns-next"), &["--nodes", "1", "--time-limit", "2s", "--nemesis", "none", "--set", "cluster.hosts={\"netns\":1}"]);
    assert_eq!(next.status.code(), Some(0), "{}", String::from_utf8_lossy(&next.stderr));
    assert_eq!(leftovers_of(harness), Vec::<String>::new(), "the next run removed the dead harness's namespaces");
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn etcd_on_namespace_hosts_stays_valid_under_partitions_and_kills() {
    let Some(_) = etcd_support::etcd_or_skip("etcd_on_namespace_hosts_stays_valid_under_partitions_and_kills") else { return };
    if !netns_or_skip("etcd_on_namespace_hosts_stays_valid_under_partitions_and_kills") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let store = etcd_support::test_dir("netns-etcd");
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../ci/etcd.yaml");
    let mut child = any_system(&store, &["--spec", spec, "--set", "cluster.hosts={\"netns\":3}"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_child(&mut child, "etcd on netns", Duration::from_secs(180));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "etcd is linearizable on hosts too: {stderr}");
    let history = std::fs::read_to_string(results_dir(&store).join("history.jsonl")).unwrap();
    let families: Vec<String> = nemesis_effects(&history).iter().filter_map(|e| e["f"].as_str().map(String::from)).collect();
    assert!(families.iter().any(|f| f == "partition-leader"), "{families:?}");
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn link_delay_is_refused_at_start_on_hosts_without_netem() {
    if !netns_or_skip("link_delay_is_refused_at_start_on_hosts_without_netem") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let store = etcd_support::test_dir("netns-delay");
    let output = run(&store, &["--nodes", "2", "--time-limit", "4s", "--nemesis", "link-delay", "--set", "cluster.hosts={\"netns\":2}"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // This machine's kernel may or may not have sch_netem; either way the
    // run must not be valid without the delay it was asked for.
    match stderr.contains("no sch_netem") {
        true => {
            assert_eq!(output.status.code(), Some(3), "a harness error at start: {stderr}");
            let history = std::fs::read_to_string(results_dir(&store).join("history.jsonl")).unwrap_or_default();
            assert!(!history.contains("\"link-delay\""), "no fault was tried: {history}");
        }
        false => {
            assert_eq!(output.status.code(), Some(0), "{stderr}");
            let history = std::fs::read_to_string(results_dir(&store).join("history.jsonl")).unwrap();
            let delayed = nemesis_effects(&history).iter().any(|event| event["f"] == "link-delay");
            assert!(delayed, "netem is here, so the delay was applied: {history}");
        }
    }
    let _ = std::fs::remove_dir_all(&store);
}
