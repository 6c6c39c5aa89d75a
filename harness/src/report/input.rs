//! What a report is built from: the run's facts and the checkers' results,
//! read from a results folder (`faultline report`, end of `faultline test`)
//! or handed over by `faultline check`.
use std::path::{Path, PathBuf};

use faultline_checkers::Verdict;
use serde::Deserialize;
use serde_json::Value;

use super::ReportError;

/// Log files listed from `nodes/`; more are counted, not linked.
const LOG_LINKS_MAX: usize = 200;
/// How deep below `nodes/` log files are looked for.
const LOG_DEPTH_MAX: usize = 3;

/// One checker's verdict and its full result (as in `results.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct CheckView {
    pub name: String,
    pub verdict: Verdict,
    #[serde(default)]
    pub details: Value,
}

impl CheckView {
    /// The checker's one-line reason for not being valid, if it gave one.
    pub fn reason(&self) -> Option<String> {
        if self.verdict == Verdict::Valid {
            return None;
        }
        let text = self.details.get("reason").and_then(Value::as_str).map(str::to_string);
        Some(text.unwrap_or_else(|| format!("{} is {}", self.name, self.verdict.name())))
    }
}

/// A link to a node log, relative to the report when it sits in the run folder.
#[derive(Debug, Clone)]
pub struct LogLink {
    pub label: String,
    pub href: String,
    pub bytes: u64,
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
    pub checks: Vec<CheckView>,
    pub history: Option<PathBuf>,
    pub logs: Vec<LogLink>,
    pub logs_not_listed: usize,
}

/// The parts of `results.json` the report reads; the rest is ignored.
#[derive(Deserialize)]
struct ResultsFile {
    #[serde(default)]
    name: String,
    seed: Option<u64>,
    verdict: Option<Verdict>,
    #[serde(default)]
    reasons: Vec<String>,
    #[serde(default)]
    counts: Value,
    #[serde(default)]
    workload: String,
    #[serde(default)]
    nemesis: Vec<String>,
    #[serde(default)]
    nodes: usize,
    #[serde(default)]
    elapsed_ms: u64,
    #[serde(default)]
    checks: ChecksFile,
}

#[derive(Deserialize, Default)]
struct ChecksFile {
    #[serde(default)]
    checkers: Vec<CheckView>,
}

impl ReportInput {
    /// Reads a results folder. Without `results.json` (a run that died
    /// halfway) the report still shows the history, with no verdict.
    pub fn from_run_dir(run_dir: &Path) -> Result<ReportInput, ReportError> {
        let results_path = run_dir.join("results.json");
        let history = run_dir.join("history.jsonl");
        let has_results = results_path.is_file();
        if !has_results && !history.is_file() {
            return Err(ReportError::NotAResultsFolder { path: run_dir.to_path_buf() });
        }
        let mut input = ReportInput { title: format!("faultline run {}", run_dir.display()), ..ReportInput::default() };
        if has_results {
            let text = read_text(&results_path)?;
            let results: ResultsFile = serde_json::from_str(&text)
                .map_err(|source| ReportError::Json { path: results_path.clone(), source })?;
            input.apply_results(results);
        } else {
            input.harness_error = Some(stored_error(run_dir));
        }
        if input.seed.is_none() {
            input.seed = std::fs::read_to_string(run_dir.join("seed")).ok().and_then(|s| s.trim().parse().ok());
        }
        input.replay = replay_command(run_dir, input.seed);
        if history.is_file() {
            input.history = Some(history);
        }
        let (logs, not_listed) = list_logs(run_dir);
        input.logs = logs;
        input.logs_not_listed = not_listed;
        Ok(input)
    }

    fn apply_results(&mut self, results: ResultsFile) {
        if !results.name.is_empty() {
            self.title = format!("faultline test {}", results.name);
        }
        self.seed = results.seed;
        self.verdict = results.verdict;
        self.reasons = results.reasons;
        self.checks = results.checks.checkers;
        let nemesis = if results.nemesis.is_empty() { "none".to_string() } else { results.nemesis.join(", ") };
        self.facts.push(("cluster".into(), format!("{} nodes, workload {}", results.nodes, results.workload)));
        self.facts.push(("nemesis".into(), nemesis));
        let count = |field: &str| results.counts.get(field).and_then(Value::as_u64).unwrap_or(0);
        self.facts.push((
            "operations".into(),
            format!(
                "{} invoked: {} ok, {} fail, {} info; {} nemesis events",
                count("invoke"),
                count("ok"),
                count("fail"),
                count("info"),
                count("nemesis")
            ),
        ));
        self.facts.push(("time".into(), format!("{:.1} s", results.elapsed_ms as f64 / 1e3)));
    }
}

/// What ended a run that left no `results.json`: the `error` line the
/// runner keeps in `summary.txt` when it can, else a generic sentence.
fn stored_error(run_dir: &Path) -> String {
    let summary = std::fs::read_to_string(run_dir.join("summary.txt")).unwrap_or_default();
    let error = summary.lines().find_map(|line| line.strip_prefix("error ")).map(str::trim).filter(|e| !e.is_empty());
    match error {
        Some(error) => error.to_string(),
        None => "the run did not finish (results.json is missing)".to_string(),
    }
}

fn read_text(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|source| ReportError::Read { path: path.to_path_buf(), source })
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
