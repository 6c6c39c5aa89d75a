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

/// One line of a `schedule.jsonl` without its timing: what was hit.
fn fault_line(event: &Value) -> String {
    format!("{} {} {} {} {}", event["fault"], event["group"], event["duration_ms"], event["nodes"], event["grudge"])
}

fn schedule_of(dir: &std::path::Path) -> (Value, Vec<Value>) {
    let text = std::fs::read_to_string(dir.join("schedule.jsonl")).unwrap();
    let mut lines = text.lines().map(|line| serde_json::from_str::<Value>(line).unwrap());
    let header = lines.next().expect("a header line");
    (header, lines.collect())
}

fn follow(store: &std::path::Path, name: &str, schedule: Option<(&std::path::Path, &str)>) -> std::path::PathBuf {
    let mut command = Command::new(env!("CARGO_BIN_EXE_faultline"));
    command
        .args(["test", "--quiet", "--nodes", "3", "--time-limit", "6s", "--rate", "60", "--concurrency", "3"])
        .args(["--nemesis", "kill,pause,partition", "--seed", "41", "--name", name, "--store", store.to_str().unwrap()])
        .args(["--node-binary", node_binary().to_str().unwrap()])
        .args(["--set", "schedule.recovery=300ms", "--set", "nemesis.heal_duration_max=800ms"]);
    if let Some((path, by)) = schedule {
        command.args(["--schedule", path.to_str().unwrap(), "--schedule-targets", by]);
    }
    let status = command.stderr(Stdio::inherit()).stdout(Stdio::null()).status().unwrap();
    assert!(status.code().is_some_and(|code| code < 3), "{name}: a harness error ({status})");
    store.join(name).join("latest")
}

