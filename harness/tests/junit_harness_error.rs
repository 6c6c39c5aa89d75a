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
    assert!(junit_counts(xml, "testsuites", 1, 0, 1), "{xml}");
    assert!(xml.contains("<testcase name=\"harness\""), "{xml}");
    assert!(xml.contains("<error message=\"") && xml.contains("type=\"harness\"") && xml.contains(needle), "{xml}");
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
    // No operation was recorded, but the page names the error and links
    // the node logs that say why the node exited.
    let html = std::fs::read_to_string(dir.join("store/broken/latest/report.html")).expect("report.html beside the logs");
    assert!(html.contains("class=\"verdict harness-error\">HARNESS ERROR<") && html.contains("exited during startup"), "error missing");
    assert!(html.contains("node-0.log"), "node log missing");
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

/// A folder as the runner leaves it after a nemesis error: the history so
/// far, the seed, and results.json naming the error with no verdict.
fn dead_run(dir: &Path) {
    let lines = [
        r#"{"process":0,"type":"invoke","f":"add","value":1,"time_ns":1000000}"#,
        r#"{"process":0,"type":"ok","f":"add","value":1,"time_ns":2000000}"#,
    ];
    std::fs::write(dir.join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    write_results(dir, "dead", 13, Vec::new());
    let mut results = faultline::results::Results::load(dir).unwrap();
    results.verdict = None;
    results.checks = Default::default();
    results.exit_code = 3;
    results.error = Some("nemesis: cannot pause node 1: no such process".into());
    results.save(&faultline::results::RunDir { path: dir.to_path_buf() }).unwrap();
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

#[test]
fn a_stored_run_killed_before_its_results_reads_as_unfinished() {
    let dir = kept_dir("junit-killed-run");
    dead_run(&dir);
    std::fs::remove_file(dir.join("results.json")).unwrap();
    std::fs::write(dir.join("spec.yaml"), "name: killed\nseed: 13\n").unwrap();
    let junit = dir.join("junit.xml");
    let output = faultline().arg("report").arg(&dir).arg("--junit").arg(&junit).arg("--quiet").output().unwrap();
    assert_eq!(output.status.code(), Some(3), "no verdict is a harness error");
    assert_harness_case(&std::fs::read_to_string(&junit).unwrap(), "the run did not finish (results.json is missing)");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("faultline test killed") && html.contains("all 1 operations"), "name and history");
}
