//! Every line faultline says to a person, as opposed to the data it prints
//! (JSON, tables, summaries, reports): one prefix, one place, and one rule
//! for where each kind goes (errors and warnings on stderr, notes on
//! stdout, or on stderr while stdout carries data).
use std::fmt::Display;
use std::path::Path;

use faultline_checkers::Verdict;

/// A bad input or a failure: on stderr.
pub fn error(message: impl Display) {
    eprintln!("faultline: error: {message}");
}

/// Something the run goes on without, but the user should know: on stderr.
pub fn warning(message: impl Display) {
    eprintln!("faultline: warning: {message}");
}

/// Progress of a command that prints data on stdout (the matrix's table,
/// `--format json`): on stderr, so stdout stays data.
pub fn progress(message: impl Display) {
    eprintln!("faultline: {message}");
}

/// A test starts: its name, seed and folder, before anything can go wrong.
pub fn run_started(name: &str, seed: u64, dir: &Path) {
    println!("faultline: test {name:?}, seed {seed}, results in {}", dir.display());
}

/// The end of a test run.
pub fn run_verdict(verdict: Verdict, seed: u64) {
    println!("faultline: verdict {}, seed {seed}", verdict.name());
}

/// The seed of a run that ended in an error, to replay it.
pub fn run_failed_seed(seed: u64) {
    eprintln!("faultline: seed {seed}");
}

/// Where a report went; on stderr when stdout carries data.
pub fn report_written(path: &Path, to_stderr: bool) {
    let line = format!("faultline: report {}", path.display());
    if to_stderr {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// `faultline report`'s one line.
pub fn report_stats(path: &Path, bytes: u64, op_count: u64, timeline_ops: u64) {
    println!("faultline: report {} ({bytes} bytes, {op_count} operations, {timeline_ops} on the timeline)", path.display());
}

/// The cluster never named a leader before the test started.
pub fn no_leader(timeout_ms: u64) {
    warning(format_args!("no leader after {timeout_ms} ms; starting the test anyway"));
}

/// A line of a helper process's own log (`faultline lazyfs`): on stderr,
/// prefixed with its name.
pub fn daemon(name: &str, message: impl Display) {
    eprintln!("faultline {name}: {message}");
}

/// A plain progress line of a run, when stdout is not a terminal.
pub fn progress_line(elapsed_s: f64, line: &str) {
    println!("[{elapsed_s:>5.1}s] {line}");
}

/// The matrix's false-alarm control runs, after its table.
pub fn matrix_control(alarms: u32, unknown: u32, runs: u32, alarm_seeds: &[u64]) {
    let seeds = if alarm_seeds.is_empty() { String::new() } else { format!(" (seeds {alarm_seeds:?})") };
    println!("correct node: {alarms} false alarm(s), {unknown} unknown, in {runs} runs{seeds}");
}

/// The matrix's last line.
pub fn matrix_detected(detected: usize, targets: usize) {
    println!("matrix: {detected} of {targets} targets detected");
}
