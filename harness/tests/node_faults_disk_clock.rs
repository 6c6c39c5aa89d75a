//! The corrupt, disk and clock nemeses end to end on faultline-node: the
//! correct node refuses damaged files, stops on a failing disk and stays
//! valid while its clocks move; the nodes that trust records whose
//! checksums fail (`wal-ignore-crc`) or read a lease from the wall clock
//! (`lease-wallclock`) are caught; a system that cannot report its clock
//! has clock faults refused.
//!
//! Needs the faultline-node binary beside the faultline binary and
//! libfaketime (Debian `libfaketime`); the disk test needs /dev/fuse and
//! root (skipped with a message otherwise, unless `FAULTLINE_REQUIRE_FUSE=1`).
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

mod process_support;

use process_support::{faketime_or_skip, fuse_or_skip};

/// A short run: a wedged harness is killed after this.
const RUN_TIMEOUT_S: u64 = 120;

struct Run {
    code: i32,
    verdict: String,
    reasons: String,
    /// The last lines of every node's log, for a failure's message.
    logs: String,
    /// The nemesis completions (`ok`) of the history.
    actions: Vec<serde_json::Value>,
}

/// One cluster at a time: the runs of this file share CI's two cores with
/// nothing else of their own, so their timing stays what the faults expect.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A short run of a 3-node cluster with `args` added; the run's folder is removed.
fn run(name: &str, args: &[&str], seed: u64) -> Run {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let store = std::env::temp_dir().join(format!("faultline-nodefaults-{name}-{seed}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let node_binary: PathBuf = faultline::systems::faultline_node::find_node_binary()
        .expect("faultline-node must be built before these tests: cargo build --release -p faultline-node");
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test", "--quiet", "--nodes", "3", "--rate", "100", "--concurrency", "4"])
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
    let logs = node_log_tails(&run_dir.join("nodes"));
    std::fs::remove_dir_all(&store).unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        verdict: results["verdict"].as_str().unwrap().to_string(),
        reasons: results["reasons"].to_string(),
        logs,
        actions,
    }
}

fn node_log_tails(nodes: &std::path::Path) -> String {
    let mut tails = String::new();
    for node in 0..3 {
        let log = std::fs::read_to_string(nodes.join(format!("node-{node}.log"))).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(4).collect();
        tails += &format!("node-{node}: {}\n", lines.into_iter().rev().collect::<Vec<_>>().join(" | "));
    }
    tails
}

/// The short faults of the corrupt and disk runs.
const SHORT_FAULTS: [&str; 8] = [
    "--set", "nemesis.fault_duration_min=500ms", "--set", "nemesis.fault_duration_max=1s",
    "--set", "nemesis.heal_duration_min=300ms", "--set", "nemesis.heal_duration_max=600ms",
];

fn with_short_faults<'a>(args: &[&'a str]) -> Vec<&'a str> {
    args.iter().copied().chain(SHORT_FAULTS).chain(["--time-limit", "8s"]).collect()
}

fn values_of<'a>(run: &'a Run, fault: &str) -> Vec<&'a serde_json::Value> {
    run.actions.iter().filter(|event| event["f"] == fault).map(|event| &event["value"]).collect()
}

#[test]
fn the_correct_node_refuses_damaged_files_and_stays_valid() {
    let run = run("correct-corrupt", &with_short_faults(&["--workload", "append", "--nemesis", "corrupt-bitflip"]), 3);
    assert_eq!(run.verdict, "valid", "{}\n{}", run.reasons, run.logs);
    let faults = values_of(&run, "corrupt-bitflip");
    assert!(!faults.is_empty(), "no corrupt fault was injected");
    let refusals: Vec<_> = faults.iter().filter(|value| value["outcome"] == "refused to start; original bytes restored").collect();
    assert!(!refusals.is_empty(), "the node never refused its damaged files: {faults:?}");
    for refusal in refusals {
        let line = refusal["refusal"].as_str().unwrap();
        assert!(line.contains("refusing to start") || line.contains("corrupt"), "{line}");
        // One flipped byte by default (`nemesis.corrupt_bytes: 1`): one offset.
        assert!(refusal["file"].as_str().is_some() && refusal["damage"]["offset"].is_u64(), "{refusal}");
    }
}

