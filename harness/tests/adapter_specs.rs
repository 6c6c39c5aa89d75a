//! The adapter specs end to end through `faultline test --spec`: etcd under
//! partition and kill is valid; Redis + Sentinel under a primary partition
//! is invalid within 3 runs, with lost acknowledged writes counted and shown; the generic
//! worked example (Redis described by commands, Python client) is valid.
//! Skipped with a message when the systems are not installed, unless
//! `FAULTLINE_REQUIRE_ADAPTERS=1` (CI).
mod spec_support;

use serde_json::Value;
use spec_support::{installed, run_spec, run_spec_with};

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
    // Within 3 runs, as the matrix counts: once in CI (seed 1) the run was
    // valid with nothing lost, in 24 s against 33-34 s for the runs that
    // lose writes; three reruns lost writes. Sentinel's failover timing is
    // the system's own.
    let mut run = run_spec("ci/redis-sentinel.yaml");
    for seed in ["2", "3"] {
        if run.code == Some(1) {
            break;
        }
        eprintln!("redis-sentinel: a run lost nothing ({}); trying seed {seed}", run.results["verdict"]);
        run = run_spec_with("ci/redis-sentinel.yaml", &["--seed", seed]);
    }
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert_eq!(run.results["verdict"], "invalid");
    let durability = run.check("durability");
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
