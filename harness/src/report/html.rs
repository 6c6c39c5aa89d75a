//! The page: `templates/report.html` rendered with minijinja (which escapes
//! every value for HTML), with the stylesheet, the drawing script and the
//! data inlined, so the file opens anywhere offline. This module turns the
//! report's typed input into the plain rows the template shows.
use faultline_checkers::{KeyResult, Verdict};
use minijinja::Environment;
use serde::Serialize;

use super::explain::Finding;
use super::payload::Payload;
use super::timeline::Timeline;
use super::ReportInput;
use crate::verdict::{Check, CheckDetails};

const TEMPLATE: &str = include_str!("templates/report.html");
const STYLE: &str = include_str!("templates/report.css");
const SCRIPT: &str = include_str!("templates/report.js");
/// Per-key rows in the verdict table; valid keys past it are counted.
const KEY_ROWS_MAX: usize = 200;

#[derive(Serialize)]
struct Page<'a> {
    verdict_text: String,
    verdict_class: String,
    title: &'a str,
    seed: Option<u64>,
    replay: &'a str,
    facts: &'a [(String, String)],
    reasons: &'a [String],
    harness_error: &'a str,
    checks: Vec<CheckRow<'a>>,
    key_tables: Vec<KeyTable<'a>>,
    findings: Vec<FindingView<'a>>,
    timeline_note: String,
    unread: &'a str,
    logs: &'a [super::input::LogLink],
    logs_not_listed: usize,
    minimal: Option<&'a super::input::MinimalSchedule>,
    style: &'static str,
    script: &'static str,
    data: String,
}

#[derive(Serialize)]
struct CheckRow<'a> {
    name: &'a str,
    verdict: &'static str,
    reason: String,
}

#[derive(Serialize)]
struct KeyTable<'a> {
    summary: String,
    open: bool,
    rows: Vec<KeyRow<'a>>,
    more: usize,
}

#[derive(Serialize)]
struct KeyRow<'a> {
    key: &'a str,
    verdict: &'static str,
    op_count: u64,
    reason: &'a str,
}

#[derive(Serialize)]
struct FindingView<'a> {
    verdict: &'static str,
    checker: &'a str,
    title: &'a str,
    sentences: Vec<Sentence<'a>>,
    op_lists: Vec<OpList<'a>>,
    lost: Vec<LostRow<'a>>,
}

#[derive(Serialize)]
struct Sentence<'a> {
    /// Several lines (raw details) keep their layout.
    pre: bool,
    text: &'a str,
}

#[derive(Serialize)]
struct OpList<'a> {
    class: &'a str,
    label: &'a str,
    ops: &'a [String],
}

#[derive(Serialize)]
struct LostRow<'a> {
    key: &'a str,
    element: &'a str,
    invoked: String,
    acknowledged: String,
    faults: &'a str,
    write_line: u32,
    read_line: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("report template: {0}")]
pub struct TemplateError(#[from] minijinja::Error);

pub fn render(input: &ReportInput, timeline: &Timeline, findings: &[Finding], payload: &Payload) -> Result<String, TemplateError> {
    let verdict = match (input.verdict, &input.harness_error) {
        (Some(verdict), _) => verdict.name(),
        (None, Some(_)) => "harness error",
        (None, None) => "no verdict",
    };
    let data = serde_json::to_string(&payload.data).unwrap_or_else(|_| "{}".to_string());
    let page = Page {
        verdict_text: verdict.to_uppercase(),
        verdict_class: verdict.replace(' ', "-"),
        title: &input.title,
        seed: input.seed,
        replay: input.replay.as_deref().unwrap_or(""),
        facts: &input.facts,
        reasons: &input.reasons,
        harness_error: input.harness_error.as_deref().unwrap_or(""),
        checks: input.checks.iter().map(check_row).collect(),
        key_tables: input.checks.iter().flat_map(key_tables).collect(),
        findings: findings.iter().map(finding_view).collect(),
        timeline_note: timeline_note(timeline, payload),
        unread: timeline.unread.as_deref().unwrap_or(""),
        logs: &input.logs,
        logs_not_listed: input.logs_not_listed,
        minimal: input.minimal.as_ref(),
        style: STYLE,
        script: SCRIPT,
        // `</script` or `<!--` inside would end or confuse the script
        // element; `<` only occurs inside JSON strings, where `\u003c`
        // means the same.
        data: data.replace('<', "\\u003c"),
    };
    let mut environment = Environment::new();
    environment.add_template("report.html", TEMPLATE)?;
    Ok(environment.get_template("report.html")?.render(minijinja::value::Serde(&page))?)
}

fn check_row(check: &Check) -> CheckRow<'_> {
    CheckRow { name: &check.name, verdict: check.verdict.name(), reason: check.reason_text().unwrap_or_default() }
}

