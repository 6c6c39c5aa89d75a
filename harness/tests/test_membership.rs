//! Real runs of the membership nemesis on the embedded node: nodes join
//! (with empty disks, through `member_add` and `member_promote`) and leave
//! while clients write, and the run stays valid. Also the scenario of the
//! docs: a new follower joins while writes continue, installs a snapshot
//! the leader took without pausing writes, catches up from the snapshot's
//! position, and then counts toward the quorum.
//!
//! Needs the faultline-node binary beside the faultline binary (build it
//! first: `cargo build --release -p faultline-node`).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod process_support;

/// A short run: a wedged harness is killed after this.
const RUN_TIMEOUT_S: u64 = 150;

fn node_binary() -> PathBuf {
    faultline::systems::faultline_node::find_node_binary()
        .expect("faultline-node must be built before these tests: cargo build --release -p faultline-node")
}

/// One run under `nemesis`; its exit code and results folder.
fn run(nemesis: &str, seed: u64, extra: &[&str]) -> (i32, PathBuf) {
    let store = std::env::temp_dir().join(format!("faultline-membership-{nemesis}-{seed}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test", "--quiet", "--nodes", "3", "--time-limit", "12s", "--rate", "150", "--concurrency", "4"])
        .args(["--workload", "kv", "--nemesis", nemesis, "--seed", &seed.to_string()])
        .args(["--name", "t", "--store", store.to_str().unwrap()])
        .args(["--node-binary", node_binary().to_str().unwrap()])
        .args(["--set", "nemesis.fault_duration_min=1s", "--set", "nemesis.fault_duration_max=2s"])
        .args(["--set", "nemesis.heal_duration_min=500ms", "--set", "nemesis.heal_duration_max=1s"])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = process_support::wait_child(&mut child, nemesis, Duration::from_secs(RUN_TIMEOUT_S));
    (status.code().unwrap_or(-1), store.join("t/latest"))
}

fn read_json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// The completed membership changes of a run: (fault, effect).
fn changes(run_dir: &Path) -> Vec<(String, serde_json::Value)> {
    read_json_lines(&run_dir.join("history.jsonl"))
        .into_iter()
        .filter(|event| event["process"] == "nemesis" && event["type"] == "ok")
        .filter(|event| event["f"].as_str().is_some_and(|f| f.starts_with("membership-") || f == "heal-membership"))
        .map(|event| (event["f"].as_str().unwrap().to_string(), event["value"].clone()))
        .collect()
}

#[test]
fn nodes_join_and_leave_while_clients_write() {
    let (code, run_dir) = run("membership", 3, &[]);
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["verdict"], "valid", "{:#}", results["reasons"]);
    assert_eq!(code, 0);
    let changes = changes(&run_dir);
    let added = changes.iter().filter(|(_, effect)| effect.get("added").is_some() || effect.get("replaced").is_some());
    assert!(added.count() >= 1, "no node joined: {changes:?}");
    let left = changes.iter().filter(|(_, effect)| {
        effect.get("removed").is_some()
            || effect.get("replaced").is_some()
            || effect["membership"].as_array().is_some_and(|done| done.iter().any(|step| step.get("removed").is_some()))
    });
    assert!(left.count() >= 1, "no node left: {changes:?}");
    for (fault, effect) in &changes {
        let members = effect["members"].as_array().map_or(0, Vec::len);
        assert!(members == 0 || (2..=4).contains(&members), "{fault}: {members} members in a 3-node cluster with one spare: {effect}");
    }
    // The spare slot ran, and its log is in the results.
    assert!(run_dir.join("nodes/node-3.log").is_file() || changes.iter().any(|(_, e)| e.get("replaced").is_some()));
}

#[test]
fn a_new_follower_installs_a_snapshot_then_counts_toward_the_quorum() {
    // Snapshots every 40 entries, so any node that joins after the first
    // second starts from one.
    let (code, run_dir) = run("membership-add", 5, &["--set", "cluster.snapshot_entries=40"]);
    assert_eq!(code, 0, "see {}", run_dir.display());
    let added: Vec<String> =
        changes(&run_dir).iter().filter_map(|(_, effect)| effect["added"].as_str().map(String::from)).collect();
    assert!(!added.is_empty(), "no node joined");
    let mut shown = Vec::new();
    for name in &added {
        let node: usize = name.trim_start_matches('n').parse::<usize>().unwrap() - 1;
        let log = std::fs::read_to_string(run_dir.join(format!("nodes/node-{node}.log"))).unwrap();
        // The last start of the node: the one that joined empty.
        let joined = &log[log.rfind("recovered from disk snapshot_index=0 entries=0").unwrap_or(0)..];
        let Some(installed) = joined.find("installed snapshot from leader") else { continue };
        let voter = format!("{},", node + 1);
        let counted = joined[installed..].lines().any(|line| {
            line.contains("membership change committed")
                && line.split("voters [").nth(1).and_then(|rest| rest.split(']').next()).is_some_and(|voters| {
                    format!("{voters},").split(',').any(|id| format!("{id},") == voter)
                })
        });
        if counted {
            shown.push(name.clone());
        }
    }
    assert!(!shown.is_empty(), "no joined node ({added:?}) installed a snapshot and then was a voter; see {}", run_dir.display());
}
