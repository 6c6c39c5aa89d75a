//! The checkers' results in words: for a non-linearizable key, the last
//! consistent state, the operation that could not be ordered and the ones
//! it raced with; for durability, each lost write with its invoke and ack
//! times and the faults in force then. The same findings feed the page, the
//! timeline highlights and the JUnit failure text.
use std::fmt::Write;

use faultline_checkers::op::OpSummary;
use faultline_checkers::bank::BankReport;
use faultline_checkers::txn::{EdgeKind, TxnKind, TxnReport};
use faultline_checkers::{CheckResult, DurabilityResult, KeyResult, Verdict};

use super::timeline::Timeline;
use crate::cluster::StateDigest;
use crate::fields::human_ms;
use crate::verdict::{Check, CheckDetails, Convergence};

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
    /// A transaction of an anomaly's cycle.
    Cycle,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Stuck => "stuck",
            Role::Concurrent => "concurrent",
            Role::Prefix => "prefix",
            Role::Lost => "lost",
            Role::Witness => "witness",
            Role::Cycle => "cycle",
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
    /// The wall-clock time of the invocation, when the history has one.
    pub invoke_wall: Option<String>,
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
    fn new(check: &Check, title: String) -> Finding {
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
        let wall = self.invoke_wall.as_ref().map_or(String::new(), |wall| format!(" ({wall})"));
        format!(
            "key {:?} element {}: invoked at {}{wall} (line {}), acknowledged at {}, missing from the read on line {}; faults then: {}",
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

/// Findings of every check that is not valid.
pub fn findings(checks: &[Check], timeline: &Timeline) -> Vec<Finding> {
    let mut out = Vec::new();
    for check in checks.iter().filter(|c| c.verdict != Verdict::Valid) {
        match &check.details {
            CheckDetails::Linearizable(result) => linear_findings(check, result, &mut out),
            CheckDetails::Durability(result) => out.push(durability_finding(check, result, timeline)),
            CheckDetails::Convergence(convergence) => out.push(convergence_finding(check, convergence)),
            CheckDetails::Transactions(report) => txn_findings(check, report, timeline, &mut out),
            CheckDetails::Bank(report) => bank_findings(check, report, &mut out),
            CheckDetails::Notes { lines } => {
                let mut finding = generic_finding(check);
                finding.sentences.extend(lines.iter().cloned());
                out.push(finding);
            }
            _ => out.push(generic_finding(check)),
        }
    }
    out
}

/// One finding per anomaly (the first [`KEYS_EXPLAINED_MAX`]): its
/// explanation, its cycle as steps between transactions, and each
/// transaction placed on the timeline (T<n> is the one invoked on history
/// line n).
fn txn_findings(check: &Check, report: &TxnReport, timeline: &Timeline, out: &mut Vec<Finding>) {
    let (wrote, written) = match report.workload {
        TxnKind::ListAppend => ("appended", "append"),
        TxnKind::RwRegister => ("wrote", "write"),
    };
    for anomaly in report.anomalies.iter().take(KEYS_EXPLAINED_MAX) {
        let names: Vec<String> = anomaly.txns.iter().map(|id| format!("T{id}")).collect();
        let mut finding = Finding::new(check, format!("{}: {}", anomaly.kind.name(), names.join(", ")));
        finding.sentences.push(anomaly.explanation.clone());
        if !anomaly.cycle.is_empty() {
            let steps = anomaly.cycle.iter().map(|step| {
                let kind = match step.kind {
                    EdgeKind::Ww => format!("ww: {wrote} before it"),
                    EdgeKind::Wr => "wr: was read by it".to_string(),
                    EdgeKind::Rw => format!("rw: read before its {written}"),
                    EdgeKind::Process => return format!("T{} → T{} (process: ran before it on the same process)", step.from, step.to),
                    EdgeKind::Realtime => return format!("T{} → T{} (real time: completed before it was invoked)", step.from, step.to),
                };
                format!("T{} → T{} ({kind}, key {} value {})", step.from, step.to, step.key, step.value)
            });
            finding.op_lists.push(("cycle".into(), steps.collect()));
        }
        let lines: Vec<u32> = anomaly.txns.iter().filter_map(|id| u32::try_from(*id).ok()).collect();
        let placed: Vec<String> = lines.iter().filter_map(|line| txn_on_timeline(timeline, *line)).collect();
        if !placed.is_empty() {
            finding.op_lists.push(("on the timeline".into(), placed));
        }
        finding.marks.extend(lines.into_iter().map(|line| Mark { line, role: Role::Cycle }));
        out.push(finding);
    }
    if report.anomalies.len() > KEYS_EXPLAINED_MAX {
        let mut more = Finding::new(check, format!("… and {} more anomalies", report.anomalies.len() - KEYS_EXPLAINED_MAX));
        more.sentences.push("Every anomaly is in results.json.".into());
        out.push(more);
    }
    if report.anomalies.is_empty() {
        out.push(generic_finding(check));
    }
}

/// One finding per wrong read of the balances (the first
/// [`KEYS_EXPLAINED_MAX`]), the read outlined on the timeline.
fn bank_findings(check: &Check, report: &BankReport, out: &mut Vec<Finding>) {
    for bad in report.bad.iter().take(KEYS_EXPLAINED_MAX) {
        let mut finding = Finding::new(check, format!("the read on line {} does not add up", bad.line));
        finding.sentences.push(format!("{}.", bad.explanation));
        finding.sentences.push(format!(
            "The bank holds {} across accounts 0 to {}; transfers move money and never make or destroy it.",
            report.config.total,
            report.config.accounts.saturating_sub(1)
        ));
        finding.marks.push(Mark { line: bad.line, role: Role::Witness });
        out.push(finding);
    }
    if report.bad_count > KEYS_EXPLAINED_MAX {
        let mut more = Finding::new(check, format!("… and {} more wrong reads", report.bad_count - KEYS_EXPLAINED_MAX));
        more.sentences.push("The first of them are in results.json.".into());
        out.push(more);
    }
    if report.bad.is_empty() {
        out.push(generic_finding(check));
    }
}

/// `T<line>`: when it was invoked and completed, by which process and
/// node, and the faults in force when it was invoked.
fn txn_on_timeline(timeline: &Timeline, line: u32) -> Option<String> {
    let op = timeline.op_at_line(line)?;
    let at = |ns: u64| format!("{:.3} s", timeline.ms(ns) / 1e3);
    let done = op.return_ns.map_or("never completed".to_string(), |ns| format!("completed {}", at(ns)));
    let faults = timeline.faults_at(op.call_ns);
    let faults = if faults.is_empty() { String::new() } else { format!("; faults then: {}", faults.join(", ")) };
    Some(format!("T{line}: process {}, invoked {}, {done}{faults}", op.process, at(op.call_ns)))
}

fn linear_findings(check: &Check, result: &CheckResult, out: &mut Vec<Finding>) {
    let bad: Vec<&KeyResult> = result.keys.iter().filter(|k| k.verdict != Verdict::Valid).collect();
    for key in bad.iter().take(KEYS_EXPLAINED_MAX) {
        out.push(key_finding(check, key));
    }
    if bad.len() > KEYS_EXPLAINED_MAX {
        let mut more = Finding::new(check, format!("… and {} more keys", bad.len() - KEYS_EXPLAINED_MAX));
        more.sentences.push("Every key's verdict is in the table above and in results.json.".into());
        out.push(more);
    }
    if bad.is_empty() {
        out.push(generic_finding(check));
    }
}

fn key_finding(check: &Check, key: &KeyResult) -> Finding {
    let name = &key.key;
    let mut finding = Finding::new(check, format!("key {name:?} is {}", key.verdict.name()));
    if let Some(reason) = &key.reason {
        finding.sentences.push(format!("The checker says: {reason}."));
    }
    let Some(example) = &key.counterexample else { return finding };
    let (prefix_len, state) = (example.prefix_len, &example.state);
    let stuck = &example.stuck_op;
    // The checker lists the stuck operation among the concurrent ones.
    let concurrent: Vec<&OpSummary> = example.concurrent.iter().filter(|op| op.line != stuck.line).collect();
    // The operations just before the stuck one say what the state was
    // built from; the whole prefix would bury them.
    let whole_tail = &example.prefix_tail;
    let tail = &whole_tail[whole_tail.len().saturating_sub(PREFIX_TAIL_SHOWN_MAX)..];
    finding.sentences.push(format!(
        "The first {prefix_len} operations of key {name:?} can be put in one order that explains every result; after them the last consistent state is {state}."
    ));
    finding.sentences.push(match concurrent.len() {
        0 => format!(
            "Then {} returned, with nothing else running at the same time, and its result cannot follow from {state}: the system answered something no sequential execution allows.",
            stuck.text
        ),
        others => format!(
            "Then {} returned, and no order of it and the {others} other operations running at the same time can produce its result from {state}: the system answered something no sequential execution allows.",
            stuck.text
        ),
    });
    finding.op_lists.push(("could not be ordered".into(), vec![stuck.text.clone()]));
    if !concurrent.is_empty() {
        finding.op_lists.push(("running at the same time".into(), concurrent.iter().map(|op| op.text.clone()).collect()));
    }
    finding.op_lists.push(("last operations of the consistent prefix".into(), tail.iter().map(|op| op.text.clone()).collect()));
    finding.marks.extend(tail.iter().map(|op| Mark { line: op.line, role: Role::Prefix }));
    finding.marks.extend(concurrent.iter().map(|op| Mark { line: op.line, role: Role::Concurrent }));
    finding.marks.push(Mark { line: stuck.line, role: Role::Stuck });
    finding
}

fn durability_finding(check: &Check, result: &DurabilityResult, timeline: &Timeline) -> Finding {
    if result.verdict == Verdict::Unknown {
        let mut finding = Finding::new(check, crate::verdict::durability::unconfirmed(result));
        finding.sentences.push(
            "A write is shown kept only by a read that starts after it was acknowledged and returns; a read that failed did not happen. These keys had none:".into(),
        );
        let keys = result.unconfirmed.iter().map(|key| format!("key {:?}: {} of {} acknowledged never confirmed", key.key, key.never_read, key.acknowledged));
        finding.op_lists.push(("keys never confirmed".into(), keys.collect()));
        return finding;
    }
    let mut finding = Finding::new(check, crate::verdict::durability::problems(&result.counts));
    finding.sentences.push(
        "An acknowledged write must show in every read that starts after its acknowledgement; these are missing (first examples):"
            .into(),
    );
    for example in &result.examples.lost {
        let op = timeline.op_at_line(example.write_line);
        let invoke_ns = op.map(|op| op.call_ns);
        let ack_ns = op.and_then(|op| op.return_ns);
        let mut faults: Vec<&str> = invoke_ns.map(|ns| timeline.faults_at(ns)).unwrap_or_default();
        faults.extend(ack_ns.map(|ns| timeline.faults_at(ns)).unwrap_or_default());
        faults.dedup();
        finding.lost.push(LostWrite {
            key: example.key.clone(),
            element: example.element.clone(),
            write_line: example.write_line,
            read_line: example.read_line,
            invoke_ms: invoke_ns.map(|ns| timeline.ms(ns)),
            ack_ms: ack_ns.map(|ns| timeline.ms(ns)),
            invoke_wall: invoke_ns.and_then(|ns| timeline.wall_clock(ns)),
            faults: if faults.is_empty() { "none".into() } else { faults.join(", ") },
        });
        finding.marks.push(Mark { line: example.write_line, role: Role::Lost });
        if example.read_line > 0 {
            finding.marks.push(Mark { line: example.read_line, role: Role::Witness });
        }
    }
    finding
}

/// A check the report has no special words for: its reason, and its
/// details as they are stored in results.json.
/// Each node's position and digest, in words.
fn convergence_finding(check: &Check, convergence: &Convergence) -> Finding {
    let title = check.reason_text().unwrap_or_else(|| format!("{} is {}", check.name, check.verdict.name()));
    let mut finding = Finding::new(check, title);
    finding.sentences.push(format!(
        "After the final reads every node was asked for a digest of its applied state, {} time(s) over {} (bound {}).",
        convergence.rounds,
        human_ms(convergence.waited_ms),
        human_ms(convergence.timeout_ms)
    ));
    for node in &convergence.nodes {
        finding.sentences.push(match &node.digest {
            None => format!("{} did not answer.", node.node),
            Some(StateDigest { position: Some(position), digest }) => format!("{} at position {position}: {digest}.", node.node),
            Some(StateDigest { position: None, digest }) => format!("{}: {digest}.", node.node),
        });
    }
    if !convergence.removed_by_system.is_empty() {
        finding.sentences.push(format!(
            "Not compared: {}, which the system no longer reported as a member (a removal that committed after the harness gave up on it).",
            convergence.removed_by_system.join(", ")
        ));
    }
    finding
}

fn generic_finding(check: &Check) -> Finding {
    let title = check.reason_text().unwrap_or_else(|| format!("{} is {}", check.name, check.verdict.name()));
    let mut finding = Finding::new(check, title);
    if matches!(check.details, CheckDetails::Failed | CheckDetails::Notes { .. }) {
        return finding;
    }
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
    use crate::report::timeline::tests::timeline;
    use faultline_checkers::durability::{Counts, Example, Examples};
    use faultline_checkers::{Counterexample, ModelName};

    fn op(line: u32, text: &str) -> OpSummary {
        OpSummary { line, text: text.into() }
    }

    fn key(name: &str, verdict: Verdict, counterexample: Option<Counterexample>) -> KeyResult {
        KeyResult { key: name.into(), verdict, op_count: 4, configurations: 1, reason: Some("no linearization".into()), counterexample }
    }

    #[test]
    fn a_counterexample_reads_as_sentences_and_marks_its_operations() {
        let example = Counterexample {
            key: "b".into(),
            prefix_len: 2,
            prefix_tail: vec![op(1, "p0 write 1 -> ok (line 1)")],
            stuck_op: op(5, "p2 read nil -> ok 3 (line 5)"),
            concurrent: vec![op(5, "p2 read nil -> ok 3 (line 5)"), op(3, "p1 write 2 -> unknown (line 3)")],
            state: "1".into(),
        };
        let result = CheckResult {
            verdict: Verdict::Invalid,
            model: ModelName::new("register"),
            op_count: 7,
            elapsed_ms: 1,
            keys: vec![key("a", Verdict::Valid, None), key("b", Verdict::Invalid, Some(example))],
        };
        let check = crate::verdict::linearizable::to_check("linearizable-register".into(), Ok(result));
        let found = findings(&[check], &Timeline::default());
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
        let t = timeline(&[
            r#"{"process":"nemesis","type":"invoke","f":"pause-leader","value":null,"time_ns":0}"#,
            r#"{"process":0,"type":"invoke","f":"add","value":9,"time_ns":1000000}"#,
            r#"{"process":0,"type":"ok","f":"add","value":9,"time_ns":3000000}"#,
        ]);
        let lost = Example { key: "".into(), element: "9".into(), write_line: 2, read_line: 7 };
        let result = DurabilityResult {
            verdict: Verdict::Invalid,
            counts: Counts { lost: 1, acknowledged: 1, ..Counts::default() },
            examples: Examples { lost: vec![lost], ..Examples::default() },
            unconfirmed: Vec::new(),
            unconfirmed_key_count: 0,
        };
        let check = Check { name: "durability".into(), verdict: Verdict::Invalid, reason: None, details: CheckDetails::Durability(result) };
        let found = findings(&[check], &t);
        assert_eq!(found[0].title, "1 lost, 0 stale, 0 unexpected of 1 acknowledged");
        let lost = &found[0].lost[0];
        assert_eq!((lost.invoke_ms, lost.ack_ms), (Some(1.0), Some(3.0)));
        assert_eq!(lost.faults, "pause-leader");
        assert!(lost.sentence().contains("missing from the read on line 7"), "{}", lost.sentence());
    }

    #[test]
    fn other_checks_are_explained_by_their_reason() {
        let check = Check::failed("liveness", "no write succeeded within 10 s of the final heal");
        let found = findings(&[check], &Timeline::default());
        assert_eq!(found[0].title, "no write succeeded within 10 s of the final heal");
    }

    #[test]
    fn diverged_replicas_are_listed_node_by_node() {
        let digest = |position, digest: &str| Some(StateDigest { position, digest: digest.into() });
        let nodes = [("n1", digest(Some(9), "a")), ("n2", digest(Some(9), "b")), ("n3", digest(Some(9), "a"))];
        let convergence = Convergence {
            timeout_ms: 10_000,
            waited_ms: 400,
            rounds: 3,
            nodes: nodes.into_iter().map(|(node, digest)| crate::verdict::convergence::NodeDigest { node: node.into(), digest }).collect(),
            settled: true,
            removed_by_system: Vec::new(),
        };
        let found = findings(&[convergence.check()], &Timeline::default());
        assert_eq!(found[0].title, "convergence: replicas disagree: n1 at 9: a, n2 at 9: b, n3 at 9: a");
        assert!(found[0].sentences[0].contains("3 time(s)"), "{:?}", found[0].sentences);
        assert_eq!(found[0].sentences[1..], ["n1 at position 9: a.", "n2 at position 9: b.", "n3 at position 9: a."]);
    }
}