#[test]
fn a_node_that_ignores_its_checksums_is_caught() {
    let args = ["--workload", "append", "--nemesis", "corrupt-bitflip,corrupt-zero", "--set", "cluster.bugs=[wal-ignore-crc]"];
    let run = run("wal-ignore-crc", &with_short_faults(&args), 1);
    assert_eq!(run.verdict, "invalid", "wal-ignore-crc was not caught: {:?}", run.actions);
    let started = run.actions.iter().filter(|event| event["value"]["outcome"] == "started on the damaged file").count();
    assert!(started > 0, "the buggy node never started on a damaged file");
}

#[test]
fn the_correct_node_stops_on_a_failing_disk_and_stays_valid() {
    if !fuse_or_skip() {
        return;
    }
    let args = ["--workload", "register", "--nemesis", "disk-fsync-eio,disk-write-eio,disk-full,disk-torn-write"];
    let run = run("correct-disk", &with_short_faults(&args), 2);
    assert_eq!(run.verdict, "valid", "{}\n{}", run.reasons, run.logs);
    let stopped: Vec<String> = run
        .actions
        .iter()
        .filter(|event| event["f"] == "heal-disk")
        .flat_map(|event| event["value"]["stopped-on-disk-error"].as_array().cloned().unwrap_or_default())
        .map(|stop| stop["log"].as_str().unwrap().to_string())
        .collect();
    assert!(!stopped.is_empty(), "no node stopped on a disk error: {:?}", run.actions);
    for line in &stopped {
        assert!(line.contains("nothing unsynced was acknowledged"), "{line}");
    }
    let torn = values_of(&run, "disk-torn-write");
    assert!(torn.iter().all(|value| value["torn-page-bytes"].as_u64().is_some_and(|bytes| (1..4096).contains(&bytes))), "{torn:?}");
}

#[test]
fn the_correct_node_stays_valid_while_its_clocks_move() {
    if !faketime_or_skip() {
        return;
    }
    let args = ["--workload", "register", "--nemesis", "clock", "--time-limit", "8s", "--set", "nemesis.fault_duration_max=1s"];
    let run = run("correct-clock", &args, 5);
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

/// With the monotonic clock faked too, the start-up probe's offset must
/// stay small: putting a +1 h probe back moved every node's monotonic clock
/// back an hour, and the correct node never elected a leader (0 of 983
/// operations ok, liveness invalid).
#[test]
fn the_correct_node_stays_available_with_its_monotonic_clock_faked_too() {
    if !faketime_or_skip() {
        return;
    }
    let args = [
        "--nemesis", "clock-skew", "--time-limit", "8s",
        "--set", "nemesis.clock_fake_monotonic=true", "--set", "nemesis.clock_offset_max=100ms",
    ];
    let run = run("correct-clock-monotonic", &args, 1);
    assert_eq!((run.verdict.as_str(), run.code), ("valid", 0), "{}\n{}", run.reasons, run.logs);
    assert!(run.actions.iter().any(|a| a["f"] == "clock-skew"), "no clock fault was injected");
}

/// The lease bug's window, staged by `clock-isolate-leader`: the leader
/// cut off, its clock set back, and the others electing and writing while
/// it still answers reads.
#[test]
fn a_lease_read_from_the_wall_clock_is_caught() {
    if !faketime_or_skip() {
        return;
    }
    let args = [
        "--workload", "register", "--nemesis", "clock-isolate-leader",
        "--set", "cluster.bugs=[lease-wallclock]", "--time-limit", "12s",
    ];
    let mut runs = Vec::new();
    for seed in 1..=3 {
        let run = run("lease", &args, seed);
        let caught = run.verdict == "invalid";
        runs.push(run);
        if caught {
            break;
        }
    }
    let last = runs.last().expect("one run at least");
    assert_eq!((last.verdict.as_str(), last.code), ("invalid", 1), "lease-wallclock was not caught in 3 runs: {}", last.reasons);
    let staged: Vec<&serde_json::Value> = runs.iter().flat_map(|run| &run.actions).filter(|action| action["f"] == "clock-isolate-leader").collect();
    assert!(staged.iter().any(|action| action["value"]["others_elected"].is_string()), "no window with a new leader: {staged:?}");
    assert!(staged.iter().all(|action| action["value"]["isolated"].is_string()), "{staged:?}");
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
