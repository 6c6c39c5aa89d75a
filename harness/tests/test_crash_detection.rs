//! A crash can never hide behind a valid history: a node that dies without
//! the nemesis killing it, or an error line in a node log, makes the run
//! invalid (exit 1) with a reason, even though every operation checks out.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn node_binary() -> PathBuf {
    faultline::systems::faultline_node::find_node_binary()
        .expect("faultline-node must be built before these tests: cargo build --release -p faultline-node")
}

fn start(store: &Path, time_limit: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test", "--quiet", "--nodes", "3", "--time-limit", time_limit, "--rate", "50", "--concurrency", "3"])
        .args(["--workload", "register", "--nemesis", "none", "--seed", "3", "--name", "t"])
        .args(["--store", store.to_str().unwrap(), "--node-binary", node_binary().to_str().unwrap()])
        .args(["--set", "schedule.recovery=200ms"])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(90);
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

fn results(store: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(store.join("t/latest/results.json")).unwrap()).unwrap()
}

fn check_verdict(results: &serde_json::Value, name: &str) -> String {
    let check = results["checks"]["checkers"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap();
    check["verdict"].as_str().unwrap().to_string()
}

/// Pids of node processes whose argv mentions `marker`.
fn node_pids(marker: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains(marker) && cmdline.contains("faultline-node") {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn a_node_dying_unasked_fails_the_run() {
    let store = std::env::temp_dir().join(format!("faultline-crash-exit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let mut child = start(&store, "6s", &[]);
    let marker = store.join("t").display().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let victim = loop {
        let pids = node_pids(&marker);
        if pids.len() >= 3 {
            break pids[0];
        }
        assert!(Instant::now() < deadline, "nodes did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(2));
    // A crash nobody asked for: the nemesis is `none`.
    kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    let code = wait_exit(&mut child);
    let results = results(&store);
    assert_eq!(code, 1, "{:#}", results["reasons"]);
    assert_eq!(results["verdict"], "invalid");
    assert_eq!(check_verdict(&results, "node-exits"), "invalid");
    assert_eq!(check_verdict(&results, "linearizable-register"), "valid", "the history itself is fine");
    let reasons = results["reasons"].to_string();
    assert!(reasons.contains("exited unexpectedly"), "{reasons}");
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn an_error_line_in_a_node_log_fails_the_run() {
    let store = std::env::temp_dir().join(format!("faultline-crash-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    // Every faultline-node logs "node started": treat it as an error line.
    let mut child = start(&store, "2s", &["--set", "checkers.log_error_patterns=[node started]"]);
    let code = wait_exit(&mut child);
    let results = results(&store);
    assert_eq!(code, 1, "{:#}", results["reasons"]);
    assert_eq!(check_verdict(&results, "node-logs"), "invalid");
    assert_eq!(check_verdict(&results, "node-exits"), "valid");
    let reasons = results["reasons"].to_string();
    assert!(reasons.contains("error line(s) in node logs") && reasons.contains("node started"), "{reasons}");
    std::fs::remove_dir_all(&store).unwrap();
}
