//! The CI entry points: the GitHub Actions workflow is valid YAML with the
//! steps the docs promise and names specs that exist and validate, and
//! `ci/run-faultline.sh` runs a spec end to end, leaving report.html and
//! junit.xml in the results folder and exiting with the verdict.
mod report_support;

use std::process::Command;

use report_support::*;
use serde_json::Value;

fn workflow() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("ci/github/faultline.yml")).unwrap();
    serde_saphyr::from_str(&text).expect("the workflow is valid YAML")
}

fn steps(job: &Value) -> Vec<&Value> {
    job["steps"].as_array().expect("job has steps").iter().collect()
}

fn runs(job: &Value) -> String {
    steps(job).iter().filter_map(|s| s["run"].as_str()).collect::<Vec<_>>().join("\n")
}

#[test]
fn workflow_builds_runs_a_matrix_uploads_results_and_fails_on_invalid() {
    let workflow = workflow();
    let jobs = &workflow["jobs"];
    assert!(runs(&jobs["build"]).contains("cargo build --release"), "build job does not build");
    let test = &jobs["test"];
    assert_eq!(test["needs"], "build");
    let specs = test["strategy"]["matrix"]["spec"].as_array().expect("a matrix of specs");
    assert!(specs.len() >= 2, "the matrix runs several specs");
    for spec in specs {
        let path = workspace_root().join(format!("ci/{}.yaml", spec.as_str().unwrap()));
        let status = faultline().args(["test", "--dry-run", "--spec"]).arg(&path).output().unwrap();
        assert!(status.status.success(), "{} does not validate: {}", path.display(), String::from_utf8_lossy(&status.stderr));
    }
    // The run step's exit code is the verdict, so an invalid run fails the job.
    assert!(runs(test).contains("ci/run-faultline.sh ci/${{ matrix.spec }}.yaml"), "{}", runs(test));
    let upload = steps(test)
        .into_iter()
        .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/upload-artifact")))
        .expect("results are uploaded");
    assert_eq!(upload["if"], "always()", "results must be uploaded when the run fails too");
    assert_eq!(upload["with"]["path"], "store/");
}

#[test]
fn workflow_declares_the_permissions_junit_publishing_needs() {
    let workflow = workflow();
    // Least privilege by default, for the build job and any job added later.
    assert_eq!(workflow["permissions"]["contents"], "read", "workflow-level permissions: {}", workflow["permissions"]);
    let test = &workflow["jobs"]["test"];
    let publish = steps(test)
        .into_iter()
        .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("mikepenz/action-junit-report")))
        .expect("JUnit is published as a check");
    assert!(publish["with"]["report_paths"].as_str().is_some_and(|p| p.ends_with("junit.xml")));
    let condition = publish["if"].as_str().unwrap_or_default();
    assert!(condition.contains("always()"), "failed runs are published too: {condition}");
    // A job's permissions replace the workflow's, so the job lists both.
    let permissions = &test["permissions"];
    assert_eq!(permissions["checks"], "write", "creating the check run needs checks: write: {permissions}");
    assert_eq!(permissions["contents"], "read", "checkout needs contents: read: {permissions}");
    let granted = permissions.as_object().expect("permissions is a map");
    for (scope, level) in granted {
        assert!(scope == "checks" || level == "read", "{scope}: {level} is more than the job needs");
    }
}

/// A stand-in for the faultline binary: records its arguments, and for
/// `test` makes a run folder with `latest`, writes the JUnit file it was
/// asked for and exits with $STUB_EXIT, as a run ending in that code does.
const STUB: &str = r#"#!/usr/bin/env bash
echo "$*" >> "$STUB_LOG"
[[ "$1" == test ]] || exit 0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --store) store="$2"; shift ;;
    --junit) junit="$2"; shift ;;
  esac
  shift
done
mkdir -p "$store/stub/run-$$"
ln -sfn "run-$$" "$store/stub/latest"
echo '<testsuites tests="1" errors="1"/>' > "$junit"
exit "$STUB_EXIT"
"#;

