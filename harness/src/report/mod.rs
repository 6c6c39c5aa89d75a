//! `report.html`: one self-contained page (inline CSS, JS and data, no
//! network) that shows why a run failed at a glance: verdicts per checker
//! and key, the seed and replay command, the counterexample in words, lost
//! writes, a zoomable timeline, latency and throughput with nemesis
//! intervals shaded, and links to node logs; and JUnit XML for CI.
//!
//! Built from typed inputs: a run's [`Results`] and its [`Timeline`] (the
//! end of `faultline test` and `faultline report` share [`write_run`]), or
//! what `faultline check` found in a history file. Large histories are
//! windowed and sampled (see [`payload`]) so the page stays small.
pub mod clocks;
pub mod explain;
pub mod html;
pub mod input;
pub mod junit;
pub mod payload;
pub mod timeline;

use std::path::{Path, PathBuf};

pub use input::{shell_word, ReportInput};
pub use timeline::Timeline;

use crate::results::Results;

/// The report's file name inside a results folder.
pub const REPORT_FILE: &str = "report.html";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("report: cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Template(#[from] html::TemplateError),
    #[error(transparent)]
    Junit(#[from] junit::JunitError),
}

/// What a written report holds, for the caller to print.
#[derive(Debug, Clone)]
pub struct ReportStats {
    pub path: PathBuf,
    pub bytes: u64,
    pub op_count: u64,
    pub timeline_ops: u64,
    pub latency_points: u64,
    /// What the checks found, in words (also the JUnit failure text).
    pub findings: Vec<explain::Finding>,
}

/// Renders the page of one input and its timeline into `out`.
pub fn write_report(input: &ReportInput, timeline: &Timeline, out: &Path) -> Result<ReportStats, ReportError> {
    let findings = explain::findings(&input.checks, timeline);
    let payload = payload::build(timeline, &findings);
    let page = html::render(input, timeline, &findings, &payload)?;
    std::fs::write(out, &page).map_err(|source| ReportError::Write { path: out.to_path_buf(), source })?;
    Ok(ReportStats {
        path: out.to_path_buf(),
        bytes: page.len() as u64,
        op_count: timeline.ops.len() as u64,
        timeline_ops: payload.timeline_ops,
        latency_points: payload.latency_points,
        findings,
    })
}

/// The report of a run: `report.html` in its folder (or at `out`), and
/// JUnit XML when asked for. The end of `faultline test` (a verdict or a
/// harness error alike) and `faultline report` both come here.
pub fn write_run(
    results: &Results,
    run_dir: &Path,
    timeline: &Timeline,
    out: Option<&Path>,
    junit: Option<&Path>,
) -> Result<ReportStats, ReportError> {
    let input = ReportInput::from_results(results, run_dir);
    let default_out = run_dir.join(REPORT_FILE);
    let stats = write_report(&input, timeline, out.unwrap_or(&default_out))?;
    if let Some(path) = junit {
        junit::write(path, &input, &stats.findings)?;
    }
    Ok(stats)
}

/// JUnit XML for a run that failed before it had a results folder: one
/// failing `harness` case, so CI never reads it as a pass.
pub fn write_junit_without_run(junit: &Path, title: String, seed: u64, error: &str) -> Result<(), ReportError> {
    let input = ReportInput { title, seed: Some(seed), harness_error: Some(error.to_string()), ..ReportInput::default() };
    Ok(junit::write(junit, &input, &[])?)
}
