//! The corrupt and disk nemeses end to end on faultline-node: the correct
//! node refuses damaged files and stops on a failing disk, and the runs
//! stay valid; the node that trusts its checksums-failed records
//! (`wal-ignore-crc`) is caught.
//!
//! Needs the faultline-node binary beside the faultline binary; the disk
//! tests need /dev/fuse and root (skipped with a message otherwise, unless
//! `FAULTLINE_REQUIRE_FUSE=1`).
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

mod process_support;

/// A short run: a wedged harness is killed after this.
const RUN_TIMEOUT_S: u64 = 120;

fn fuse_or_skip() -> bool {
    let Err(why) = faultline_lazyfs::available() else { return true };
    if std::env::var("FAULTLINE_REQUIRE_FUSE").as_deref() == Ok("1") {
        panic!("FAULTLINE_REQUIRE_FUSE=1 but {why}");
    }
    eprintln!("SKIP: {why}");
    false
}

struct Run {
    verdict: String,
    reasons: String,
    /// The nemesis completions (`ok`) of the history.
    actions: Vec<serde_json::Value>,
}

fn run(name: &str, workload: &str, nemesis: &str, bugs: &str, seed: u64) -> Run {
    let store = std::env::temp_dir().join(format!("faultline-disk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let node_binary: PathBuf = faultline::systems::faultline_node::find_node_binary()
        .expect("faultline-node must be built before these tests: cargo build --release -p faultline-node");
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test", "--quiet", "--nodes", "3", "--time-limit", "8s", "--rate", "100", "--concurrency", "4"])
        .args(["--workload", workload, "--nemesis", nemesis, "--seed", &seed.to_string()])
        .args(["--name", "t", "--store", store.to_str().unwrap()])
        .args(["--node-binary", node_binary.to_str().unwrap()])
        .args(["--set", &format!("cluster.bugs=[{bugs}]"), "--set", "schedule.recovery=500ms"])
        .args(["--set", "nemesis.fault_duration_min=500ms", "--set", "nemesis.fault_duration_max=1s"])
        .args(["--set", "nemesis.heal_duration_min=300ms", "--set", "nemesis.heal_duration_max=600ms"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    process_support::wait_child(&mut child, name, Duration::from_secs(RUN_TIMEOUT_S));
    let run_dir = store.join("t/latest");
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap()).unwrap();
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    let actions = history
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|event| event["process"] == "nemesis" && event["type"] == "ok")
        .collect();
    std::fs::remove_dir_all(&store).unwrap();
    Run { verdict: results["verdict"].as_str().unwrap().to_string(), reasons: results["reasons"].to_string(), actions }
}

fn values_of<'a>(run: &'a Run, fault: &str) -> Vec<&'a serde_json::Value> {
    run.actions.iter().filter(|event| event["f"] == fault).map(|event| &event["value"]).collect()
}

#[test]
fn the_correct_node_refuses_damaged_files_and_stays_valid() {
    let run = run("correct-corrupt", "append", "corrupt-bitflip", "", 3);
    assert_eq!(run.verdict, "valid", "{}", run.reasons);
    let faults = values_of(&run, "corrupt-bitflip");
    assert!(!faults.is_empty(), "no corrupt fault was injected");
    let refusals: Vec<_> = faults.iter().filter(|value| value["outcome"] == "refused to start; original bytes restored").collect();
    assert!(!refusals.is_empty(), "the node never refused its damaged files: {faults:?}");
    for refusal in refusals {
        let line = refusal["refusal"].as_str().unwrap();
        assert!(line.contains("refusing to start") || line.contains("corrupt"), "{line}");
        assert!(refusal["file"].as_str().is_some() && refusal["damage"]["offsets"].is_array(), "{refusal}");
    }
}

#[test]
fn a_node_that_ignores_its_checksums_is_caught() {
    let run = run("wal-ignore-crc", "append", "corrupt-bitflip,corrupt-zero", "wal-ignore-crc", 1);
    assert_eq!(run.verdict, "invalid", "wal-ignore-crc was not caught: {:?}", run.actions);
    let started = run.actions.iter().filter(|event| event["value"]["outcome"] == "started on the damaged file").count();
    assert!(started > 0, "the buggy node never started on a damaged file");
}

#[test]
fn the_correct_node_stops_on_a_failing_disk_and_stays_valid() {
    if !fuse_or_skip() {
        return;
    }
    let run = run("correct-disk", "register", "disk-fsync-eio,disk-full,disk-torn-write", "", 2);
    assert_eq!(run.verdict, "valid", "{}", run.reasons);
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
