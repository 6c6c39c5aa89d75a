//! Faults and heals on namespace hosts, seen from inside each host: a
//! partition puts DROP rules in faultline's chain and aborts the connections
//! it cuts, a slow link is a `tc` class on the sender, a pause stops the
//! node's group there, and each heal leaves the host as it found it. Needs
//! root and openssh-server (SKIP otherwise; a failure where
//! FAULTLINE_REQUIRE_NETNS=1).
mod netns_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline::cluster::{Cluster, ClusterConfig, HostsConfig, NodeState, VolumeConfig};
use faultline::proxy::{Endpoint, LinkFault};
use faultline::systems::faultline_node::{find_node_binary, FaultlineNodeDb};
use netns_support::netns_or_skip;

/// The namespace of host `host` of the cluster this process started with
/// three hosts (`f<pid><letter>-<host>`; the power test's has one).
fn namespace_of(host: usize) -> String {
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let mine = format!("f{}", std::process::id());
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(&mine) && name.ends_with(&format!("-{host}")))
        .find(|name| {
            let lab = name.trim_end_matches(char::is_numeric).trim_end_matches('-');
            String::from_utf8_lossy(&list.stdout).contains(&format!("{lab}-2"))
        })
        .expect("the namespace of a three-host lab")
        .to_string()
}

/// A command's output inside host `host`'s namespace (this process made it).
fn on_host(host: usize, command: &[&str]) -> String {
    let namespace = namespace_of(host);
    let output = Command::new("ip").args(["netns", "exec", &namespace]).args(command).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The state letters (`ps` STAT) of the faultline-node processes in host
/// `host`'s namespace (`ps` alone would list every host's: pids are shared).
fn node_states(host: usize) -> Vec<String> {
    let namespace = namespace_of(host);
    let pids = Command::new("ip").args(["netns", "pids", &namespace]).output().unwrap();
    let pids: Vec<String> = String::from_utf8_lossy(&pids.stdout).split_whitespace().map(String::from).collect();
    if pids.is_empty() {
        return Vec::new();
    }
    let ps = Command::new("ps").args(["-o", "stat=,comm=", "-p", &pids.join(",")]).output().unwrap();
    String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|line| line.ends_with("faultline-node"))
        .filter_map(|line| line.split_whitespace().next().map(String::from))
        .collect()
}

fn drop_rules(host: usize) -> Vec<String> {
    on_host(host, &["iptables", "-S"]).lines().filter(|line| line.starts_with("-A FAULTLINE")).map(String::from).collect()
}

