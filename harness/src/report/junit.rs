//! JUnit XML for CI systems (written with the `quick-junit` crate): one
//! test suite per run, one test case per check. An invalid check is a
//! `<failure>` carrying the counterexample in words; an unknown one (budget
//! exhausted, checker error) is an `<error>`, so it never passes silently.
//! A run that ended in a harness error or an interruption (or produced no
//! check at all) gets one more case, `harness`, as an `<error>` carrying
//! the message: a suite with no test cases reads as "0 tests, passed" in CI.
use std::fmt::Write;
use std::path::{Path, PathBuf};

use faultline_checkers::Verdict;
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::explain::Finding;
use super::ReportInput;

/// Failure text per test case is cut to this many characters.
const FAILURE_TEXT_MAX: usize = 16_000;

/// The test case name of a harness error.
pub const HARNESS_CASE: &str = "harness";

#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    #[error("junit: cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("junit: {0}")]
    Serialize(#[from] quick_junit::SerializeError),
}

/// Writes the JUnit XML of one run.
pub fn write(path: &Path, input: &ReportInput, findings: &[Finding]) -> Result<(), JunitError> {
    write_many(path, &[(input.clone(), findings.to_vec())])
}

/// Writes one test suite per run (or per checked file).
pub fn write_many(path: &Path, runs: &[(ReportInput, Vec<Finding>)]) -> Result<(), JunitError> {
    let xml = render_many(runs)?;
    std::fs::write(path, xml).map_err(|source| JunitError::Write { path: path.to_path_buf(), source })
}

/// The XML document of one run.
pub fn render(input: &ReportInput, findings: &[Finding]) -> Result<String, JunitError> {
    render_many(&[(input.clone(), findings.to_vec())])
}

/// The XML document of several runs.
pub fn render_many(runs: &[(ReportInput, Vec<Finding>)]) -> Result<String, JunitError> {
    let mut report = Report::new("faultline");
    for (input, findings) in runs {
        report.add_test_suite(suite(input, findings));
    }
    Ok(report.to_string()?)
}

/// Why a suite gets the `harness` case: the run's harness error, or the
/// absence of any check (nothing was checked, so nothing passed).
fn harness_message(input: &ReportInput) -> Option<String> {
    match &input.harness_error {
        Some(error) => Some(error.clone()),
        None if input.checks.is_empty() => Some("no checker ran: the run has no verdict".to_string()),
        None => None,
    }
}

fn suite(input: &ReportInput, findings: &[Finding]) -> TestSuite {
    let mut suite = TestSuite::new(input.title.as_str());
    suite.add_properties(properties(input));
    if let Some(message) = harness_message(input) {
        let mut body = format!("harness error: {message}\n");
        if let Some(replay) = &input.replay {
            let _ = writeln!(body, "replay: {replay}");
        }
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status.set_type("harness").set_message(message.as_str()).set_description(cut(&body));
        suite.add_test_case(case(&input.title, HARNESS_CASE, status));
    }
    for check in &input.checks {
        let status = match check.verdict {
            Verdict::Valid => TestCaseStatus::success(),
            verdict => {
                let (kind, name) = match verdict {
                    Verdict::Invalid => (NonSuccessKind::Failure, "invalid"),
                    _ => (NonSuccessKind::Error, "unknown"),
                };
                let mut body = String::new();
                for finding in findings.iter().filter(|f| f.checker == check.name) {
                    body.push_str(&finding.text());
                    body.push('\n');
                }
                if let Some(replay) = &input.replay {
                    let _ = writeln!(body, "replay: {replay}");
                }
                let mut status = TestCaseStatus::non_success(kind);
                status.set_type(name).set_message(check.reason_text().unwrap_or_default()).set_description(cut(&body));
                status
            }
        };
        suite.add_test_case(case(&input.title, &check.name, status));
    }
    suite
}

fn case(suite: &str, name: &str, status: TestCaseStatus) -> TestCase {
    let mut case = TestCase::new(name, status);
    case.set_classname(suite);
    case
}

fn properties(input: &ReportInput) -> Vec<Property> {
    let mut props: Vec<(String, String)> = Vec::new();
    if let Some(seed) = input.seed {
        props.push(("seed".into(), seed.to_string()));
    }
    if let Some(replay) = &input.replay {
        props.push(("replay".into(), replay.clone()));
    }
    props.extend(input.facts.iter().cloned());
    props.into_iter().map(|(name, value)| Property::new(name, value)).collect()
}

fn cut(body: &str) -> String {
    if body.len() <= FAILURE_TEXT_MAX {
        return body.to_string();
    }
    let end = (0..=FAILURE_TEXT_MAX).rev().find(|&i| body.is_char_boundary(i)).unwrap_or(0);
    format!("{}\n… (cut; see report.html)", &body[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Check;

    fn check(name: &str, verdict: Verdict, reason: &str) -> Check {
        let mut check = Check::failed(name, reason);
        check.verdict = verdict;
        check
    }

    #[test]
    fn one_case_per_checker_with_failures_and_errors() {
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
        let xml = render(&input, &[]).unwrap();
        let suite = xml.lines().find(|l| l.contains("<testsuite ")).unwrap();
        for attribute in ["tests=\"3\"", "failures=\"1\"", "errors=\"1\"", "name=\"faultline test &lt;x &amp; y&gt;\""] {
            assert!(suite.contains(attribute), "{attribute} in {suite}");
        }
        assert!(xml.contains("<failure message=\"key &quot;a&quot;: not linearizable\" type=\"invalid\">"), "{xml}");
        assert!(xml.contains("<error message=\"budget\" type=\"unknown\">"), "{xml}");
        assert!(xml.contains("<testcase name=\"liveness\" classname=\"faultline test &lt;x &amp; y&gt;\"/>"), "{xml}");
        assert!(xml.contains("<property name=\"seed\" value=\"7\"/>"), "{xml}");
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
        let xml = render(&input, &[]).unwrap();
        let suite = xml.lines().find(|l| l.contains("<testsuite ")).unwrap();
        assert!(suite.contains("tests=\"1\"") && suite.contains("errors=\"1\"") && suite.contains("failures=\"0\""), "{xml}");
        assert!(xml.contains("<testcase name=\"harness\" classname=\"faultline test t\">"), "{xml}");
        assert!(xml.contains("message=\"interrupted by SIGINT; partial history in &lt;dir&gt;\""), "{xml}");
    }

    #[test]
    fn junit_without_any_checker_result_does_not_pass() {
        let input = ReportInput { title: "t".into(), ..ReportInput::default() };
        let xml = render(&input, &[]).unwrap();
        assert!(xml.contains("tests=\"1\"") && xml.contains("errors=\"1\""), "{xml}");
        assert!(xml.contains("message=\"no checker ran: the run has no verdict\""), "{xml}");
    }

    #[test]
    fn junit_keeps_verdicts_beside_a_harness_error() {
        let input = ReportInput {
            title: "t".into(),
            checks: vec![check("lin", Verdict::Valid, "")],
            harness_error: Some("store: cannot write summary.txt".into()),
            ..ReportInput::default()
        };
        let xml = render(&input, &[]).unwrap();
        assert!(xml.contains("tests=\"2\"") && xml.contains("errors=\"1\"") && xml.contains("failures=\"0\""), "{xml}");
        assert!(xml.contains("name=\"lin\""), "{xml}");
    }
}
