//! The checkers' results in words: for a non-linearizable key, the last
//! consistent state, the operation that could not be ordered and the ones
//! it raced with; for durability, each lost write with its invoke and ack
//! times and the faults in force then. The same findings feed the page, the
//! timeline highlights and the JUnit failure text.
use std::collections::HashSet;
use std::fmt::Write;

use faultline_checkers::Verdict;
use serde_json::Value;

use super::digest::Digest;
use super::input::CheckView;

/// Non-valid keys explained per checker; the rest are counted.
pub const KEYS_EXPLAINED_MAX: usize = 20;
/// Operations of the consistent prefix listed (and outlined), the last ones.
const PREFIX_TAIL_SHOWN_MAX: usize = 8;
/// Raw details shown for checkers the report has no words for.
const RAW_DETAILS_CHARS_MAX: usize = 4000;

/// Why an operation is highlighted on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Returned before it could be linearized.
    Stuck,
    /// Running at the same time as the stuck operation.
    Concurrent,
    /// The end of the longest linearizable prefix.
    Prefix,
    /// An acknowledged write that later reads do not show.
    Lost,
    /// The read that shows a write is lost.
    Witness,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Stuck => "stuck",
            Role::Concurrent => "concurrent",
            Role::Prefix => "prefix",
            Role::Lost => "lost",
            Role::Witness => "witness",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Mark {
    pub line: u32,
    pub role: Role,
}

/// An acknowledged write that is gone, with when it happened.
#[derive(Debug, Clone)]
pub struct LostWrite {
    pub key: String,
    pub element: String,
    pub write_line: u32,
    pub read_line: u32,
    pub invoke_ms: Option<f64>,
    pub ack_ms: Option<f64>,
    pub faults: String,
}

/// One thing a checker found, in words.
#[derive(Debug, Clone)]
pub struct Finding {
    pub checker: String,
    pub verdict: Verdict,
    pub title: String,
    pub sentences: Vec<String>,
    /// Labelled lists of operations (`p3 read -> ok 2 (line 40)`).
    pub op_lists: Vec<(String, Vec<String>)>,
    pub marks: Vec<Mark>,
    pub lost: Vec<LostWrite>,
}

impl Finding {
    fn new(check: &CheckView, title: String) -> Finding {
        Finding {
            checker: check.name.clone(),
            verdict: check.verdict,
            title,
            sentences: Vec::new(),
            op_lists: Vec::new(),
            marks: Vec::new(),
            lost: Vec::new(),
        }
    }

    /// Plain text, for JUnit failures and terminals.
    pub fn text(&self) -> String {
        let mut out = format!("{}\n", self.title);
        for sentence in &self.sentences {
            let _ = writeln!(out, "{sentence}");
        }
        for (label, ops) in &self.op_lists {
            let _ = writeln!(out, "{label}:");
            for op in ops {
                let _ = writeln!(out, "  {op}");
            }
        }
        for lost in &self.lost {
            let _ = writeln!(out, "  {}", lost.sentence());
        }
        out
    }
}

impl LostWrite {
    pub fn sentence(&self) -> String {
        let at = |ms: Option<f64>| ms.map_or("?".to_string(), |ms| format!("{:.3} s", ms / 1e3));
        format!(
            "key {:?} element {}: invoked at {} (line {}), acknowledged at {}, missing from the read on line {}; faults then: {}",
            self.key,
            self.element,
            at(self.invoke_ms),
            self.write_line,
            at(self.ack_ms),
            self.read_line,
            self.faults
        )
    }
}

/// The invocation lines the findings point at, to index while reading.
pub fn wanted_lines(checks: &[CheckView]) -> HashSet<u32> {
    let mut lines = HashSet::new();
    for check in checks {
        for example in counterexamples(&check.details) {
            let ops = example.get("prefix_tail").and_then(Value::as_array).into_iter().flatten();
            let concurrent = example.get("concurrent").and_then(Value::as_array).into_iter().flatten();
            for op in ops.chain(concurrent).chain(example.get("stuck_op")) {
                lines.extend(op.get("line").and_then(Value::as_u64).map(|l| l as u32));
            }
        }
        for lost in lost_examples(&check.details) {
            for field in ["write_line", "read_line"] {
                lines.extend(lost.get(field).and_then(Value::as_u64).filter(|&l| l > 0).map(|l| l as u32));
            }
        }
    }
    lines
}

/// Findings of every checker that is not valid.
pub fn findings(checks: &[CheckView], digest: &Digest) -> Vec<Finding> {
    let mut out = Vec::new();
    for check in checks.iter().filter(|c| c.verdict != Verdict::Valid) {
        let before = out.len();
        linear_findings(check, &mut out);
        durability_finding(check, digest, &mut out);
        if out.len() == before {
            out.push(generic_finding(check));
        }
    }
    out
}

fn counterexamples(details: &Value) -> impl Iterator<Item = &Value> {
    keys_of(details).filter_map(|key| key.get("counterexample")).filter(|c| !c.is_null())
}

fn keys_of(details: &Value) -> impl Iterator<Item = &Value> {
    details.get("keys").and_then(Value::as_array).into_iter().flatten()
}

