//! Report inputs for `faultline check`: one recorded history and the
//! linearizability result (or the error) the command produced for it.
use std::path::Path;

use faultline_checkers::{CheckResult, Verdict};
use serde_json::json;

use super::input::{shell_word, CheckView, ReportInput};

/// The report input of one checked file.
pub fn input_for_check(file: &Path, result: Option<&CheckResult>, error: Option<&str>) -> ReportInput {
    let shown = file.display().to_string();
    let mut input = ReportInput {
        title: format!("faultline check {shown}"),
        history: Some(file.to_path_buf()),
        ..ReportInput::default()
    };
    if let Some(error) = error {
        input.verdict = Some(Verdict::Unknown);
        input.reasons.push(error.to_string());
        input.checks.push(CheckView { name: "read".into(), verdict: Verdict::Unknown, details: json!({ "reason": error }) });
    }
    if let Some(result) = result {
        let name = format!("linearizable-{}", result.model.name());
        let mut details = serde_json::to_value(result).unwrap_or_else(|e| json!({ "reason": e.to_string() }));
        if let Some(key) = result.keys.iter().find(|k| k.verdict == result.verdict && k.verdict != Verdict::Valid) {
            let reason = key.reason.as_deref().unwrap_or(result.verdict.name());
            details["reason"] = json!(format!("key {:?}: {reason}", key.key));
        }
        let view = CheckView { name, verdict: result.verdict, details };
        input.reasons.extend(view.reason());
        input.verdict = Some(input.verdict.map_or(result.verdict, |v| v.merge(result.verdict)));
        input.checks.push(view);
        input.facts.push((
            "history".into(),
            format!("{} operations, {} keys, model {}", result.op_count, result.keys.len(), result.model.name()),
        ));
        input.facts.push(("checked in".into(), format!("{} ms", result.elapsed_ms)));
        input.replay = Some(format!("faultline check {} --model {}", shell_word(&shown), result.model.name()));
    }
    input
}

/// One file `faultline check` looked at.
pub struct Checked<'a> {
    pub file: &'a Path,
    pub result: Option<&'a CheckResult>,
    pub error: Option<&'a str>,
}

/// `--report` (the first file's page) and `--junit` (a suite per file).
pub fn write_check_outputs(
    checked: &[Checked<'_>],
    report: Option<&Path>,
    junit: Option<&Path>,
) -> Result<(), super::ReportError> {
    let inputs: Vec<ReportInput> = checked.iter().map(|c| input_for_check(c.file, c.result, c.error)).collect();
    if let (Some(out), Some(input)) = (report, inputs.first()) {
        super::write_report(input, out)?;
    }
    if let Some(path) = junit {
        let runs: Vec<_> = inputs
            .into_iter()
            .map(|input| {
                let findings = super::findings_without_history(&input);
                (input, findings)
            })
            .collect();
        crate::junit::write_many(path, &runs)?;
    }
    Ok(())
}
