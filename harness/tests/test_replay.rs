//! `--seed N` replays the same workload and fault schedule: two runs with
//! one seed issue the same operations and inject the same faults (seeded
//! targets included); another seed gives other operations. The runs use
//! the append and set workloads, so their durability checks run too.
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

fn node_binary() -> PathBuf {
    faultline::systems::faultline_node::find_node_binary()
        .expect("faultline-node must be built before these tests: cargo build --release -p faultline-node")
}

struct Run {
    results: Value,
    history: Vec<Value>,
    stdout: String,
}

fn run(tag: &str, workload: &str, seed: u64) -> Run {
    let store = std::env::temp_dir().join(format!("faultline-replay-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test", "--quiet", "--nodes", "3", "--time-limit", "5s", "--rate", "60", "--concurrency", "3"])
        .args(["--workload", workload, "--nemesis", "partition-halves,partition-ring,pause-random"])
        .args(["--seed", &seed.to_string(), "--name", "t", "--store", store.to_str().unwrap()])
        .args(["--node-binary", node_binary().to_str().unwrap()])
        .args(["--set", "schedule.recovery=300ms", "--set", "nemesis.fault_duration_min=700ms"])
        .args(["--set", "nemesis.fault_duration_max=1s", "--set", "nemesis.heal_duration_min=300ms"])
        .args(["--set", "nemesis.heal_duration_max=500ms"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let dir = store.join("t/latest");
    let results: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let history = std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    std::fs::remove_dir_all(&store).unwrap();
    Run { results, history, stdout: String::from_utf8_lossy(&output.stdout).to_string() }
}

fn client_invocations(history: &[Value], count: usize) -> Vec<String> {
    history
        .iter()
        .filter(|e| e["process"] != "nemesis" && e["type"] == "invoke")
        .take(count)
        .map(|e| format!("{} {} {}", e["f"], e["key"], e["value"]))
        .collect()
}

fn nemesis_actions(history: &[Value]) -> Vec<String> {
    history
        .iter()
        .filter(|e| e["process"] == "nemesis" && e["type"] == "ok" && e["f"] != "heal" && e["f"] != "final-heal")
        .map(|e| format!("{} {}", e["f"], e["value"]))
        .collect()
}

#[test]
fn same_seed_same_operations_and_faults() {
    let a = run("a", "append", 77);
    let b = run("b", "append", 77);
    let c = run("c", "set", 78);
    for (name, run) in [("a", &a), ("b", &b), ("c", &c)] {
        assert_eq!(run.results["verdict"], "valid", "run {name}: {:#}", run.results["reasons"]);
        let checks: Vec<&str> =
            run.results["checks"]["checkers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert!(checks.contains(&"durability"), "run {name}: {checks:?}");
        let lines: Vec<&str> = run.stdout.lines().collect();
        let seed = run.results["seed"].as_u64().unwrap();
        let first = lines.first().copied().unwrap_or_default();
        let last = lines.last().copied().unwrap_or_default();
        assert!(first.contains(&format!("seed {seed},")), "run {name}: the first line names the seed: {first}");
        assert!(last.contains(&format!("seed {seed}")), "run {name}: the last line names the seed: {last}");
    }
    // Interleaving at the edges may differ; the operations themselves may not.
    let first_a = client_invocations(&a.history, 60);
    let window_b = client_invocations(&b.history, 80);
    assert_eq!(first_a.len(), 60);
    for op in &first_a {
        assert!(window_b.contains(op), "op {op} of run a is not among run b's first 80");
    }
    let (faults_a, faults_b) = (nemesis_actions(&a.history), nemesis_actions(&b.history));
    let common = faults_a.len().min(faults_b.len());
    assert!(common >= 2, "expected at least 2 faults per run: {faults_a:?} / {faults_b:?}");
    assert_eq!(faults_a[..common], faults_b[..common], "same seed, same faults and targets");
    let first_c = client_invocations(&c.history, 60);
    assert_ne!(first_a, first_c, "another seed gives other operations");
}