/// Per-key verdicts of a per-key check: the keys that are not valid in an
/// open list (they are what the reader came for), the valid ones folded
/// away, so a run with many keys still shows its counterexample on the
/// first screen.
fn key_tables(check: &Check) -> Vec<KeyTable<'_>> {
    let CheckDetails::Linearizable(result) = &check.details else { return Vec::new() };
    let keys = &result.keys;
    let (valid, other): (Vec<&KeyResult>, Vec<&KeyResult>) = keys.iter().partition(|k| k.verdict == Verdict::Valid);
    let mut tables = Vec::new();
    if !other.is_empty() {
        let summary = format!("{}: {} of {} keys not valid", check.name, other.len(), keys.len());
        tables.push(key_table(summary, &other, true));
    }
    if !valid.is_empty() {
        tables.push(key_table(format!("{}: {} valid keys", check.name, valid.len()), &valid, false));
    }
    tables
}

fn key_table<'a>(summary: String, keys: &[&'a KeyResult], open: bool) -> KeyTable<'a> {
    let rows = keys
        .iter()
        .take(KEY_ROWS_MAX)
        .map(|key| KeyRow {
            key: &key.key,
            verdict: key.verdict.name(),
            op_count: key.op_count,
            reason: key.reason.as_deref().unwrap_or(""),
        })
        .collect();
    KeyTable { summary, open, rows, more: keys.len().saturating_sub(KEY_ROWS_MAX) }
}

fn finding_view(finding: &Finding) -> FindingView<'_> {
    let at = |ms: Option<f64>| ms.map_or("?".to_string(), |ms| format!("{:.3} s", ms / 1e3));
    FindingView {
        verdict: finding.verdict.name(),
        checker: &finding.checker,
        title: &finding.title,
        sentences: finding.sentences.iter().map(|text| Sentence { pre: text.contains('\n'), text }).collect(),
        op_lists: finding
            .op_lists
            .iter()
            .map(|(label, ops)| OpList { class: label.split_whitespace().next().unwrap_or(""), label, ops })
            .collect(),
        lost: finding
            .lost
            .iter()
            .map(|lost| LostRow {
                key: &lost.key,
                element: &lost.element,
                invoked: match &lost.invoke_wall {
                    Some(wall) => format!("{} ({wall})", at(lost.invoke_ms)),
                    None => at(lost.invoke_ms),
                },
                acknowledged: at(lost.ack_ms),
                faults: &lost.faults,
                write_line: lost.write_line,
                read_line: lost.read_line,
            })
            .collect(),
    }
}

