//! Shared by the tests that run a spec end to end through `faultline test
//! --spec` from the workspace root, and by those that skip when a program
//! the spec needs is not installed.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether every program is on PATH; with `FAULTLINE_REQUIRE_ADAPTERS=1`
/// (CI) a missing one fails the test instead of skipping it.
pub fn installed(programs: &[&str]) -> bool {
    let missing: Vec<&str> =
        programs.iter().copied().filter(|program| faultline::cluster::find_on_path(program).is_err()).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("FAULTLINE_REQUIRE_ADAPTERS").as_deref() == Ok("1") {
        panic!("FAULTLINE_REQUIRE_ADAPTERS=1 but {missing:?} not on PATH");
    }
    eprintln!("SKIP: {missing:?} not installed");
    false
}

/// What one run left: exit code, results.json, the history's events (its
/// header line left out) and what it printed.
pub struct Run {
    pub code: Option<i32>,
    pub results: Value,
    pub history: Vec<Value>,
    pub stdout: String,
}

impl Run {
    /// The check called `name`, from results.json.
    pub fn check(&self, name: &str) -> &Value {
        let checkers = self.results["checks"]["checkers"].as_array().expect("checkers list");
        checkers.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no {name} check in {:#}", self.results))
    }
}

/// Runs `faultline test --spec <spec>` (a path from the workspace root)
/// into a temporary store, which it removes after reading the run back.
pub fn run_spec(spec: &str) -> Run {
    run_spec_with(spec, &[])
}

/// [`run_spec`] with more flags (`--seed 3`, `--set a.b=c`, ...).
pub fn run_spec_with(spec: &str, flags: &[&str]) -> Run {
    let tag: String = flags.concat().chars().filter(char::is_ascii_alphanumeric).take(40).collect();
    let store = std::env::temp_dir().join(format!("faultline-spec-{}-{tag}-{}", spec.replace('/', "-"), std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .current_dir(workspace())
        .args(["test", "--quiet", "--spec", spec, "--store", store.to_str().unwrap(), "--name", "t"])
        .args(flags)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let run_dir = store.join("t/latest");
    let text = std::fs::read_to_string(run_dir.join("results.json"))
        .unwrap_or_else(|e| panic!("{spec}: no results ({e}); stdout:\n{stdout}"));
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap_or_default();
    let history = history.lines().skip(1).filter_map(|line| serde_json::from_str(line).ok()).collect();
    let _ = std::fs::remove_dir_all(&store);
    Run { code: output.status.code(), results: serde_json::from_str(&text).unwrap(), history, stdout }
}
