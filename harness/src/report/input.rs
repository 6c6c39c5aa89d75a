//! What a report is built from: the run's facts and typed checks, from a
//! run's [`Results`] (end of `faultline test`, `faultline report`) or
//! handed over by `faultline check`.
use std::path::Path;

use faultline_checkers::Verdict;

use crate::results::Results;
use crate::verdict::Check;

/// Log files listed from `nodes/`; more are counted, not linked.
const LOG_LINKS_MAX: usize = 200;
/// How deep below `nodes/` log files are looked for.
const LOG_DEPTH_MAX: usize = 3;

/// A link to a node log, relative to the report when it sits in the run folder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLink {
    pub label: String,
    pub href: String,
    pub bytes: u64,
}

/// The "minimal failing schedule" section of a shrink's report: what the
/// shrink removed, and the faults that survived it (the timeline shades
/// them).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MinimalSchedule {
    /// What was shrunk, before, after.
    pub rows: Vec<(String, String, String)>,
    /// Each surviving fault in words: when, how long, what it hit.
    pub faults: Vec<String>,
    /// Where the original run is, and how this run was chosen.
    pub note: String,
}

/// Everything the page shows besides the history itself.
#[derive(Debug, Clone, Default)]
pub struct ReportInput {
    pub title: String,
    pub verdict: Option<Verdict>,
    pub seed: Option<u64>,
    /// The exact command that replays the run.
    pub replay: Option<String>,
    /// Why the run is not valid, one line per failing check.
    pub reasons: Vec<String>,
    /// The harness error or interruption that ended the run before (or
    /// instead of) a verdict. The page shows it in place of verdicts and
    /// JUnit turns it into a test case of its own, so the run never reads
    /// as "0 tests, passed".
    pub harness_error: Option<String>,
    /// Label and value lines: workload, nodes, counts, time.
    pub facts: Vec<(String, String)>,
    pub checks: Vec<Check>,
    pub logs: Vec<LogLink>,
    pub logs_not_listed: usize,
    /// Set on a shrink's report only.
    pub minimal: Option<MinimalSchedule>,
}

impl ReportInput {
    /// The page of a test run, from its results and its folder (for the
    /// replay command and the node logs).
    pub fn from_results(results: &Results, run_dir: &Path) -> ReportInput {
        let nemesis = if results.nemesis.is_empty() { "none".to_string() } else { results.nemesis.join(", ") };
        let counts = &results.counts;
        let facts = vec![
            ("cluster".into(), format!("{} nodes of {}, workload {}", results.nodes, results.system, results.workload)),
            ("nemesis".into(), nemesis),
            (
                "operations".into(),
                format!(
                    "{} invoked: {} ok, {} fail, {} info; {} nemesis events",
                    counts.invoke, counts.ok, counts.fail, counts.info, counts.nemesis
                ),
            ),
            ("time".into(), format!("{:.1} s", results.elapsed_ms as f64 / 1e3)),
        ];
        let mut facts = facts;
        if !results.hosts.is_empty() {
            facts.push(("hosts".into(), results.hosts_line()));
        }
        if let Some(start_unix_ns) = results.start_unix_ns {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(start_unix_ns);
            facts.push(("started".into(), format!("{} (time 0 of the history)", humantime::format_rfc3339_millis(at))));
        }
        let (logs, logs_not_listed) = list_logs(run_dir);
        ReportInput {
            title: format!("faultline test {}", results.name),
            verdict: results.verdict,
            seed: Some(results.seed),
            replay: replay_command(run_dir, Some(results.seed)),
            reasons: results.reasons.clone(),
            harness_error: results.error.clone(),
            facts,
            checks: results.checks.checkers.clone(),
            logs,
            logs_not_listed,
            minimal: None,
        }
    }
}

/// `faultline test --spec <dir>/spec.yaml --seed N`: the stored spec is the
/// resolved one, so it replays the same test.
fn replay_command(run_dir: &Path, seed: Option<u64>) -> Option<String> {
    let spec = run_dir.join("spec.yaml");
    if !spec.is_file() {
        return None;
    }
    let mut command = format!("faultline test --spec {}", shell_word(&spec.display().to_string()));
    if let Some(seed) = seed {
        command.push_str(&format!(" --seed {seed}"));
    }
    Some(command)
}

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_word(word: &str) -> String {
    let plain = word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c));
    if plain && !word.is_empty() {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Log files under `nodes/`, as links relative to the run folder.
fn list_logs(run_dir: &Path) -> (Vec<LogLink>, usize) {
    let mut found = Vec::new();
    collect_logs(&run_dir.join("nodes"), "nodes", 0, &mut found);
    found.sort_by(|a: &LogLink, b| a.href.cmp(&b.href));
    let not_listed = found.len().saturating_sub(LOG_LINKS_MAX);
    found.truncate(LOG_LINKS_MAX);
    (found, not_listed)
}

fn collect_logs(dir: &Path, relative: &str, depth: usize, found: &mut Vec<LogLink>) {
    if depth > LOG_DEPTH_MAX {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let href = format!("{relative}/{name}");
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            collect_logs(&entry.path(), &href, depth + 1, found);
        } else if is_log_name(&name) {
            found.push(LogLink { label: href.trim_start_matches("nodes/").to_string(), href, bytes: meta.len() });
        }
    }
}

fn is_log_name(name: &str) -> bool {
    name.ends_with(".log") || name.ends_with(".out") || name.ends_with(".err") || name == "stderr" || name == "stdout"
}

