//! The clock nemesis end to end on faultline-node: libfaketime reaches the
//! nodes (checked by the harness itself), the correct node stays valid
//! while clocks are skewed, bumped, strobed and slowed, and the node that
//! reads its lease from the wall clock (`lease-wallclock`) is caught. A
//! system that cannot report its clock has clock faults refused.
//!
//! Needs libfaketime (Debian `libfaketime`) and the faultline-node binary.
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

mod process_support;

/// A short run: a wedged harness is killed after this.
const RUN_TIMEOUT_S: u64 = 120;

struct Run {
    code: i32,
    verdict: String,
    actions: Vec<serde_json::Value>,
}

fn run(name: &str, args: &[&str], seed: u64) -> Run {
    let store = std::env::temp_dir().join(format!("faultline-clock-{name}-{seed}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let node_binary: PathBuf = faultline::systems::faultline_node::find_node_binary()
        .expect("faultline-node must be built before these tests: cargo build --release -p faultline-node");
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test", "--quiet", "--nodes", "3", "--rate", "100", "--concurrency", "4", "--workload", "register"])
        .args(["--seed", &seed.to_string(), "--name", "t", "--store", store.to_str().unwrap()])
        .args(["--node-binary", node_binary.to_str().unwrap(), "--set", "schedule.recovery=500ms"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = process_support::wait_child(&mut child, name, Duration::from_secs(RUN_TIMEOUT_S));
    let run_dir = store.join("t/latest");
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap()).unwrap();
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    let actions = history
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|event| event["process"] == "nemesis" && event["type"] == "ok")
        .collect();
    std::fs::remove_dir_all(&store).unwrap();
    Run { code: status.code().unwrap_or(-1), verdict: results["verdict"].as_str().unwrap().to_string(), actions }
}

#[test]
fn the_correct_node_stays_valid_while_its_clocks_move() {
    let run = run("correct", &["--nemesis", "clock", "--time-limit", "8s", "--set", "nemesis.fault_duration_max=1s"], 5);
    assert_eq!((run.verdict.as_str(), run.code), ("valid", 0), "{:?}", run.actions);
    let moved: Vec<&serde_json::Value> = run.actions.iter().filter(|a| a["f"].as_str().is_some_and(|f| f.starts_with("clock-"))).collect();
    assert!(!moved.is_empty(), "no clock fault was injected");
    for action in &moved {
        let value = &action["value"];
        let offsets_bounded = value["clock-offsets-ms"].as_object().is_none_or(|o| o.values().all(|ms| ms.as_i64().unwrap().abs() <= 10_000));
        assert!(offsets_bounded, "{value}");
    }
    let resets = run.actions.iter().filter(|a| a["value"]["clocks-reset"].is_array()).count();
    assert!(resets > 0, "no heal put the clocks back");
}

#[test]
fn a_lease_read_from_the_wall_clock_is_caught() {
    let args = [
        "--nemesis", "partition-leader,clock-bump-leader", "--set", "nemesis.concurrent=true",
        "--set", "cluster.bugs=[lease-wallclock]", "--time-limit", "15s",
    ];
    let caught = (1..=3).map(|seed| run("lease", &args, seed)).find(|run| run.verdict == "invalid");
    assert!(caught.is_some_and(|run| run.code == 1), "lease-wallclock was not caught in 3 runs");
}

#[test]
fn a_system_without_a_clock_probe_has_clock_faults_refused() {
    let store = std::env::temp_dir().join(format!("faultline-clock-refused-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test", "--spec", "ci/generic-redis.yaml", "--nemesis", "clock-skew", "--store"])
        .arg(&store)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot report its nodes' clocks"), "{stderr}");
    let _ = std::fs::remove_dir_all(&store);
}
