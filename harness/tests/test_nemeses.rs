//! Real short tests of the embedded node: it must pass under each nemesis
//! family (kill, pause, partition) on the register and kv workloads, and
//! each run must really have injected its faults.
//!
//! Needs the faultline-node binary beside the faultline binary (build it
//! first: `cargo build --release -p faultline-node`).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod process_support;

/// A short run: a wedged harness is killed after this.
const RUN_TIMEOUT_S: u64 = 120;

fn node_binary() -> PathBuf {
    faultline::systems::faultline_node::find_node_binary()
        .expect("faultline-node must be built before these tests: cargo build --release -p faultline-node")
}

fn run_test(workload: &str, nemesis: &str, seed: u64) -> (i32, serde_json::Value, Vec<serde_json::Value>, PathBuf) {
    let store = std::env::temp_dir().join(format!("faultline-nemeses-{workload}-{nemesis}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test", "--quiet", "--nodes", "3", "--time-limit", "6s", "--rate", "80", "--concurrency", "4"])
        .args(["--workload", workload, "--nemesis", nemesis, "--seed", &seed.to_string()])
        .args(["--name", "t", "--store", store.to_str().unwrap()])
        .args(["--node-binary", node_binary().to_str().unwrap()])
        .args(["--set", "schedule.recovery=500ms", "--set", "nemesis.fault_duration_min=1s"])
        .args(["--set", "nemesis.fault_duration_max=2s", "--set", "nemesis.heal_duration_min=500ms"])
        .args(["--set", "nemesis.heal_duration_max=1s"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = process_support::wait_child(&mut child, &format!("{workload}/{nemesis}"), Duration::from_secs(RUN_TIMEOUT_S));
    let run_dir = store.join("t/latest");
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap()).unwrap();
    let history = read_history(&run_dir.join("history.jsonl"));
    (status.code().unwrap_or(-1), results, history, store)
}

fn read_history(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn assert_passes(workload: &str, nemesis: &str, seed: u64) {
    let (code, results, history, store) = run_test(workload, nemesis, seed);
    assert_eq!(results["verdict"], "valid", "{workload}/{nemesis}: {:#}", results["reasons"]);
    assert_eq!(code, 0, "{workload}/{nemesis}: exit code");
    let injected: Vec<&str> = history
        .iter()
        .filter(|e| e["process"] == "nemesis" && e["type"] == "ok")
        .filter_map(|e| e["f"].as_str())
        .filter(|f| f.starts_with(nemesis))
        .collect();
    assert!(!injected.is_empty(), "{workload}/{nemesis}: no {nemesis} fault was injected");
    let heals = history.iter().filter(|e| e["process"] == "nemesis" && e["f"] == "final-heal").count();
    assert_eq!(heals, 2, "{workload}/{nemesis}: the test ends with a final heal (invoke + ok)");
    let ok = history.iter().filter(|e| e["process"] != "nemesis" && e["type"] == "ok").count();
    assert!(ok > 100, "{workload}/{nemesis}: only {ok} ok operations");
    let checks: Vec<&str> = results["checks"]["checkers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(checks.iter().any(|c| c.starts_with("linearizable")), "{checks:?}");
    for name in ["liveness", "node-logs", "node-exits"] {
        assert!(checks.contains(&name), "{name} missing from {checks:?}");
    }
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn register_under_kill() {
    assert_passes("register", "kill", 11);
}

#[test]
fn register_under_pause() {
    assert_passes("register", "pause", 12);
}

#[test]
fn register_under_partition() {
    assert_passes("register", "partition", 13);
}

#[test]
fn kv_under_kill() {
    assert_passes("kv", "kill", 14);
}

#[test]
fn kv_under_pause() {
    assert_passes("kv", "pause", 15);
}

#[test]
fn kv_under_partition() {
    assert_passes("kv", "partition", 16);
}