/// Established TCP connections on the host's peer port (7101).
fn peer_connections(host: usize) -> usize {
    on_host(host, &["ss", "-H", "-t", "state", "established", "( sport = :7101 or dport = :7101 )"]).lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_change_the_hosts_and_heals_undo_them() {
    if !netns_or_skip("faults_change_the_hosts_and_heals_undo_them") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("faultline-hosts-faults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = ClusterConfig::new(3, dir.clone(), 21);
    config.hosts = Some(HostsConfig::Netns(3));
    let binary = find_node_binary().expect("cargo build --release -p faultline-node first");
    let cluster = Cluster::start(Arc::new(FaultlineNodeDb::new(binary)), config).await.unwrap();
    let hosts = cluster.host_addresses();
    assert_eq!(hosts.len(), 3);
    assert!(cluster.client_addr(1).ip() == hosts[1], "clients dial the host itself");

    // Peers connect once a leader replicates.
    let deadline = Instant::now() + Duration::from_secs(15);
    while (0..3).map(peer_connections).sum::<usize>() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(peer_connections(0) > 0, "node 0 talks to its peers");

    // Node 0 loses everything from 1 and 2, and they from it.
    let grudge: BTreeMap<usize, BTreeSet<usize>> = [(0, [1, 2].into()), (1, [0].into()), (2, [0].into())].into();
    let aborted = cluster.partition("test", &grudge).await.unwrap();
    assert!(aborted.is_some_and(|n| n > 0), "the cut aborts established connections: {aborted:?}");
    let rules = drop_rules(0);
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(rules.iter().any(|rule| rule.contains(&format!("-s {}/32", hosts[1])) && rule.ends_with("-j DROP")), "{rules:?}");
    assert_eq!(drop_rules(1).len(), 1);
    assert_eq!(peer_connections(0), 0, "no connection of node 0 survives the cut");
    assert!(cluster.is_cut_off(0).await && cluster.is_cut_off(1).await, "both sides of the cut know it");

    // A slow link from node 1 to node 2 stays while the partition is healed.
    let slow = LinkFault { bandwidth_bytes_per_s: Some(5_000), ..LinkFault::default() };
    cluster.set_link_faults(&[(Endpoint::Node(1), Endpoint::Node(2))], slow).await.unwrap();
    cluster.partition("test", &BTreeMap::new()).await.unwrap();
    assert!(drop_rules(0).is_empty(), "the partition's heal removes its rules");
    assert!(!cluster.is_cut_off(0).await, "node 0's links are whole again");
    assert!(cluster.is_cut_off(2).await, "node 2 is at one end of the slow link");
    let classes = on_host(1, &["tc", "class", "show", "dev", "eth0"]);
    assert!(classes.contains("class htb fa1:1") && classes.contains("rate 40Kbit"), "{classes}");
    let filters = on_host(1, &["tc", "filter", "show", "dev", "eth0"]);
    assert!(filters.contains("flowid fa1:1"), "{filters}");
    cluster.clear_link_faults().await.unwrap();
    assert!(!on_host(1, &["tc", "qdisc", "show", "dev", "eth0"]).contains("fa1:"), "the link's heal removes the qdisc");

    // A pause stops the node's group on its host.
    cluster.pause(2).unwrap();
    let states = node_states(2);
    assert!(states.len() == 1 && states[0].starts_with('T'), "stopped: {states:?}");
    assert!(node_states(1).iter().all(|state| !state.starts_with('T')), "only host 2's node");
    cluster.resume(2).unwrap();
    let states = node_states(2);
    assert!(states.len() == 1 && !states[0].starts_with('T'), "running again: {states:?}");

    // A kill ends the node there; its exit is seen as a kill.
    cluster.kill(2).await.unwrap();
    assert_eq!(cluster.node_state(2), NodeState::Killed);
    assert!(node_states(2).is_empty(), "no node left on host 2");
    cluster.restart(2).await.unwrap();
    assert_eq!(cluster.node_state(2), NodeState::Running);

    cluster.shutdown().await;
    let namespaces = String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
    assert!(!namespaces.lines().any(|line| line.starts_with(&format!("f{}", std::process::id())) && line.contains("-2")), "{namespaces}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Run `script` in the mount namespace of the process whose pid is in
/// `pid_file` (the host's sshd made it; `ip netns exec` would make another).
fn in_mounts_of(pid_file: &std::path::Path, script: &str) -> std::process::Output {
    let pid = std::fs::read_to_string(pid_file).unwrap();
    Command::new("nsenter").args(["-t", pid.trim(), "-m", "sh", "-c", script]).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_on_a_host_drops_what_was_not_fsynced_there() {
    if !netns_or_skip("a_power_cut_on_a_host_drops_what_was_not_fsynced_there") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("faultline-hosts-power-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = ClusterConfig::new(1, dir.clone(), 22);
    config.hosts = Some(HostsConfig::Netns(1));
    config.volumes = Some(VolumeConfig { program: env!("CARGO_BIN_EXE_faultline").into(), dirty_max_mib: 64 });
    let binary = find_node_binary().expect("cargo build --release -p faultline-node first");
    let cluster = Cluster::start(Arc::new(FaultlineNodeDb::new(binary)), config).await.unwrap();
    assert!(cluster.has_volumes());
    let pids = dir.join("host-0/pids/lazyfs-0.pid");
    let data = cluster.node_env(0).data_dir.display().to_string();
    // Both entries are made durable (`sync DIR` fsyncs the directory);
    // only `synced`'s data is.
    let wrote = in_mounts_of(
        &pids,
        &format!("echo lost > {data}/unsynced && echo kept | dd of={data}/synced conv=fsync status=none && sync {data}"),
    );
    assert!(wrote.status.success(), "{}", String::from_utf8_lossy(&wrote.stderr));
    let before = in_mounts_of(&pids, &format!("cat {data}/unsynced"));
    assert_eq!(String::from_utf8_lossy(&before.stdout), "lost\n", "readers see unsynced data before the cut");
    cluster.power_cut(0).await.unwrap();
    let read = in_mounts_of(&pids, &format!("cat {data}/synced; echo '|'; cat {data}/unsynced"));
    let contents = String::from_utf8_lossy(&read.stdout).into_owned();
    assert_eq!(contents, "kept\n|\n", "after the cut the fsynced data is there and the rest is gone");
    cluster.restart(0).await.unwrap();
    assert_eq!(cluster.node_state(0), NodeState::Running, "the node starts again on what was synced");
    cluster.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
