//! `faultline check --report/--junit` on the checkers' planted histories,
//! and `faultline test --format json --junit` writing report.html at the
//! end of a real run.
mod report_support;

use report_support::*;

fn example(name: &str) -> std::path::PathBuf {
    workspace_root().join("checkers/examples").join(name)
}

#[test]
fn check_writes_a_report_and_junit_for_a_planted_invalid_history() {
    let dir = kept_dir("check-invalid");
    let report = dir.join("report.html");
    let junit = dir.join("junit.xml");
    let output = faultline()
        .arg("check")
        .arg(example("cas-register-invalid.jsonl"))
        .arg("--report")
        .arg(&report)
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("class=\"verdict invalid\""));
    assert!(html.contains("could not be ordered") && html.contains("p2 read nil -&gt; ok 1 (line 5)"), "counterexample missing");
    assert!(html.contains("faultline check"), "replay command missing");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<failure ") && xml.contains("type=\"invalid\"") && xml.contains("last consistent state is 2"), "{xml}");
    let Some(chromium) = chromium_or_skip("check --report") else { return };
    let dom = browser(&chromium, &dir.join("profile"), &report, &["--dump-dom".to_string()]);
    assert!(!dom.stderr.contains("Uncaught"), "{}", dom.stderr);
    assert!(dom.stdout.contains("data-rendered=\"yes\""));
    assert!(dom_number(&dom.stdout, "timeline", "data-marked").unwrap_or(0) >= 2, "counterexample not highlighted");
    let shot = dir.join("report.png");
    browser(&chromium, &dir.join("profile-shot"), &report, &[format!("--screenshot={}", shot.display())]);
    assert!(std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 10_000, "no screenshot");
}

#[test]
fn check_junit_has_one_suite_per_file_and_report_wants_one_file() {
    let dir = kept_dir("check-junit");
    let junit = dir.join("junit.xml");
    let output = faultline()
        .arg("check")
        .arg("--quiet")
        .arg(example("cas-register.jsonl"))
        .arg(example("cas-register-invalid.jsonl"))
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "--quiet prints nothing: {}", String::from_utf8_lossy(&output.stdout));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    assert!(junit_counts(&xml, "testsuites", 2, 1, 0), "{xml}");
    let output = faultline()
        .arg("check")
        .arg(example("cas-register.jsonl"))
        .arg(example("cas-register-invalid.jsonl"))
        .arg("--report")
        .arg(dir.join("r.html"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--report takes one history file"));
}

#[test]
fn a_test_run_ends_with_report_html_junit_and_json_on_stdout() {
    let dir = kept_dir("test-run");
    let junit = dir.join("junit.xml");
    let output = faultline()
        .args(["test", "--quiet", "--format", "json", "--nodes", "3", "--time-limit", "2s", "--rate", "50"])
        .args(["--concurrency", "3", "--workload", "set", "--nemesis", "kill", "--seed", "11"])
        .arg("--store")
        .arg(dir.join("store"))
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is one JSON document");
    assert_eq!(results["exit_code"].as_i64(), output.status.code().map(i64::from), "{stdout}");
    assert_eq!(results["seed"], 11);
    let run_dir = std::path::PathBuf::from(results["run_dir"].as_str().unwrap());
    let html = std::fs::read_to_string(run_dir.join("report.html")).expect("report.html at the end of the run");
    assert!(html.contains(&format!("class=\"verdict {}\"", results["verdict"].as_str().unwrap())));
    assert!(html.contains("<code id=\"seed\">11</code>"));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("name=\"durability\""), "{xml}");
}
