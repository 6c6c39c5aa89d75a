//! JUnit XML for CI systems: one test suite per run, one test case per
//! checker. An invalid checker is a `<failure>` carrying the counterexample
//! in words; an unknown one (budget exhausted, checker error) is an
//! `<error>`, so it never passes silently. A run that ended in a harness
//! error or an interruption (or produced no checker result at all) gets one
//! more case, `harness`, as an `<error>` carrying the message: a suite with
//! no test cases reads as "0 tests, passed" in CI. Written by hand: the
//! format is small and a dependency would cost more build time than it saves.
use std::fmt::Write;
use std::path::{Path, PathBuf};

use faultline_checkers::Verdict;

use crate::report::explain::Finding;
use crate::report::ReportInput;

/// Failure text per test case is cut to this many characters.
const FAILURE_TEXT_MAX: usize = 16_000;

#[derive(Debug, thiserror::Error)]
#[error("junit: cannot write {path}: {source}")]
pub struct JunitError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Writes the JUnit XML of one run.
pub fn write(path: &Path, input: &ReportInput, findings: &[Finding]) -> Result<(), JunitError> {
    write_many(path, &[(input.clone(), findings.to_vec())])
}

/// Writes one test suite per run (or per checked file).
pub fn write_many(path: &Path, runs: &[(ReportInput, Vec<Finding>)]) -> Result<(), JunitError> {
    std::fs::write(path, render_many(runs)).map_err(|source| JunitError { path: path.to_path_buf(), source })
}

/// The XML document of one run.
pub fn render(input: &ReportInput, findings: &[Finding]) -> String {
    render_many(&[(input.clone(), findings.to_vec())])
}

/// The test case name of a harness error.
pub const HARNESS_CASE: &str = "harness";

/// The XML document of several runs.
pub fn render_many(runs: &[(ReportInput, Vec<Finding>)]) -> String {
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    for (input, _) in runs {
        let counts = suite_counts(input);
        tests += counts.tests;
        failures += counts.failures;
        errors += counts.errors;
    }
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(xml, "<testsuites name=\"faultline\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">");
    for (input, findings) in runs {
        suite(&mut xml, input, findings);
    }
    xml.push_str("</testsuites>\n");
    xml
}

struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
}

/// Why a suite gets the `harness` case: the run's harness error, or the
/// absence of any checker result (nothing was checked, so nothing passed).
fn harness_message(input: &ReportInput) -> Option<String> {
    match &input.harness_error {
        Some(error) => Some(error.clone()),
        None if input.checks.is_empty() => Some("no checker ran: the run has no verdict".to_string()),
        None => None,
    }
}

fn suite_counts(input: &ReportInput) -> Counts {
    let harness = usize::from(harness_message(input).is_some());
    Counts {
        tests: input.checks.len() + harness,
        failures: input.checks.iter().filter(|c| c.verdict == Verdict::Invalid).count(),
        errors: input.checks.iter().filter(|c| c.verdict == Verdict::Unknown).count() + harness,
    }
}

