//! `report.html`: one self-contained page (inline CSS, JS and data, no
//! network) that shows why a run failed at a glance: verdicts per checker
//! and key, the seed and replay command, the counterexample in words, lost
//! writes, a zoomable timeline, latency and throughput with nemesis
//! intervals shaded, and links to node logs.
//!
//! Built from the stored results folder only (`results.json`,
//! `history.jsonl`, `seed`, `spec.yaml`, `nodes/`), so the end of a run and
//! `faultline report` share [`write_run_report`]. Large histories are
//! windowed and sampled (see [`payload`]) so the page stays small.
pub mod check;
pub mod digest;
pub mod explain;
pub mod html;
pub mod input;
pub mod payload;

use std::path::{Path, PathBuf};

pub use input::{CheckView, ReportInput};

/// The report's file name inside a results folder.
pub const REPORT_FILE: &str = "report.html";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("report: cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("report: cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("report: {path} is not valid JSON: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("report: {path} is not a results folder (no results.json and no history.jsonl)")]
    NotAResultsFolder { path: PathBuf },
    #[error(transparent)]
    Junit(#[from] crate::junit::JunitError),
}

/// What a written report holds, for the caller to print.
#[derive(Debug, Clone)]
pub struct ReportStats {
    pub path: PathBuf,
    pub bytes: u64,
    pub op_count: u64,
    pub timeline_ops: u64,
    pub latency_points: u64,
    /// What the checkers found, in words (also the JUnit failure text).
    pub findings: Vec<explain::Finding>,
}

/// Renders the report of one input into `out`.
pub fn write_report(input: &ReportInput, out: &Path) -> Result<ReportStats, ReportError> {
    let wanted = explain::wanted_lines(&input.checks);
    let digest = match &input.history {
        Some(path) => digest::read_history(path, &wanted)?,
        None => digest::Digest::default(),
    };
    let findings = explain::findings(&input.checks, &digest);
    let payload = payload::build(&digest, &findings);
    let page = html::render(input, &digest, &findings, &payload);
    std::fs::write(out, &page).map_err(|source| ReportError::Write { path: out.to_path_buf(), source })?;
    Ok(ReportStats {
        path: out.to_path_buf(),
        bytes: page.len() as u64,
        op_count: digest.ops.len() as u64,
        timeline_ops: payload.timeline_ops,
        latency_points: payload.latency_points,
        findings,
    })
}

/// Findings without reading the history (lost writes lack their times).
pub fn findings_without_history(input: &ReportInput) -> Vec<explain::Finding> {
    explain::findings(&input.checks, &digest::Digest::default())
}

/// Rebuilds `<run_dir>/report.html` (or `out`) from a stored results folder.
pub fn write_run_report(run_dir: &Path, out: Option<&Path>) -> Result<ReportStats, ReportError> {
    let input = ReportInput::from_run_dir(run_dir)?;
    let default_out = run_dir.join(REPORT_FILE);
    write_report(&input, out.unwrap_or(&default_out))
}

/// The end of a `faultline test` run: `report.html` in the results folder,
/// and JUnit XML when asked for.
pub fn finish_run(run_dir: &Path, junit: Option<&Path>) -> Result<ReportStats, ReportError> {
    let input = ReportInput::from_run_dir(run_dir)?;
    let stats = write_report(&input, &run_dir.join(REPORT_FILE))?;
    if let Some(path) = junit {
        crate::junit::write(path, &input, &stats.findings)?;
    }
    Ok(stats)
}

/// The end of a `faultline test` run that failed with a harness error or
/// an interruption. With a results folder that holds a history (`run_dir`),
/// `report.html` shows the history and `error` in place of verdicts; JUnit
/// (when asked) gets a failing `harness` test case either way, so the file
/// never reads as a passing run. `fallback` (title, seed) names the run when
/// there is no folder to read. The stats are `None` when no page was written.
/// JUnit is written even when the page cannot be: CI reads it first.
pub fn finish_failed_run(
    run_dir: Option<&Path>,
    junit: Option<&Path>,
    fallback: ReportInput,
    error: &str,
) -> Result<Option<ReportStats>, ReportError> {
    let mut first_error = None;
    let (mut input, page) = match run_dir.map(|dir| (dir, ReportInput::from_run_dir(dir))) {
        Some((dir, Ok(input))) => (input, Some(dir.join(REPORT_FILE))),
        // A folder with neither history nor results has nothing to show.
        None | Some((_, Err(ReportError::NotAResultsFolder { .. }))) => (fallback, None),
        Some((_, Err(read_error))) => {
            first_error = Some(read_error);
            (fallback, None)
        }
    };
    input.harness_error = Some(error.to_string());
    let stats = match page.map(|out| write_report(&input, &out)) {
        Some(Ok(stats)) => Some(stats),
        Some(Err(write_error)) => {
            first_error = Some(write_error);
            None
        }
        None => None,
    };
    if let Some(path) = junit {
        let findings = stats.as_ref().map_or_else(|| findings_without_history(&input), |s| s.findings.clone());
        crate::junit::write(path, &input, &findings)?;
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(stats),
    }
}
