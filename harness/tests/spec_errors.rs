//! Bad specs and flags: one line on stderr, exit 3, nothing started (no
//! results folder). Also: flags override the spec file, and --dry-run
//! prints the resolved spec.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-spec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn faultline(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("test")
        .args(args)
        .args(["--store", dir.join("store").to_str().unwrap()])
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Runs with a spec file holding `yaml` and asserts a one-line error that
/// contains `expected`, exit code 3, and no results folder.
fn assert_rejected(name: &str, yaml: Option<&str>, flags: &[&str], expected: &str) {
    let dir = scratch(name);
    let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
    if let Some(yaml) = yaml {
        let spec = dir.join("spec.yaml");
        std::fs::write(&spec, yaml).unwrap();
        args.extend(["--spec".to_string(), spec.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = faultline(&dir, &args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{name}: stderr {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: one line, got {stderr:?}");
    assert!(stderr.contains(expected), "{name}: expected {expected:?} in {stderr:?}");
    assert!(!dir.join("store").exists(), "{name}: nothing may start");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_fields_are_rejected() {
    assert_rejected("unknown-top", Some("nodez: 3\n"), &[], "unknown field `nodez`");
    assert_rejected("unknown-nested", Some("cluster:\n  nodes: 3\n  colour: red\n"), &[], "unknown field `colour`");
    assert_rejected("unknown-set", None, &["--set", "schedule.speed=3"], "unknown field `speed`");
}

#[test]
fn bad_values_are_rejected() {
    assert_rejected("workload", None, &["--workload", "queue"], "unknown workload \"queue\"");
    assert_rejected("nemesis", None, &["--nemesis", "kill,explode"], "unknown nemesis \"explode\"");
    assert_rejected("nodes", None, &["--nodes", "0"], "cluster.nodes");
    assert_rejected("time", None, &["--time-limit", "soon"], "schedule.time_limit");
    assert_rejected("unit", Some("schedule:\n  recovery: 5\n"), &[], "schedule.recovery");
    assert_rejected("rate", None, &["--rate=-1"], "schedule.rate");
    assert_rejected("rate-zero", None, &["--rate", "0"], "schedule.rate");
    assert_rejected("concurrency", None, &["--concurrency", "0"], "schedule.concurrency");
    assert_rejected("system", Some("cluster:\n  system: mongodb\n"), &[], "cluster.system");
    assert_rejected("name", None, &["--name", "../escape"], "name");
    assert_rejected("yaml", Some("cluster: [unclosed\n"), &[], "spec");
    assert_rejected("type", Some("cluster:\n  nodes: many\n"), &[], "spec");
}

#[test]
fn impossible_combinations_are_rejected() {
    assert_rejected("ring", None, &["--nodes", "2", "--nemesis", "partition-ring"], "needs at least 3 nodes");
    assert_rejected("majority", None, &["--nodes", "1", "--nemesis", "kill-majority"], "needs at least 3 nodes");
    assert_rejected("partition-one", None, &["--nodes", "1", "--nemesis", "partition"], "needs at least 2 nodes");
    assert_rejected(
        "durations",
        Some("nemesis:\n  fault_duration_min: 5s\n  fault_duration_max: 1s\n"),
        &[],
        "fault_duration_min is above",
    );
    assert_rejected("timeout", None, &["--time-limit", "1s", "--set", "client.op_timeout=2s"], "op_timeout");
}

#[test]
fn bad_hosts_are_rejected() {
    assert_rejected("hosts-shape", Some("cluster:\n  hosts: {netnz: 3}\n"), &[], "unknown field `netnz`");
    assert_rejected("hosts-scalar", Some("cluster:\n  hosts: 5\n"), &[], "cluster.hosts is `netns: N` or a list");
    assert_rejected("hosts-netns", None, &["--set", "cluster.hosts={\"netns\":0}"], "cluster.hosts.netns");
    assert_rejected("hosts-few", None, &["--nodes", "3", "--set", "cluster.hosts={\"netns\":2}"], "2 hosts for 3 nodes");
    let named = "cluster:\n  nodes: 1\n  hosts:\n    - address: vm1.example\n";
    assert_rejected("hosts-name", Some(named), &[], "`vm1.example` is not an IP address");
    let relative = "cluster:\n  nodes: 1\n  hosts:\n    - address: 10.0.0.5\n      dir: faultline\n";
    assert_rejected("hosts-dir", Some(relative), &[], "cluster.hosts[0].dir");
    let netns = ["--nodes", "3", "--set", "cluster.hosts={\"netns\":3}"];
    assert_rejected("hosts-scripted", None, &[&netns[..], &["--nemesis", "revote"]].concat(), "steers clients through the proxy");
}

#[test]
fn transactions_need_a_transactional_client_and_a_known_model() {
    let redis = "cluster:\n  system: redis-sentinel\n";
    assert_rejected("txn-redis", Some(redis), &["--workload", "list-append"], "system redis-sentinel has no transactional client");
    assert_rejected("txn-model", None, &["--set", "checkers.consistency_model=linearizable"], "checkers.consistency_model");
}

#[test]
fn flags_override_the_spec_and_dry_run_prints_it() {
    let dir = scratch("dry-run");
    let spec = dir.join("spec.yaml");
    std::fs::write(&spec, "name: mine\ncluster:\n  nodes: 7\nworkload:\n  kind: set\n").unwrap();
    let output = faultline(
        &dir,
        &["--spec", spec.to_str().unwrap(), "--nodes", "3", "--nemesis", "pause,partition-halves", "--seed", "9", "--dry-run"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("name: mine"), "{stdout}");
    assert!(stdout.contains("nodes: 3"), "the flag wins over the file: {stdout}");
    assert!(stdout.contains("kind: set"), "{stdout}");
    assert!(stdout.contains("seed: 9"), "{stdout}");
    assert!(stdout.contains("- partition-halves"), "{stdout}");
    assert!(!dir.join("store").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn example_specs_are_valid() {
    let ci = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci");
    let mut checked = 0;
    for entry in std::fs::read_dir(&ci).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let dir = scratch(&format!("example-{checked}"));
        let output = faultline(&dir, &["--spec", path.to_str().unwrap(), "--dry-run"]);
        assert_eq!(output.status.code(), Some(0), "{}: {}", path.display(), String::from_utf8_lossy(&output.stderr));
        checked += 1;
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(checked >= 3, "expected the example specs under ci/, found {checked}");
}

#[test]
fn help_documents_the_flags() {
    let output = Command::new(env!("CARGO_BIN_EXE_faultline")).args(["test", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0));
    for flag in ["--spec", "--workload", "--nemesis", "--nodes", "--time-limit", "--rate", "--concurrency", "--seed", "--store", "--set"] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    assert!(help.contains("With no flags: 5 faultline-node nodes"), "--help says what the no-flag test runs");
    assert!(help.contains("membership-add-minority?"), "--help shows the default faults through the spec reference");
    assert!(help.contains("corrupt-bitflip?, disk-fsync-eio-majority?"), "and the file damage and fsync errors");
}