fn run_script_with_stub(dir: &std::path::Path, exit: u8, args: &[&str]) -> (std::process::Output, String) {
    let stub = dir.join("faultline-stub");
    std::fs::write(&stub, STUB).unwrap();
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = dir.join("calls.log");
    let output = Command::new(workspace_root().join("ci/run-faultline.sh"))
        .args(args)
        .env("FAULTLINE_BIN", &stub)
        .env("FAULTLINE_STORE", dir.join("store"))
        .env("STUB_LOG", &log)
        .env("STUB_EXIT", exit.to_string())
        .output()
        .unwrap();
    (output, std::fs::read_to_string(&log).unwrap_or_default())
}

#[test]
fn run_script_defaults_to_the_default_spec_only() {
    let dir = kept_dir("ci-script-default");
    let (output, calls) = run_script_with_stub(&dir, 0, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}
{}", String::from_utf8_lossy(&output.stderr));
    let tests: Vec<&str> = calls.lines().filter(|l| l.starts_with("test ")).collect();
    assert_eq!(tests.len(), 1, "with no arguments one spec runs: {calls}");
    assert!(tests[0].contains("--spec ci/default.yaml"), "{calls}");
    assert!(!calls.contains("redis-sentinel"), "the spec expected to be INVALID is not a default: {calls}");
    let usage = std::fs::read_to_string(workspace_root().join("ci/run-faultline.sh")).unwrap();
    assert!(usage.contains("(default: ci/default.yaml)"), "the usage text names the default");
    let docs = std::fs::read_to_string(workspace_root().join("harness/docs/report.md")).unwrap();
    assert!(docs.contains("(default: `ci/default.yaml`"), "harness/docs/report.md names the default");
}

#[test]
fn run_script_keeps_junit_of_a_harness_error_in_the_run_folder() {
    let dir = kept_dir("ci-script-harness-error");
    let spec = dir.join("broken.yaml");
    std::fs::write(&spec, "name: broken
").unwrap();
    // An older run of the same spec stays untouched.
    let older = dir.join("store/broken/stub/older");
    std::fs::create_dir_all(&older).unwrap();
    std::os::unix::fs::symlink("older", dir.join("store/broken/stub/latest")).unwrap();
    let (output, _) = run_script_with_stub(&dir, 3, &[spec.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("broken.yaml: HARNESS ERROR (exit 3)"), "{stdout}");
    let run = std::fs::canonicalize(dir.join("store/broken/stub/latest")).unwrap();
    assert_ne!(run, std::fs::canonicalize(&older).unwrap(), "the stub moved latest");
    assert!(run.join("junit.xml").is_file(), "the run's JUnit sits in its folder");
    assert!(!older.join("junit.xml").exists(), "the older run got nothing");
    assert!(!dir.join("store/broken/junit.xml").exists(), "nothing is left beside the folders");
}

#[test]
fn run_script_runs_a_spec_and_leaves_report_and_junit() {
    let script = workspace_root().join("ci/run-faultline.sh");
    assert!(Command::new("bash").arg("-n").arg(&script).status().unwrap().success());
    let dir = kept_dir("ci-script");
    let spec = dir.join("smoke.yaml");
    std::fs::write(
        &spec,
        "name: smoke\nseed: 5\ncluster:\n  nodes: 3\nworkload:\n  kind: register\nnemesis:\n  faults: [kill-random]\n  fault_duration_min: 500ms\n  fault_duration_max: 1s\n  heal_duration_min: 500ms\n  heal_duration_max: 1s\nschedule:\n  time_limit: 2s\n  rate: 50\n",
    )
    .unwrap();
    let store = dir.join("store");
    let output = Command::new(&script)
        .arg(&spec)
        .env("FAULTLINE_BIN", env!("CARGO_BIN_EXE_faultline"))
        .env("FAULTLINE_NODE_BIN", faultline::systems::faultline_node::find_node_binary().expect("faultline-node is built"))
        .env("FAULTLINE_STORE", &store)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("smoke.yaml: valid"), "{stdout}");
    let run = store.join("smoke/smoke/latest");
    let html = std::fs::read_to_string(run.join("report.html")).expect("report.html in the results folder");
    assert!(html.contains("class=\"verdict valid\""));
    let xml = std::fs::read_to_string(run.join("junit.xml")).expect("junit.xml in the results folder");
    assert!(xml.contains("failures=\"0\" errors=\"0\"") && xml.contains("<testcase"), "{xml}");
}