fn lost_examples(details: &Value) -> impl Iterator<Item = &Value> {
    details.pointer("/examples/lost").and_then(Value::as_array).into_iter().flatten()
}

fn text_of(op: &Value) -> String {
    op.get("text").and_then(Value::as_str).unwrap_or("?").to_string()
}

fn line_of(op: &Value) -> Option<u32> {
    op.get("line").and_then(Value::as_u64).map(|l| l as u32)
}

fn linear_findings(check: &CheckView, out: &mut Vec<Finding>) {
    let bad: Vec<&Value> = keys_of(&check.details)
        .filter(|k| k.get("verdict").and_then(Value::as_str).is_some_and(|v| v != "valid"))
        .collect();
    for key in bad.iter().take(KEYS_EXPLAINED_MAX) {
        out.push(key_finding(check, key));
    }
    if bad.len() > KEYS_EXPLAINED_MAX {
        let mut more = Finding::new(check, format!("… and {} more keys", bad.len() - KEYS_EXPLAINED_MAX));
        more.sentences.push("Every key's verdict is in the table above and in results.json.".into());
        out.push(more);
    }
}

fn key_finding(check: &CheckView, key: &Value) -> Finding {
    let name = key.get("key").and_then(Value::as_str).unwrap_or("?");
    let verdict = key.get("verdict").and_then(Value::as_str).unwrap_or("?");
    let reason = key.get("reason").and_then(Value::as_str);
    let mut finding = Finding::new(check, format!("key {name:?} is {verdict}"));
    if let Some(reason) = reason {
        finding.sentences.push(format!("The checker says: {reason}."));
    }
    let Some(example) = key.get("counterexample").filter(|c| !c.is_null()) else { return finding };
    let prefix_len = example.get("prefix_len").and_then(Value::as_u64).unwrap_or(0);
    let state = example.get("state").and_then(Value::as_str).unwrap_or("?");
    let stuck = example.get("stuck_op").map(text_of).unwrap_or_default();
    let stuck_line = example.get("stuck_op").and_then(line_of);
    // The checker lists the stuck operation among the concurrent ones.
    let concurrent: Vec<&Value> = example
        .get("concurrent")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|op| line_of(op) != stuck_line)
        .collect();
    let whole_tail: Vec<&Value> = example.get("prefix_tail").and_then(Value::as_array).into_iter().flatten().collect();
    // The operations just before the stuck one say what the state was
    // built from; the whole prefix would bury them.
    let tail = &whole_tail[whole_tail.len().saturating_sub(PREFIX_TAIL_SHOWN_MAX)..];
    finding.sentences.push(format!(
        "The first {prefix_len} operations of key {name:?} can be put in one order that explains every result; after them the last consistent state is {state}."
    ));
    finding.sentences.push(match concurrent.len() {
        0 => format!(
            "Then {stuck} returned, with nothing else running at the same time, and its result cannot follow from {state}: the system answered something no sequential execution allows."
        ),
        others => format!(
            "Then {stuck} returned, and no order of it and the {others} other operations running at the same time can produce its result from {state}: the system answered something no sequential execution allows."
        ),
    });
    finding.op_lists.push(("could not be ordered".into(), vec![stuck]));
    if !concurrent.is_empty() {
        finding.op_lists.push(("running at the same time".into(), concurrent.iter().map(|op| text_of(op)).collect()));
    }
    finding.op_lists.push(("last operations of the consistent prefix".into(), tail.iter().map(|op| text_of(op)).collect()));
    let mut mark = |op: &Value, role| {
        if let Some(line) = line_of(op) {
            finding.marks.push(Mark { line, role });
        }
    };
    tail.iter().for_each(|op| mark(op, Role::Prefix));
    concurrent.iter().for_each(|op| mark(op, Role::Concurrent));
    if let Some(op) = example.get("stuck_op") {
        mark(op, Role::Stuck);
    }
    finding
}

fn durability_finding(check: &CheckView, digest: &Digest, out: &mut Vec<Finding>) {
    let Some(counts) = check.details.get("counts").filter(|_| check.details.get("examples").is_some()) else { return };
    let count = |field: &str| counts.get(field).and_then(Value::as_u64).unwrap_or(0);
    let mut finding = Finding::new(
        check,
        format!(
            "{} of {} acknowledged writes lost, {} stale, {} unexpected",
            count("lost"),
            count("acknowledged"),
            count("stale"),
            count("unexpected")
        ),
    );
    finding.sentences.push(
        "An acknowledged write must show in every read that starts after its acknowledgement; these are missing (first examples):"
            .into(),
    );
    for example in lost_examples(&check.details) {
        let write_line = example.get("write_line").and_then(Value::as_u64).unwrap_or(0) as u32;
        let op = digest.op_at_line(write_line);
        let invoke_ns = op.map(|op| op.call_ns);
        let ack_ns = op.and_then(|op| op.return_ns);
        let mut faults: Vec<&str> = invoke_ns.map(|ns| digest.faults_at(ns)).unwrap_or_default();
        faults.extend(ack_ns.map(|ns| digest.faults_at(ns)).unwrap_or_default());
        faults.dedup();
        finding.lost.push(LostWrite {
            key: example.get("key").and_then(Value::as_str).unwrap_or("?").to_string(),
            element: example.get("element").and_then(Value::as_str).unwrap_or("?").to_string(),
            write_line,
            read_line: example.get("read_line").and_then(Value::as_u64).unwrap_or(0) as u32,
            invoke_ms: invoke_ns.map(|ns| digest.ms(ns)),
            ack_ms: ack_ns.map(|ns| digest.ms(ns)),
            faults: if faults.is_empty() { "none".into() } else { faults.join(", ") },
        });
        finding.marks.push(Mark { line: write_line, role: Role::Lost });
        if let Some(read) = finding.lost.last().map(|l| l.read_line).filter(|&l| l > 0) {
            finding.marks.push(Mark { line: read, role: Role::Witness });
        }
    }
    out.push(finding);
}