#[test]
fn a_recorded_schedule_replays_its_faults_at_their_times_on_its_targets() {
    let store = std::env::temp_dir().join(format!("faultline-schedule-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let recorded = follow(&store, "recorded", None);
    let (header, events) = schedule_of(&recorded);
    assert_eq!((header["seed"].as_u64(), header["nodes"].as_u64(), header["time_limit_ms"].as_u64()), (Some(41), Some(3), Some(6_000)));
    assert_eq!(header["workload"]["kind"], "kv", "the generator's parameters: {header}");
    assert!(events.len() >= 3, "kill, pause and partition on their own schedules over 6 s: {events:?}");
    let history = std::fs::read_to_string(recorded.join("history.jsonl")).unwrap();
    for event in &events {
        let fault = event["fault"].as_str().unwrap();
        assert!(history.contains(&format!("\"f\":\"{fault}\"")), "{fault} is in the history too");
        assert!(event["nodes"].is_array() != event["grudge"].is_object(), "every built-in fault names what it hit: {event}");
    }

    // By node: the same faults on the same nodes, each at its time.
    let by_node = follow(&store, "by-node", Some((&recorded.join("schedule.jsonl"), "node")));
    let (_, replayed) = schedule_of(&by_node);
    let lines = |events: &[Value]| events.iter().map(fault_line).collect::<Vec<_>>();
    assert_eq!(lines(&replayed), lines(&events), "the replay injects what was recorded");
    for (then, now) in events.iter().zip(&replayed) {
        let (then_ms, now_ms) = (then["at_ms"].as_i64().unwrap(), now["at_ms"].as_i64().unwrap());
        // A heal (a restart) slower than when recorded can push the next fault of
        // its group back by the difference; the one after is due on time again.
        assert!((now_ms - then_ms).abs() <= 1_500, "{} due at {then_ms} ms, injected at {now_ms} ms", then["fault"]);
    }
    let replay_history = std::fs::read_to_string(by_node.join("history.jsonl")).unwrap();
    let killed: Vec<&Value> = replayed.iter().filter(|e| e["group"] == "kill").collect();
    for event in killed {
        let expected = format!("{{\"killed\":{}}}", event["nodes"]);
        assert!(replay_history.contains(&expected), "the history shows {expected}");
    }

    // By role: a fault that hit the leader hits the leader of the replay.
    let by_role = follow(&store, "by-role", Some((&recorded.join("schedule.jsonl"), "role")));
    let (_, aimed) = schedule_of(&by_role);
    assert_eq!(aimed.len(), events.len());
    let mut compared = 0;
    for (then, now) in events.iter().zip(&aimed) {
        assert_eq!(then["fault"], now["fault"]);
        let hit_leader = |event: &Value| event["nodes"].as_array().map(|nodes| nodes.contains(&event["leader"]));
        if then["leader"].is_string() && now["leader"].is_string() && then["nodes"].is_array() {
            assert_eq!(hit_leader(then), hit_leader(now), "the same role: {then} / {now}");
            compared += 1;
        }
    }
    assert!(compared >= 1, "at least one node fault with a leader on both sides: {events:?} / {aimed:?}");
    std::fs::remove_dir_all(&store).unwrap();
}

#[test]
fn replay_reruns_a_failure_and_says_how_often_it_fails_the_same_way() {
    let store = std::env::temp_dir().join(format!("faultline-replay-cmd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    // A leader that acknowledges before a quorum has the write, cut off and
    // killed: lost register writes, in 6 s with these seeds' schedules.
    let status = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test", "--quiet", "--nodes", "5", "--time-limit", "6s", "--workload", "register"])
        .args(["--nemesis", "partition-leader,kill-leader", "--set", "cluster.bugs=[ack-before-commit]"])
        .args(["--seed", "2", "--name", "bug", "--store", store.to_str().unwrap()])
        .args(["--node-binary", node_binary().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1), "the planted bug is caught");
    let dir = store.join("bug/latest");
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["replay", dir.to_str().unwrap(), "--runs", "2"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("original  invalid  linearizable-register: a non-linearizable key"), "{stdout}");
    let record: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("replay/replay.json")).unwrap()).unwrap();
    let runs = record["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let matched = runs.iter().filter(|run| run["matches"] == true).count();
    assert_eq!(record["reproduced"], matched);
    assert!(stdout.contains(&format!("reproduced {matched} of 2")), "{stdout}");
    for run in runs {
        let rerun = PathBuf::from(run["dir"].as_str().unwrap());
        assert!(rerun.starts_with(dir.join("replay")) && rerun.join("schedule.jsonl").is_file(), "{rerun:?}");
        let shares = run["findings"].as_array().unwrap().iter().any(|f| record["original"]["findings"].as_array().unwrap().contains(f));
        assert_eq!(run["matches"] == true, shares, "matches means a finding in common: {run}");
    }
    assert!(matched >= 1, "the recorded schedule reproduces this failure (3 of 3 when measured): {stdout}");

    let no_schedule = store.join("old");
    std::fs::create_dir_all(&no_schedule).unwrap();
    std::fs::copy(dir.join("spec.yaml"), no_schedule.join("spec.yaml")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_faultline")).args(["replay", no_schedule.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr.contains("has no schedule.jsonl") && stderr.lines().count() == 1, "{stderr}");
    let output = Command::new(env!("CARGO_BIN_EXE_faultline")).args(["replay", dir.to_str().unwrap(), "--runs", "0"]).output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--runs 0 is not in 1..=100"));

    shrink_within_a_ci_budget(&dir);
    std::fs::remove_dir_all(&store).unwrap();
}

/// The recorded failure shrunk in 150 s: every candidate runs for real, the
/// budget holds, and what it writes is a test that runs again.
fn shrink_within_a_ci_budget(dir: &std::path::Path) {
    let began = std::time::Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["shrink", dir.to_str().unwrap(), "--budget", "150s"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let wall = began.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    // The budget decides when no run may start; the one in flight ends
    // within a run's time (6 s and its overhead).
    assert!(wall.as_secs() <= 150 + 20, "shrink took {wall:?} on a 150 s budget");
    let record: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("shrink/shrink.json")).unwrap()).unwrap();
    assert!(record["candidates_tried"].as_u64().unwrap() >= 2, "{record}");
    let (before, after) = (&record["before"], &record["after"]);
    assert!(after["events"].as_u64() <= before["events"].as_u64(), "{record}");
    assert!(after["time_limit_ms"].as_u64() <= before["time_limit_ms"].as_u64(), "{record}");
    assert!(after["events"].as_u64() < before["events"].as_u64() || after["time_limit_ms"].as_u64() < before["time_limit_ms"].as_u64() || after == before, "{record}");
    let minimal: Vec<Value> = std::fs::read_to_string(dir.join("shrink/schedule.jsonl"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(minimal.len() as u64, after["events"].as_u64().unwrap(), "the written schedule is the result");
    assert_eq!(before["nodes"], 5, "{record}");
    assert!(after["nodes"].as_u64() <= Some(5) && after["nodes"].as_u64() >= Some(1), "{record}");
    let spec_text = std::fs::read_to_string(dir.join("shrink/spec.yaml")).unwrap();
    assert!(spec_text.contains(&format!("nodes: {}", after["nodes"])), "the minimal spec has the minimal cluster: {spec_text}");
    // The report: a run of the minimal test, its before and after, and
    // every surviving fault in words.
    let page = std::fs::read_to_string(dir.join("shrink/report.html")).unwrap();
    let section = &page[page.find("<section id=\"minimal\">").expect("a minimal schedule section")..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(section.contains(&format!("<tr><td>events</td><td>{}</td>", before["events"])), "{section}");
    assert!(section.contains(&format!("<tr><td>nodes</td><td>5</td><td>{}</td></tr>", after["nodes"])), "{section}");
    assert_eq!(section.matches("<li>at ").count(), minimal.len(), "one line per surviving fault: {section}");
    assert!(page.contains("--schedule"), "its replay command follows the minimal schedule");
    assert!(stdout.contains("before -> after") && stdout.contains("candidate   1:"), "{stdout}");
    // What it wrote runs as a test of its own.
    let spec = dir.join("shrink/spec.yaml");
    let status = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test", "--quiet", "--spec", spec.to_str().unwrap(), "--schedule", dir.join("shrink/schedule.jsonl").to_str().unwrap()])
        .args(["--store", dir.join("shrink/again").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(status.code().is_some_and(|code| code <= 1), "the minimal test runs: {status}");
}
