//! `faultline check` as a user runs it: the built binary on good and bad
//! inputs, asserting exit codes and one-line errors.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shared() -> PathBuf {
    match std::env::var_os("FAULTLINE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => workspace().join("../shared"),
    }
}

fn check(args: &[&str]) -> Output {
    // `output()` waits for the child, so it is always reaped.
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("check")
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("faultline runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A scratch file in a folder of its own, both removed on drop. (One
/// folder shared by the tests raced: a test removing it when empty while
/// another had created it and not yet written its file.)
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let index = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("faultline-check-cli-{}-{index}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, text).expect("temp file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn assert_one_line_error(output: &Output, needles: &[&str]) {
    assert_eq!(output.status.code(), Some(3), "stderr: {}", stderr(output));
    let err = stderr(output);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    for needle in needles {
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_shipped_example_is_valid() {
    let output = check(&["checkers/examples/cas-register.jsonl"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("cas-register.jsonl: valid (cas-register"), "{}", stdout(&output));
}

#[test]
fn the_invalid_example_exits_1_with_a_counterexample() {
    let output = check(&["checkers/examples/cas-register-invalid.jsonl"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("invalid"), "{text}");
    assert!(text.contains("stuck: p2 read nil -> ok 1 (line 5)"), "{text}");
    assert!(text.contains("model state after it: 2"), "{text}");
}

#[test]
fn json_output_has_per_key_verdicts() {
    let output = check(&["--format", "json", "checkers/examples/cas-register-invalid.jsonl"]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json output");
    assert_eq!(report["verdict"], "invalid");
    assert_eq!(report["files"][0]["result"]["keys"][0]["verdict"], "invalid");
    assert_eq!(report["files"][0]["result"]["keys"][0]["counterexample"]["prefix_len"], 2);
}

#[test]
fn corpus_files_in_every_format_get_their_verdict() {
    let dir = shared().join("data/porcupine");
    let file = |name: &str| dir.join(name).to_str().expect("utf-8").to_string();
    assert_eq!(check(&[&file("jepsen/etcd_000.log")]).status.code(), Some(1));
    assert_eq!(check(&[&file("jepsen/etcd_002.log")]).status.code(), Some(0));
    assert_eq!(check(&[&file("kv/c10-ok.txt")]).status.code(), Some(0));
    assert_eq!(check(&["--model", "kv", &file("kv/c10-bad.txt")]).status.code(), Some(1));
    // One invalid file makes the whole run invalid.
    let both = check(&[&file("kv/c01-ok.txt"), &file("kv/c01-bad.txt")]);
    assert_eq!(both.status.code(), Some(1));
}

#[test]
fn a_large_history_lists_only_its_bad_keys() {
    let dir = shared().join("data/porcupine");
    // c50-bad: 10 keys; list every key there. A generated 12-key history
    // with one bad key lists just that one.
    let mut text = String::new();
    for key in 0..12 {
        let value = if key == 5 { "\"stale\"" } else { "\"\"" };
        text.push_str(&format!("{{\"process\":{key},\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k{key}\",\"time_ns\":1}}\n"));
        text.push_str(&format!("{{\"process\":{key},\"type\":\"ok\",\"f\":\"get\",\"key\":\"k{key}\",\"value\":{value},\"time_ns\":2}}\n"));
    }
    let file = TempFile::new("twelve-keys.jsonl", &text);
    let output = check(&[file.path()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("key \"k5\": invalid"), "{out}");
    assert!(!out.contains("key \"k4\""), "{out}");
    assert!(out.contains("(11 keys not listed, all valid)"), "{out}");
    let c50 = check(&[dir.join("kv/c50-bad.txt").to_str().expect("utf-8")]);
    assert_eq!(c50.status.code(), Some(1));
}

#[test]
fn a_tiny_budget_answers_unknown() {
    let etcd = shared().join("data/porcupine/jepsen/etcd_002.log");
    let output = check(&["--budget-ms", "0", etcd.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(stdout(&output).contains("unknown"), "{}", stdout(&output));
}

#[test]
fn a_missing_file_is_a_one_line_error() {
    let output = check(&["no/such/history.jsonl"]);
    assert_one_line_error(&output, &["no/such/history.jsonl", "cannot read file"]);
}

#[test]
fn an_unknown_format_is_a_one_line_error() {
    let file = TempFile::new("prose.txt", "hello\nthis is not a history\n");
    let output = check(&[file.path()]);
    assert_one_line_error(&output, &[file.path(), "unknown history format"]);
}

#[test]
fn a_bad_line_is_named() {
    let file = TempFile::new(
        "bad-line.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null,\"time_ns\":1}\n{\"process\":0,\"type\":\"ok\",\"f\":\"read\"}\n",
    );
    let output = check(&[file.path()]);
    assert_one_line_error(&output, &[file.path(), "line 2", "not a history event"]);
}

#[test]
fn an_operation_the_model_cannot_check_is_named() {
    let file = TempFile::new(
        "bad-op.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":\"x\",\"time_ns\":1}\n{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":\"x\",\"time_ns\":2}\n",
    );
    let output = check(&["--model", "register", file.path()]);
    assert_one_line_error(&output, &[file.path(), "line 1", "register"]);
}

/// A default run's history: kv operations and list-append transactions,
/// each judged by its own checker, the verdict the worse of the two.
#[test]
fn a_history_mixing_transactions_into_kv_gets_both_checkers() {
    let kv = [
        r#"{"process":0,"type":"invoke","f":"put","key":"kv-0","value":"v1","time_ns":1}"#,
        r#"{"process":0,"type":"ok","f":"put","key":"kv-0","value":"v1","time_ns":2}"#,
        r#"{"process":0,"type":"invoke","f":"get","key":"kv-0","value":null,"time_ns":3}"#,
        r#"{"process":0,"type":"ok","f":"get","key":"kv-0","value":"v1","time_ns":4}"#,
    ];
    let txn = |process: u32, time_ns: u32, invoke: &str, ok: &str| {
        [
            format!(r#"{{"process":{process},"type":"invoke","f":"txn","value":{invoke},"time_ns":{time_ns}}}"#),
            format!(r#"{{"process":{process},"type":"ok","f":"txn","value":{ok},"time_ns":{}}}"#, time_ns + 1),
        ]
    };
    let appended = txn(1, 5, r#"[["append",0,1]]"#, r#"[["append",0,1]]"#);
    let read = |list: &str| txn(1, 7, r#"[["r",0,null]]"#, &format!(r#"[["r",0,{list}]]"#));
    let history = |list: &str| [kv.map(String::from).to_vec(), appended.to_vec(), read(list).to_vec()].concat().join("\n") + "\n";
    let valid = TempFile::new("mixed.jsonl", &history("[1]"));
    let output = check(&["--format", "json", valid.path()]);
    assert_eq!(output.status.code(), Some(0), "{}{}", stdout(&output), stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let file = &report["files"][0];
    assert_eq!(file["result"]["keys"].as_array().map(Vec::len), Some(1), "the kv key alone: {file:#}");
    assert_eq!(file["transactions"]["committed"], 2, "{file:#}");
    // A read that misses an append completed before it began: a real-time
    // cycle, which only the transaction checker sees.
    let stale = TempFile::new("mixed-stale.jsonl", &history("[]"));
    let output = check(&[stale.path()]);
    assert_eq!(output.status.code(), Some(1), "{}{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).contains("list-append transactions"), "{}", stdout(&output));
    assert!(stdout(&output).contains("valid (kv,"), "the kv part is valid: {}", stdout(&output));
}

#[test]
fn an_unknown_model_is_a_one_line_error() {
    let output = check(&["--model", "queue", "checkers/examples/cas-register.jsonl"]);
    assert_one_line_error(&output, &["unknown model \"queue\""]);
}

#[test]
fn an_empty_file_is_an_error() {
    let file = TempFile::new("empty.jsonl", "");
    let output = check(&[file.path()]);
    assert_one_line_error(&output, &[file.path(), "empty history"]);
}

#[test]
fn an_error_in_one_file_still_checks_the_others() {
    let output = check(&["checkers/examples/cas-register.jsonl", "no/such/file"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stdout(&output).contains("cas-register.jsonl: valid"), "{}", stdout(&output));
    assert!(Path::new(&workspace()).join("checkers/examples/cas-register.jsonl").exists());
}

/// `faultline bench check` on a small corpus under `<shared>/data/porcupine`
/// built from two shared kv files and the given expected verdicts.
fn bench_check(name: &str, expected: &[(&str, bool)]) -> Output {
    let shared_copy = std::env::temp_dir().join(format!("faultline-bench-check-{name}-{}", std::process::id()));
    let corpus = shared_copy.join("data/porcupine");
    std::fs::create_dir_all(corpus.join("kv")).expect("temp corpus");
    let mut table = String::from("file\tmodel\tlinearizable\n");
    for (file, linearizable) in expected {
        std::fs::copy(shared().join("data/porcupine").join(file), corpus.join(file)).expect("shared kv file");
        table.push_str(&format!("{file}\tkv\t{linearizable}\n"));
    }
    std::fs::write(corpus.join("expected.tsv"), table).expect("expected.tsv");
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["bench", "check", "--runs", "1", "--ops", "0"])
        .env("FAULTLINE_SHARED", &shared_copy)
        .output()
        .expect("faultline runs");
    let _ = std::fs::remove_dir_all(&shared_copy);
    output
}

#[test]
fn bench_check_totals_the_kv_files_and_passes_when_verdicts_match() {
    let output = bench_check("match", &[("kv/c01-ok.txt", true), ("kv/c01-bad.txt", false)]);
    assert_eq!(output.status.code(), Some(0), "{}\n{}", stdout(&output), stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("kv/c01-ok.txt"), "each kv file is listed: {out}");
    assert!(out.contains("kv: 2 files, total "), "the kv files get a total: {out}");
    assert!(out.contains("verdicts differing from expected.tsv: 0"), "{out}");
}

#[test]
fn bench_check_exits_3_naming_a_verdict_that_differs_from_expected() {
    let output = bench_check("mismatch", &[("kv/c01-ok.txt", false), ("kv/c01-bad.txt", false)]);
    assert_eq!(output.status.code(), Some(3), "{}\n{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).contains("MISMATCH kv/c01-ok.txt: valid (expected invalid)"), "{}", stdout(&output));
    let err = stderr(&output);
    assert!(err.contains("1 corpus verdicts differ from expected.tsv"), "{err}");
    assert!(err.contains("kv/c01-ok.txt") && !err.contains("c01-bad"), "only the differing file is named: {err}");
}

/// A small slice of the generated part: both formats, both verdicts, each
/// file also checked as a whole process (whose exit code says the verdict)
/// beside the I/O limit.
#[test]
fn bench_check_generates_histories_and_checks_them_as_a_process() {
    let dir = std::env::temp_dir().join(format!("faultline-bench-generated-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let shared_copy = dir.join("shared");
    let corpus = shared_copy.join("data/porcupine");
    std::fs::create_dir_all(&corpus).expect("temp corpus");
    std::fs::write(corpus.join("expected.tsv"), "file\tmodel\tlinearizable\n").expect("expected.tsv");
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["bench", "check", "--runs", "1", "--ops", "3000", "--keys", "20", "--clients", "4", "--process-runs", "1", "--dir"])
        .arg(&dir)
        .env("FAULTLINE_SHARED", &shared_copy)
        .output()
        .expect("faultline runs");
    let leftovers: Vec<_> = std::fs::read_dir(&dir).expect("dir").flatten().filter(|e| e.path() != shared_copy).collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(0), "{}\n{}", stdout(&output), stderr(&output));
    let out = stdout(&output);
    for format in ["edn", "jsonl"] {
        assert!(out.contains(&format!("{format:<5} linearizable")) && out.contains(&format!("{format:<5} one stale read")), "{out}");
    }
    assert_eq!(out.matches("MiB -> valid").count(), 2, "{out}");
    assert_eq!(out.matches("MiB -> invalid").count(), 2, "{out}");
    assert_eq!(out.matches("peak memory").count(), 8, "in process and as a process, for each file: {out}");
    assert_eq!(out.matches(", exit 0").count(), 2, "{out}");
    assert_eq!(out.matches(", exit 1").count(), 2, "{out}");
    assert_eq!(out.matches("read(2) into memory").count(), 4, "{out}");
    assert!(leftovers.is_empty(), "generated files are removed: {leftovers:?}");
}

/// A history of transactions gets the transaction checker: its anomalies in
/// words, the verdict under the model asked for, one-line errors.
#[test]
fn transaction_histories_are_checked_under_a_consistency_model() {
    let skew = "checkers/tests/data/txn-g-single.edn";
    let strict = check(&[skew]);
    assert_eq!(strict.status.code(), Some(1), "{}", stderr(&strict));
    let text = stdout(&strict);
    assert!(text.contains("list-append transactions under strict-serializable"), "{text}");
    assert!(text.contains("G-single: T") && text.contains("strongest models still possible: read-committed"), "{text}");
    let weak = check(&[skew, "--consistency-model", "read-committed"]);
    assert_eq!(weak.status.code(), Some(0), "{}", stdout(&weak));
    assert!(stdout(&weak).contains("(allowed by the model)"));
    let json = check(&[skew, "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["files"][0]["transactions"]["anomalies"][0]["kind"], "G-single");
    let bogus = check(&[skew, "--consistency-model", "linearizable"]);
    assert_eq!(bogus.status.code(), Some(3));
    assert_eq!(stderr(&bogus).lines().count(), 1, "{}", stderr(&bogus));
    let registers = check(&["checkers/tests/data/txn-corpus/rw-register-write-skew.edn"]);
    assert_eq!(registers.status.code(), Some(1), "{}", stderr(&registers));
    assert!(stdout(&registers).contains("rw-register transactions") && stdout(&registers).contains("G2-item"));
    let page = std::env::temp_dir().join(format!("faultline-txn-report-{}.html", std::process::id()));
    let reported = check(&["checkers/tests/data/txn-g-single.jsonl", "--report", page.to_str().unwrap()]);
    assert_eq!(reported.status.code(), Some(1), "{}", stderr(&reported));
    let html = std::fs::read_to_string(&page).unwrap();
    let _ = std::fs::remove_file(&page);
    assert!(html.contains("G-single: T") && html.contains(": process "), "the anomaly and its transactions on the timeline");
    let not_txn = check(&["checkers/examples/cas-register.jsonl", "--model", "rw-register"]);
    assert_eq!(not_txn.status.code(), Some(3));
    assert!(stderr(&not_txn).contains("--model rw-register checks transactions"), "{}", stderr(&not_txn));
}

/// EDN as Knossos and older Jepsen tools write it (one vector of maps over
/// many lines, comments, several maps to a line) is read for single-key
/// models too, and gives what the one-map-per-line form gives.
#[test]
fn a_vector_of_op_maps_over_many_lines_is_checked_like_one_map_per_line() {
    let vector = check(&["checkers/tests/data/cas-register-vector.edn", "--model", "cas-register", "--format", "json"]);
    let lines = check(&["checkers/tests/data/cas-register-lines.edn", "--model", "cas-register", "--format", "json"]);
    assert_eq!(vector.status.code(), Some(0), "{}", stderr(&vector));
    let read = |output: &Output| -> serde_json::Value { serde_json::from_slice(&output.stdout).unwrap() };
    let (vector, lines) = (read(&vector), read(&lines));
    assert_eq!(vector["files"][0]["format"], "edn");
    assert_eq!(vector["files"][0]["result"]["op_count"], lines["files"][0]["result"]["op_count"]);
    assert_eq!(vector["files"][0]["verdict"], lines["files"][0]["verdict"]);
}
