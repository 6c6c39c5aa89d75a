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
        .env("FAULTLINE_NODE_BIN", faultline::cluster::find_node_binary().expect("faultline-node is built"))
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