fn suite(xml: &mut String, input: &ReportInput, findings: &[Finding]) {
    let Counts { tests, failures, errors } = suite_counts(input);
    let suite = attr(&input.title);
    let _ = writeln!(xml, "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">");
    properties(xml, input);
    if let Some(message) = harness_message(input) {
        let mut body = format!("harness error: {message}\n");
        if let Some(replay) = &input.replay {
            let _ = writeln!(body, "replay: {replay}");
        }
        let _ = writeln!(
            xml,
            "    <testcase classname=\"{suite}\" name=\"{HARNESS_CASE}\">\n      <error type=\"harness\" message=\"{}\">{}</error>\n    </testcase>",
            attr(&message),
            text(&cut(&body))
        );
    }
    for check in &input.checks {
        let _ = write!(xml, "    <testcase classname=\"{suite}\" name=\"{}\"", attr(&check.name));
        if check.verdict == Verdict::Valid {
            xml.push_str("/>\n");
            continue;
        }
        let (tag, kind) = if check.verdict == Verdict::Invalid { ("failure", "invalid") } else { ("error", "unknown") };
        let message = check.reason().unwrap_or_default();
        let mut body = String::new();
        for finding in findings.iter().filter(|f| f.checker == check.name) {
            body.push_str(&finding.text());
            body.push('\n');
        }
        if let Some(replay) = &input.replay {
            let _ = writeln!(body, "replay: {replay}");
        }
        let _ = writeln!(
            xml,
            ">\n      <{tag} type=\"{kind}\" message=\"{}\">{}</{tag}>\n    </testcase>",
            attr(&message),
            text(&cut(&body))
        );
    }
    xml.push_str("  </testsuite>\n");
}

fn properties(xml: &mut String, input: &ReportInput) {
    let mut props: Vec<(String, String)> = Vec::new();
    if let Some(seed) = input.seed {
        props.push(("seed".into(), seed.to_string()));
    }
    if let Some(replay) = &input.replay {
        props.push(("replay".into(), replay.clone()));
    }
    props.extend(input.facts.iter().cloned());
    if props.is_empty() {
        return;
    }
    xml.push_str("    <properties>\n");
    for (name, value) in props {
        let _ = writeln!(xml, "      <property name=\"{}\" value=\"{}\"/>", attr(&name), attr(&value));
    }
    xml.push_str("    </properties>\n");
}

fn cut(body: &str) -> String {
    if body.len() <= FAILURE_TEXT_MAX {
        return body.to_string();
    }
    let end = (0..=FAILURE_TEXT_MAX).rev().find(|&i| body.is_char_boundary(i)).unwrap_or(0);
    format!("{}\n… (cut; see report.html)", &body[..end])
}

/// Escaped element text; characters XML 1.0 forbids are dropped.
fn text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Escaped attribute value (newlines kept as character references).
fn attr(raw: &str) -> String {
    text(raw).replace('"', "&quot;").replace('\n', "&#10;").replace('\r', "&#13;").replace('\t', "&#9;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::CheckView;

    #[test]
    fn one_case_per_checker_with_failures_and_errors() {
        let check = |name: &str, verdict, reason: &str| CheckView {
            name: name.into(),
            verdict,
            details: serde_json::json!({ "reason": reason }),
        };
        let input = ReportInput {
            title: "faultline test <x & y>".into(),
            seed: Some(7),
            checks: vec![
                check("lin", Verdict::Invalid, "key \"a\": not linearizable"),
                check("liveness", Verdict::Valid, ""),
                check("logs", Verdict::Unknown, "budget"),
            ],
            ..ReportInput::default()
        };
        let xml = render(&input, &[]);
        assert!(xml.contains("tests=\"3\" failures=\"1\" errors=\"1\""), "{xml}");
        assert!(xml.contains("name=\"faultline test &lt;x &amp; y&gt;\""), "{xml}");
        assert!(xml.contains("<failure type=\"invalid\" message=\"key &quot;a&quot;: not linearizable\">"), "{xml}");
        assert!(xml.contains("<error type=\"unknown\" message=\"budget\">"), "{xml}");
        assert!(xml.contains("<testcase classname=\"faultline test &lt;x &amp; y&gt;\" name=\"liveness\"/>"), "{xml}");
        assert!(xml.contains("<property name=\"seed\" value=\"7\"/>"), "{xml}");
        assert_eq!(text("a\u{1}b"), "ab");
        assert!(!xml.contains("name=\"harness\""), "a run with verdicts has no harness case: {xml}");
    }

    #[test]
    fn junit_for_a_harness_error_is_one_errored_case_not_zero_tests() {
        let input = ReportInput {
            title: "faultline test t".into(),
            seed: Some(9),
            harness_error: Some("interrupted by SIGINT; partial history in <dir>".into()),
            ..ReportInput::default()
        };
        let xml = render(&input, &[]);
        assert!(xml.contains("<testsuites name=\"faultline\" tests=\"1\" failures=\"0\" errors=\"1\">"), "{xml}");
        assert!(xml.contains("<testsuite name=\"faultline test t\" tests=\"1\" failures=\"0\" errors=\"1\">"), "{xml}");
        assert!(xml.contains("<testcase classname=\"faultline test t\" name=\"harness\">"), "{xml}");
        assert!(
            xml.contains("<error type=\"harness\" message=\"interrupted by SIGINT; partial history in &lt;dir&gt;\">"),
            "{xml}"
        );
    }

    #[test]
    fn junit_without_any_checker_result_does_not_pass() {
        let input = ReportInput { title: "t".into(), ..ReportInput::default() };
        let xml = render(&input, &[]);
        assert!(xml.contains("tests=\"1\" failures=\"0\" errors=\"1\""), "{xml}");
        assert!(xml.contains("message=\"no checker ran: the run has no verdict\""), "{xml}");
    }

    #[test]
    fn junit_keeps_verdicts_beside_a_harness_error() {
        let input = ReportInput {
            title: "t".into(),
            checks: vec![CheckView { name: "lin".into(), verdict: Verdict::Valid, details: serde_json::Value::Null }],
            harness_error: Some("store: cannot write summary.txt".into()),
            ..ReportInput::default()
        };
        let xml = render(&input, &[]);
        assert!(xml.contains("tests=\"2\" failures=\"0\" errors=\"1\""), "{xml}");
        assert!(xml.contains("name=\"lin\"/>"), "{xml}");
    }
}
