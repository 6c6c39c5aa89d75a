//! The adapter specs end to end through `faultline test --spec`: etcd under
//! partition and kill is valid; Redis + Sentinel under a primary partition
//! is invalid with lost acknowledged writes counted and shown; the generic
//! worked example (Redis described by commands, Python client) is valid.
//! Skipped with a message when the systems are not installed, unless
//! `FAULTLINE_REQUIRE_ADAPTERS=1` (CI).
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn installed(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|program| faultline::cluster::find_on_path(program).is_err())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("FAULTLINE_REQUIRE_ADAPTERS").as_deref() == Ok("1") {
        panic!("FAULTLINE_REQUIRE_ADAPTERS=1 but {missing:?} not on PATH");
    }
    eprintln!("SKIP: adapter spec test: {missing:?} not installed");
    false
}

struct Run {
    code: Option<i32>,
    results: Value,
    stdout: String,
}

fn run_spec(spec: &str) -> Run {
    let store = std::env::temp_dir().join(format!("faultline-adapter-spec-{}-{}", spec.replace('/', "-"), std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .current_dir(workspace())
        .args(["test", "--quiet", "--spec", spec, "--store", store.to_str().unwrap(), "--name", "t"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let results_path = store.join("t/latest/results.json");
    let text = std::fs::read_to_string(&results_path).unwrap_or_else(|e| panic!("{spec}: no results ({e}); stdout:\n{stdout}"));
    let results = serde_json::from_str(&text).unwrap();
    let _ = std::fs::remove_dir_all(&store);
    Run { code: output.status.code(), results, stdout }
}

fn checker<'a>(results: &'a Value, name: &str) -> &'a Value {
    let checkers = results["checks"]["checkers"].as_array().expect("checkers list");
    checkers.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no {name} checker in {results:#}"))
}

fn nemesis_kinds(results: &Value) -> String {
    results["nemesis"].to_string()
}

#[test]
fn etcd_under_partition_and_kill_is_valid() {
    if !installed(&["etcd"]) {
        return;
    }
    let run = run_spec("ci/etcd.yaml");
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.results["verdict"], "valid", "{:#}", run.results["reasons"]);
    assert!(run.results["counts"]["ok"].as_u64().unwrap_or(0) > 50, "{}", run.stdout);
    assert!(nemesis_kinds(&run.results).contains("partition"), "{}", nemesis_kinds(&run.results));
}

#[test]
fn redis_sentinel_under_a_primary_partition_loses_acknowledged_writes() {
    if !installed(&["redis-server", "redis-sentinel"]) {
        return;
    }
    let run = run_spec("ci/redis-sentinel.yaml");
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert_eq!(run.results["verdict"], "invalid");
    let durability = checker(&run.results, "durability");
    assert_eq!(durability["verdict"], "invalid", "{durability:#}");
    let counts = &durability["details"]["counts"];
    let lost = counts["lost"].as_u64().unwrap_or(0);
    let acknowledged = counts["acknowledged"].as_u64().unwrap_or(0);
    eprintln!("redis-sentinel: {lost} of {acknowledged} acknowledged writes lost");
    assert!(lost > 0 && acknowledged >= lost, "{counts:#}");
    assert!(!durability["details"]["examples"]["lost"].as_array().unwrap().is_empty(), "{durability:#}");
    assert!(run.stdout.contains("lost"), "{}", run.stdout);
}

#[test]
fn the_generic_worked_example_is_valid() {
    if !installed(&["redis-server", "redis-cli", "python3"]) {
        return;
    }
    let run = run_spec("ci/generic-redis.yaml");
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.results["verdict"], "valid", "{:#}", run.results["reasons"]);
    assert!(run.results["counts"]["ok"].as_u64().unwrap_or(0) > 10, "{}", run.stdout);
}