fn timeline_note(timeline: &Timeline, payload: &Payload) -> String {
    let total = timeline.ops.len();
    if payload.timeline_ops as usize >= total {
        format!("all {total} operations")
    } else {
        format!(
            "{} of {total} operations: a window around the first highlighted operation (or the start); the full history is history.jsonl",
            payload.timeline_ops
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::payload;
    use crate::report::timeline::tests::timeline;

    fn page(input: &ReportInput, timeline: &Timeline) -> String {
        render(input, timeline, &[], &payload::build(timeline, &[])).unwrap()
    }

    #[test]
    fn hostile_names_cannot_break_out_of_text_or_data() {
        let evil = r#"</script><script>alert(1)</script><!--"#;
        let key = serde_json::to_string(evil).unwrap();
        let t = timeline(&[
            &format!(r#"{{"process":0,"type":"invoke","f":"write","key":{key},"value":1,"time_ns":1}}"#),
            &format!(r#"{{"process":0,"type":"ok","f":"write","key":{key},"value":1,"time_ns":2}}"#),
        ]);
        let input = ReportInput { title: evil.to_string(), ..ReportInput::default() };
        let html = page(&input, &t);
        assert_eq!(html.matches("<script").count(), 2, "only the data and code elements open a script");
        assert!(!html.contains("<!--"));
        assert!(html.contains("&lt;&#x2f;script&gt;"), "the title is escaped");
    }

    #[test]
    fn a_harness_error_report_says_so_instead_of_verdicts() {
        let input = ReportInput {
            title: "faultline test t".into(),
            harness_error: Some("cluster: node 2 <exited>".into()),
            ..ReportInput::default()
        };
        let html = page(&input, &Timeline::default());
        assert!(html.contains("class=\"verdict harness-error\">HARNESS ERROR<"), "badge");
        assert!(html.contains("<li id=\"harness-error\">harness error: cluster: node 2 &lt;exited&gt;</li>"), "reason");
        assert!(html.contains("No checker ran."), "no empty verdict table");
    }

    #[test]
    fn a_shrink_report_shows_before_after_and_the_surviving_faults() {
        let minimal = super::super::input::MinimalSchedule {
            rows: vec![("events".into(), "6".into(), "1".into()), ("nodes".into(), "5".into(), "3".into())],
            faults: vec!["at 2.0 s for 100 ms: partition-leader <n1>".into()],
            note: "shrunk from store/t/1".into(),
        };
        let input = ReportInput { minimal: Some(minimal), ..ReportInput::default() };
        let html = page(&input, &Timeline::default());
        assert!(html.contains("<h2>Minimal failing schedule</h2><p>shrunk from store&#x2f;t&#x2f;1</p>"), "{html}");
        assert!(html.contains("<tr><td>events</td><td>6</td><td>1</td></tr><tr><td>nodes</td><td>5</td><td>3</td></tr>"));
        assert!(html.contains("<li>at 2.0 s for 100 ms: partition-leader &lt;n1&gt;</li>"), "escaped");
        let none = ReportInput { minimal: Some(super::super::input::MinimalSchedule::default()), ..ReportInput::default() };
        assert!(page(&none, &Timeline::default()).contains("No fault survived"));
        assert!(!page(&ReportInput::default(), &Timeline::default()).contains("Minimal failing schedule"), "only on a shrink's report");
    }

    #[test]
    fn keys_that_are_not_valid_are_listed_open_and_valid_ones_folded() {
        let key = |name: String, verdict| KeyResult { key: name, verdict, op_count: 10, configurations: 1, reason: None, counterexample: None };
        let mut keys: Vec<KeyResult> = (0..50).map(|i| key(format!("k{i}"), Verdict::Valid)).collect();
        keys.push(KeyResult { reason: Some("no linearization".into()), ..key("bad".into(), Verdict::Invalid) });
        let result = faultline_checkers::CheckResult {
            verdict: Verdict::Invalid,
            model: faultline_checkers::ModelName::new("kv"),
            op_count: 507,
            elapsed_ms: 1,
            keys,
        };
        let check = crate::verdict::linearizable::to_check("linearizable-kv".into(), Ok(result));
        let input = ReportInput { checks: vec![check], ..ReportInput::default() };
        let html = page(&input, &Timeline::default());
        let open = html.find("<details class=\"keys\" open><summary>linearizable-kv: 1 of 51 keys not valid</summary>").expect("open list");
        let folded = html.find("<details class=\"keys\"><summary>linearizable-kv: 50 valid keys</summary>").expect("folded list");
        assert!(open < folded);
        let bad = html.find("<td>bad</td>").unwrap();
        assert!(open < bad && bad < folded, "the invalid key is in the open list");
    }
}
