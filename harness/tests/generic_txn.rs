//! Transactions on the generic system: a borrowed client runs them when
//! its system does (read from that system's capabilities), an external
//! program when the spec says so (`cluster.generic.transactions: true`);
//! otherwise a transactional workload is refused in one line. End to end,
//! toystore runs list-append: strict serializable when each transaction is
//! one request run under the primary's lock, and caught when its
//! micro-operations run one at a time (`--non-atomic-txn`).
//!
//! The runs need python3 and are skipped without it unless
//! `FAULTLINE_REQUIRE_ADAPTERS=1`.
mod spec_support;

use std::process::Command;

use faultline::plan::{SpecFile, TestPlan};
use faultline::systems::registry;
use serde_json::Value;
use spec_support::{installed, run_spec};

/// A generic system with `client` (and `extra` lines of `cluster.generic`)
/// running list-append.
fn spec(client: &str, extra: &str) -> String {
    let command = if client == "external" { "    client_command: python3 client.py\n" } else { "" };
    format!(
        "cluster:\n  system: generic\n  generic:\n    start: exec ./server {{client_addr}}\n    client: {client}\n{command}{extra}\
         workload:\n  kind: list-append\n"
    )
}

fn plan(yaml: &str) -> Result<TestPlan, String> {
    let spec = SpecFile::from_yaml(yaml, "test").map_err(|e| e.to_string())?;
    TestPlan::from_spec(&spec, 1).map_err(|e| e.to_string())
}

/// The registered system's own answer: what a borrowed client must follow.
fn lender_runs_transactions(system: &str) -> bool {
    let configured = registry::configure(system, &serde_json::Map::new()).unwrap();
    configured.system.capabilities().transactions
}

const REFUSED: &str = "workload list-append runs transactions, and system generic has no transactional client (Capabilities::transactions)";

#[test]
fn an_external_program_runs_transactions_only_when_the_spec_says_so() {
    let program = plan(&spec("external", "    transactions: true\n")).unwrap();
    assert!(program.cluster.system.capabilities().transactions);
    assert_eq!(program.resolved.cluster.options["generic"]["transactions"], true, "the resolved spec keeps it");
    let error = plan(&spec("external", "")).unwrap_err();
    assert!(error.contains(REFUSED), "{error}");
    assert!(!error.contains('\n'), "one line: {error}");
    let error = plan(&spec("external", "    transactions: false\n")).unwrap_err();
    assert!(error.contains(REFUSED), "{error}");
    let error = plan(&spec("external", "    transactions: often\n")).unwrap_err();
    assert!(error.contains("cluster.generic.transactions"), "{error}");
}

#[test]
fn a_borrowed_client_runs_transactions_when_its_system_does() {
    assert!(lender_runs_transactions("faultline-node"));
    assert!(!lender_runs_transactions("redis-sentinel"));
    for lender in ["faultline-node", "etcd", "redis-sentinel"] {
        match plan(&spec(lender, "")) {
            Ok(_) => assert!(lender_runs_transactions(lender), "{lender}"),
            Err(error) => {
                assert!(!lender_runs_transactions(lender), "{lender}: {error}");
                assert!(error.contains(REFUSED), "{lender}: {error}");
            }
        }
        let error = plan(&spec(lender, "    transactions: true\n")).unwrap_err();
        assert!(error.contains("cluster.generic.transactions: is only used with client: external"), "{lender}: {error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }
}

/// The refusal as a user sees it: one line on stderr, exit 3, nothing run.
#[test]
fn list_append_on_a_program_without_the_field_is_refused_in_one_line() {
    let dir = std::env::temp_dir().join(format!("faultline-generic-txn-refused-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("spec.yaml"), spec("external", "")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .current_dir(&dir)
        .args(["test", "--spec", "spec.yaml", "--store", "store"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains(REFUSED), "{stderr}");
    assert!(!dir.join("store").exists(), "nothing may start");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Committed transactions, and reads among them that returned a non-empty list.
fn committed_and_reads_that_saw_appends(history: &[Value]) -> (usize, usize) {
    let committed: Vec<&Value> = history.iter().filter(|event| event["type"] == "ok" && event["f"] == "txn").collect();
    let mops = committed.iter().flat_map(|event| event["value"].as_array().cloned().unwrap_or_default());
    let saw = mops.filter(|mop| mop[0] == "r" && mop[2].as_array().is_some_and(|list| !list.is_empty())).count();
    (committed.len(), saw)
}

#[test]
fn list_append_on_toystore_is_strict_serializable_under_faults() {
    if !installed(&["python3"]) {
        return;
    }
    let run = run_spec("examples/generic/toystore-txn.yaml");
    assert_eq!(run.code, Some(0), "valid: {}", run.stdout);
    let check = run.check("transactions");
    assert_eq!(check["verdict"], "valid", "{check:#}");
    assert_eq!(check["details"]["model"], "strict-serializable");
    let (committed, saw) = committed_and_reads_that_saw_appends(&run.history);
    assert!(committed > 100, "{committed} committed: {}", run.stdout);
    assert!(saw > 50, "{saw} reads saw an append");
    let faults = run.history.iter().filter(|e| e["type"] == "ok" && e["process"] == "nemesis").count();
    assert!(faults > 0, "faults ran: {}", run.stdout);
    assert_eq!(run.check("convergence")["verdict"], "valid", "the replicas applied the same transactions");
}

#[test]
fn a_toystore_that_runs_micro_operations_one_at_a_time_is_caught() {
    if !installed(&["python3"]) {
        return;
    }
    let run = run_spec("examples/generic/toystore-txn-non-atomic.yaml");
    assert_eq!(run.code, Some(1), "invalid: {}", run.stdout);
    let check = run.check("transactions");
    assert_eq!(check["verdict"], "invalid", "{check:#}");
    let reason = check["reason"].as_str().unwrap();
    assert!(reason.starts_with("transactions: not strict-serializable: "), "{reason}");
    assert!(!check["details"]["anomalies"].as_array().unwrap().is_empty(), "{check:#}");
}
