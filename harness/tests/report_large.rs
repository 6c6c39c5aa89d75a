//! A million-operation history (a tenth of that in debug builds) still
//! gives a bounded report that keeps the planted counterexample on its
//! timeline, and that a browser renders. Times are printed, not asserted.
mod report_support;

use std::io::Write;
use std::time::Instant;

use report_support::*;
use faultline::verdict::linearizable;
use faultline_checkers::op::OpSummary;
use faultline_checkers::{CheckResult, Counterexample, KeyResult, ModelName, Verdict};

const PROCESSES: u64 = 20;
const KEYS: u64 = 50;
/// A page of at most this size opens in seconds.
const REPORT_BYTES_MAX: u64 = 8 << 20;

fn op_count() -> u64 {
    if cfg!(debug_assertions) { 100_000 } else { 1_000_000 }
}

/// Writes the history; returns the invocation line of op `planted`.
fn write_history(path: &std::path::Path, ops: u64, planted: u64) -> u32 {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut line = 0u32;
    let mut planted_line = 0;
    for i in 0..ops {
        let process = i % PROCESSES;
        let key = (i * 7) % KEYS;
        let t = i * 50_000;
        if i % 100_000 == 0 {
            writeln!(out, r#"{{"process":"nemesis","type":"invoke","f":"partition-halves","value":null,"time_ns":{t}}}"#).unwrap();
            writeln!(out, r#"{{"process":"nemesis","type":"ok","f":"heal","value":null,"time_ns":{}}}"#, t + 2_000_000_000).unwrap();
            line += 2;
        }
        writeln!(out, r#"{{"process":{process},"type":"invoke","f":"write","key":"k{key}","value":{i},"time_ns":{t}}}"#).unwrap();
        line += 1;
        if i == planted {
            planted_line = line;
        }
        let kind = if i % 97 == 0 { "info" } else { "ok" };
        writeln!(out, r#"{{"process":{process},"type":"{kind}","f":"write","key":"k{key}","value":{i},"time_ns":{}}}"#, t + 40_000 + (i % 13) * 100_000).unwrap();
        line += 1;
    }
    out.flush().unwrap();
    planted_line
}

#[test]
fn a_million_operations_give_a_bounded_report_with_the_counterexample() {
    let dir = kept_dir("large");
    let ops = op_count();
    let planted = ops * 9 / 10;
    let started = Instant::now();
    let line = write_history(&dir.join("history.jsonl"), ops, planted);
    eprintln!("generated {ops} operations in {:?}", started.elapsed());
    let stuck = OpSummary { line, text: format!("p{} write {planted} -> ok (line {line})", planted % PROCESSES) };
    let example = Counterexample { key: "k0".into(), prefix_len: 10, prefix_tail: vec![], stuck_op: stuck, concurrent: vec![], state: "7".into() };
    let key = KeyResult {
        key: "k0".into(),
        verdict: Verdict::Invalid,
        op_count: ops / KEYS,
        configurations: 1,
        reason: Some("planted".into()),
        counterexample: Some(example),
    };
    let result = CheckResult { verdict: Verdict::Invalid, model: ModelName::new("register"), op_count: ops, elapsed_ms: 1, keys: vec![key] };
    write_results(&dir, "large", 1, vec![linearizable::to_check("linearizable-register".into(), Ok(result))]);
    let started = Instant::now();
    let output = faultline().arg("report").arg(&dir).output().unwrap();
    let render = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let bytes = std::fs::metadata(dir.join("report.html")).unwrap().len();
    eprintln!("report of {ops} operations: {bytes} bytes in {render:?} ({stdout})");
    assert!(bytes <= REPORT_BYTES_MAX, "report is {bytes} bytes");
    assert!(stdout.contains(&format!("{ops} operations")), "{stdout}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let row = format!("\"write {planted} -> {planted}\",\"stuck\"]");
    assert!(html.contains(&row), "the planted operation is not on the timeline as stuck");
    assert!(html.contains("a window around the first highlighted operation"), "the timeline does not say it is a window");
    let Some(chromium) = chromium_or_skip("large report") else { return };
    let started = Instant::now();
    let dom = browser(&chromium, &dir.join("profile"), &dir.join("report.html"), &["--dump-dom".to_string()]);
    eprintln!("chromium loaded, drew and dumped the page in {:?}", started.elapsed());
    assert!(!dom.stderr.contains("Uncaught"), "{}", dom.stderr);
    assert!(dom.stdout.contains("data-rendered=\"yes\""), "the report script did not finish");
    assert!(dom_number(&dom.stdout, "timeline", "data-marked").unwrap_or(0) >= 1, "the planted operation is not highlighted");
}
