//! JUnit XML for CI systems: one test suite per run, one test case per
//! checker. An invalid checker is a `<failure>` carrying the counterexample
//! in words; an unknown one (budget exhausted, checker error) is an
//! `<error>`, so it never passes silently. Written by hand: the format is
//! small and a dependency would cost more build time than it saves.
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

/// The XML document of several runs.
pub fn render_many(runs: &[(ReportInput, Vec<Finding>)]) -> String {
    let count = |verdict: Option<Verdict>| {
        runs.iter().flat_map(|(input, _)| &input.checks).filter(|c| verdict.is_none_or(|v| c.verdict == v)).count()
    };
    let (tests, failures, errors) = (count(None), count(Some(Verdict::Invalid)), count(Some(Verdict::Unknown)));
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(xml, "<testsuites name=\"faultline\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">");
    for (input, findings) in runs {
        suite(&mut xml, input, findings);
    }
    xml.push_str("</testsuites>\n");
    xml
}

fn suite(xml: &mut String, input: &ReportInput, findings: &[Finding]) {
    let failures = input.checks.iter().filter(|c| c.verdict == Verdict::Invalid).count();
    let errors = input.checks.iter().filter(|c| c.verdict == Verdict::Unknown).count();
    let tests = input.checks.len();
    let suite = attr(&input.title);
    let _ = writeln!(xml, "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">");
    properties(xml, input);
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
    }
}