fn generic_finding(check: &CheckView) -> Finding {
    let title = check.reason().unwrap_or_else(|| format!("{} is {}", check.name, check.verdict.name()));
    let mut finding = Finding::new(check, title);
    let mut raw = serde_json::to_string_pretty(&check.details).unwrap_or_default();
    if raw.len() > RAW_DETAILS_CHARS_MAX {
        let cut = (0..=RAW_DETAILS_CHARS_MAX).rev().find(|&i| raw.is_char_boundary(i)).unwrap_or(0);
        raw.truncate(cut);
        raw.push_str("\n… (cut; see results.json)");
    }
    finding.sentences.push(raw);
    finding
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::digest::Builder;
    use serde_json::json;

    fn op(line: u32, text: &str) -> Value {
        json!({ "line": line, "text": text })
    }

    #[test]
    fn a_counterexample_reads_as_sentences_and_marks_its_operations() {
        let details = json!({ "keys": [
            { "key": "a", "verdict": "valid", "op_count": 3 },
            { "key": "b", "verdict": "invalid", "op_count": 4, "reason": "no linearization",
              "counterexample": { "key": "b", "prefix_len": 2, "state": "1",
                "prefix_tail": [op(1, "p0 write 1 -> ok (line 1)")],
                "stuck_op": op(5, "p2 read nil -> ok 3 (line 5)"),
                "concurrent": [op(5, "p2 read nil -> ok 3 (line 5)"), op(3, "p1 write 2 -> unknown (line 3)")] } }
        ]});
        let check = CheckView { name: "linearizable-register".into(), verdict: Verdict::Invalid, details };
        assert_eq!(wanted_lines(std::slice::from_ref(&check)), [1, 3, 5].into_iter().collect());
        let found = findings(&[check], &Digest::default());
        assert_eq!(found.len(), 1, "only the invalid key is explained");
        let text = found[0].text();
        assert!(text.starts_with("key \"b\" is invalid"), "{text}");
        assert!(text.contains("last consistent state is 1"), "{text}");
        assert!(text.contains("the 1 other operations running at the same time"), "{text}");
        let roles: Vec<(u32, Role)> = found[0].marks.iter().map(|m| (m.line, m.role)).collect();
        assert_eq!(roles, vec![(1, Role::Prefix), (3, Role::Concurrent), (5, Role::Stuck)]);
    }

    #[test]
    fn a_lost_write_gets_its_times_and_the_fault_in_force() {
        let wanted: HashSet<u32> = [2].into_iter().collect();
        let mut builder = Builder::new(&wanted);
        let lines = [
            r#"{"process":"nemesis","type":"invoke","f":"pause-leader","value":null,"time_ns":0}"#,
            r#"{"process":0,"type":"invoke","f":"add","value":9,"time_ns":1000000}"#,
            r#"{"process":0,"type":"ok","f":"add","value":9,"time_ns":3000000}"#,
        ];
        for (i, line) in lines.iter().enumerate() {
            builder.push(line, i as u32 + 1);
        }
        let digest = builder.finish();
        let details = json!({ "verdict": "invalid",
            "counts": { "lost": 1, "acknowledged": 1, "stale": 0, "unexpected": 0 },
            "examples": { "lost": [{ "key": "", "element": "9", "write_line": 2, "read_line": 7 }] } });
        let check = CheckView { name: "durability".into(), verdict: Verdict::Invalid, details };
        let found = findings(&[check], &digest);
        assert_eq!(found[0].title, "1 of 1 acknowledged writes lost, 0 stale, 0 unexpected");
        let lost = &found[0].lost[0];
        assert_eq!((lost.invoke_ms, lost.ack_ms), (Some(1.0), Some(3.0)));
        assert_eq!(lost.faults, "pause-leader");
        assert!(lost.sentence().contains("missing from the read on line 7"), "{}", lost.sentence());
    }

    #[test]
    fn other_checkers_are_explained_by_their_reason() {
        let check = CheckView {
            name: "liveness".into(),
            verdict: Verdict::Invalid,
            details: json!({ "reason": "no write succeeded within 10 s of the final heal" }),
        };
        let found = findings(&[check], &Digest::default());
        assert_eq!(found[0].title, "no write succeeded within 10 s of the final heal");
    }
}
