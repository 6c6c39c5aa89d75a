//! A run that ends in a harness error or an interruption must not read as
//! a pass: its JUnit file carries one errored `harness` test case with the
//! message (never "0 tests"), and when the results folder already holds a
//! history, report.html is written too, showing the error instead of
//! verdicts.
mod report_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use report_support::*;

/// How long the interrupted run may take to record its first operations.
const HISTORY_WAIT_MAX: Duration = Duration::from_secs(30);
/// How long it may take to shut down and report after SIGINT.
const EXIT_WAIT_MAX: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

fn assert_harness_case(xml: &str, needle: &str) {
    assert!(xml.contains("<testsuites name=\"faultline\" tests=\"1\" failures=\"0\" errors=\"1\">"), "{xml}");
    assert!(xml.contains("name=\"harness\">"), "{xml}");
    assert!(xml.contains("<error type=\"harness\" message=\"") && xml.contains(needle), "{xml}");
}

#[test]
fn junit_of_a_cluster_that_cannot_start_is_one_errored_case() {
    let dir = kept_dir("junit-cluster-error");
    let junit = dir.join("junit.xml");
    let output = faultline()
        .args(["test", "--quiet", "--name", "broken", "--seed", "5", "--time-limit", "2s"])
        .args(["--node-binary", "/bin/false", "--store"])
        .arg(dir.join("store"))
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", String::from_utf8_lossy(&output.stderr));
    let xml = std::fs::read_to_string(&junit).expect("JUnit is written for a harness error");
    assert_harness_case(&xml, "exited during startup");
    assert!(xml.contains("<property name=\"seed\" value=\"5\"/>"), "{xml}");
    // No history was recorded, so there is nothing for a page to show.
    assert!(!dir.join("store/broken/latest/report.html").exists());
}

#[test]
fn junit_and_report_of_an_interrupted_run_say_it_did_not_pass() {
    let dir = kept_dir("junit-interrupted");
    let junit = dir.join("junit.xml");
    let store = dir.join("store");
    let node = faultline::systems::faultline_node::find_node_binary().expect("faultline-node is built");
    let mut child = faultline()
        .args(["test", "--quiet", "--name", "cut", "--seed", "7", "--nodes", "3", "--time-limit", "60s"])
        .args(["--rate", "50", "--nemesis", "none", "--node-binary"])
        .arg(node)
        .arg("--store")
        .arg(&store)
        .arg("--junit")
        .arg(&junit)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let history = store.join("cut/latest/history.jsonl");
    let started = Instant::now();
    while std::fs::metadata(&history).map_or(0, |m| m.len()) == 0 {
        if started.elapsed() > HISTORY_WAIT_MAX || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no history at {} within {HISTORY_WAIT_MAX:?}", history.display());
        }
        std::thread::sleep(POLL);
    }
    let sent = Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap();
    assert!(sent.success());
    let status = wait_bounded(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(3), "{stderr}");
    let xml = std::fs::read_to_string(&junit).expect("JUnit is written for an interrupted run");
    assert_harness_case(&xml, "interrupted by SIGINT");
    let html = std::fs::read_to_string(store.join("cut/latest/report.html")).expect("report.html beside the history");
    assert!(html.contains("class=\"verdict harness-error\">HARNESS ERROR<"), "badge missing");
    assert!(html.contains("harness error: interrupted by SIGINT"), "message missing");
}

fn wait_bounded(child: &mut std::process::Child) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > EXIT_WAIT_MAX {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the interrupted run did not exit within {EXIT_WAIT_MAX:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// A folder as the runner leaves it after a nemesis error: history,
/// seed and a summary with the error, no results.json.
fn dead_run(dir: &Path) {
    let lines = [
        r#"{"process":0,"type":"invoke","f":"add","value":1,"time_ns":1000000}"#,
        r#"{"process":0,"type":"ok","f":"add","value":1,"time_ns":2000000}"#,
    ];
    std::fs::write(dir.join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("seed"), "13\n").unwrap();
    std::fs::write(
        dir.join("summary.txt"),
        "faultline test dead: ERROR\nseed        13\nerror       nemesis: cannot pause node 1: no such process\n",
    )
    .unwrap();
}

#[test]
fn junit_and_report_of_a_stored_run_that_died_carry_its_error() {
    let dir = kept_dir("junit-dead-run");
    dead_run(&dir);
    let junit = dir.join("junit.xml");
    let output = faultline().arg("report").arg(&dir).arg("--junit").arg(&junit).arg("--quiet").output().unwrap();
    assert_eq!(output.status.code(), Some(3), "no verdict is a harness error");
    assert_harness_case(&std::fs::read_to_string(&junit).unwrap(), "nemesis: cannot pause node 1");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("harness error: nemesis: cannot pause node 1: no such process"), "message missing");
    assert!(html.contains("<code id=\"seed\">13</code>"), "seed missing");
}
