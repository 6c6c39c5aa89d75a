//! `faultline check`: verdicts for recorded histories (faultline JSONL,
//! Jepsen log lines or Jepsen EDN maps, detected per file). A history of
//! transactions (`f` "txn") gets the transaction checker ([`txn`]).
//!
//! Exit code: 0 every file valid, 1 some file invalid, 2 some file unknown
//! (budget exhausted), 3 some file could not be read or checked. Each bad
//! input is reported as one line naming the file (and line, when there is
//! one); the other files are still checked.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use faultline_checkers::read::{read_path, Format};
use faultline_checkers::txn::{ConsistencyModel, TxnKind, TxnReport};
use faultline_checkers::{check_op_history, CheckConfig, CheckResult, KeyResult, ModelKind, OpHistory, Verdict};
use serde::Serialize;

use crate::report::{self, shell_word, ReportInput, Timeline};
use crate::verdict::{linearizable, Check};
use crate::cmd::OutputFormat;
use crate::{messages, EXIT_HARNESS_ERROR, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID};

mod txn;

/// Up to this many keys, text output lists every key; above, only keys that are not valid.
const TEXT_KEYS_MAX: usize = 10;
/// Operations of the linearizable prefix shown in text output.
const TEXT_PREFIX_OPS_MAX: usize = 8;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// History files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Model: register, cas-register, kv, set, list-append, rw-register
    /// (guessed from the operations when absent). A history of
    /// transactions (`f` "txn": Elle's list-append or rw-register) is
    /// checked for isolation anomalies instead.
    #[arg(long)]
    pub model: Option<String>,
    /// For transactions: the consistency model anomalies are judged
    /// against (read-committed, snapshot-isolation, serializable,
    /// strong-session-serializable, strict-serializable,
    /// strong-session-snapshot-isolation, strong-snapshot-isolation).
    #[arg(long, default_value = "strict-serializable")]
    pub consistency_model: String,
    /// Time budget per file in milliseconds; past it the answer is unknown.
    #[arg(long)]
    pub budget_ms: Option<u64>,
    /// Memory budget of the search caches in MiB; past it the answer is unknown.
    #[arg(long, default_value_t = 1024)]
    pub memory_budget_mb: u64,
    /// A key no read of which returned is `unknown` instead of `valid` (as
    /// faultline judges its own runs; off, a key only written is valid, as
    /// Porcupine and Knossos say).
    #[arg(long)]
    pub require_evidence: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Write a self-contained HTML report of the history (one file only).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write JUnit XML: one test suite per file, one test case per checker.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// No text output; errors still go to stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// One file's outcome, as printed.
#[derive(Serialize)]
struct FileReport {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<Format>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<CheckResult>,
    /// A transaction history's anomalies.
    #[serde(skip_serializing_if = "Option::is_none")]
    transactions: Option<TxnReport>,
    #[serde(skip)]
    elapsed_ms: u64,
}

#[derive(Serialize)]
struct Report {
    verdict: Option<Verdict>,
    exit_code: u8,
    files: Vec<FileReport>,
}

pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    // rw-register names only a transaction checker; list-append names one
    // too when the file holds transactions.
    let (model, txn_model) = match args.model.as_deref() {
        Some("rw-register") => (None, Some(TxnKind::RwRegister)),
        Some(name) => (Some(name.parse::<ModelKind>()?), None),
        None => (None, None),
    };
    let consistency_model: ConsistencyModel = args.consistency_model.parse()?;
    let config = CheckConfig {
        model,
        budget_ms: args.budget_ms,
        memory_budget_mb: args.memory_budget_mb,
        require_evidence: args.require_evidence,
        ..CheckConfig::default()
    };
    if args.report.is_some() && args.files.len() != 1 {
        messages::error(format_args!("--report takes one history file ({} given)", args.files.len()));
        return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
    }
    let mut files = Vec::with_capacity(args.files.len());
    let mut first_history = None;
    for path in &args.files {
        let kind = match model {
            None | Some(ModelKind::ListAppend) => txn::txn_file_kind(path).map(|found| match (model, txn_model) {
                (Some(ModelKind::ListAppend), _) => TxnKind::ListAppend,
                (_, Some(named)) => named,
                _ => found,
            }),
            _ => None,
        };
        let (report, history) = match (kind, txn_model) {
            (Some(kind), _) => (check_txn_file(path, kind, consistency_model), None),
            (None, Some(_)) => (not_transactions(path), None),
            (None, None) => check_file(path, &config, consistency_model),
        };
        // Only the HTML report draws the timeline; building it describes
        // every operation, which took a third of a 1M-op check.
        if files.is_empty() && args.report.is_some() {
            first_history = match (&history, report.format) {
                (Some(history), _) => Some(Timeline::from_ops(history)),
                // A faultline transaction history: its events give the
                // page the timeline (times, nodes, faults) the anomalies
                // are placed on.
                (None, Some(Format::Jsonl)) => Timeline::read(path).ok(),
                (None, _) => None,
            };
        }
        // The last history is left for the process's exit to reclaim:
        // freeing a 1M-op history value by value took 130 of 540 ms.
        if files.len() + 1 == args.files.len() {
            std::mem::forget(history);
        }
        if args.format == OutputFormat::Text {
            if !args.quiet {
                print_text(&report)?;
            } else if let Some(error) = &report.error {
                messages::error(format_args!("{}: {error}", report.file));
            }
        }
        files.push(report);
    }
    let timeline = first_history.unwrap_or_default();
    if let Err(error) = write_outputs(&files, &timeline, args.report.as_deref(), args.junit.as_deref()) {
        messages::error(error);
        return Ok(ExitCode::from(EXIT_HARNESS_ERROR));
    }
    let exit_code = exit_code(&files);
    if args.format == OutputFormat::Json {
        let verdicts = files.iter().filter_map(|f| f.verdict);
        let report = Report { verdict: Some(Verdict::merge_all(verdicts)), exit_code, files };
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    }
    Ok(ExitCode::from(exit_code))
}

/// One file's verdict, and its parsed history for the report's timeline.
/// A faultline history that mixes transactions into single-key operations
/// gets both checkers, each on its own operations.
fn check_file(path: &Path, config: &CheckConfig, consistency_model: ConsistencyModel) -> (FileReport, Option<OpHistory>) {
    let mut report = FileReport::new(path);
    let started = Instant::now();
    let (format, mut history) = match read_path(path, config.threads) {
        Ok(read) => read,
        Err(err) => {
            report.error = Some(err.to_string());
            return (report, None);
        }
    };
    report.format = Some(format);
    let mixed = match format {
        Format::Jsonl => txn::split_transactions(path, &mut history),
        _ => None,
    };
    match check_op_history(&history, config) {
        Ok(mut result) => {
            // The file's figure includes parsing.
            result.elapsed_ms = started.elapsed().as_millis() as u64;
            report.verdict = Some(result.verdict);
            report.result = Some(result);
        }
        Err(err) => report.error = Some(err.to_string()),
    }
    if let (Some(kind), None) = (mixed, &report.error) {
        match txn::check_beside_ops(path, kind, consistency_model) {
            Ok((transactions, elapsed_ms)) => {
                report.verdict = report.verdict.map(|verdict| verdict.merge(transactions.verdict));
                report.transactions = Some(transactions);
                report.elapsed_ms = elapsed_ms;
            }
            Err(error) => report.error = Some(error),
        }
    }
    (report, Some(history))
}

/// `--model rw-register` on a file whose operations are not transactions.
fn not_transactions(path: &Path) -> FileReport {
    let error = "--model rw-register checks transactions (f \"txn\"), and this history's first operation is not one".to_string();
    FileReport { error: Some(error), ..FileReport::new(path) }
}

impl FileReport {
    /// The report of `path` before anything is known of it.
    fn new(path: &Path) -> FileReport {
        FileReport {
            file: path.display().to_string(),
            format: None,
            verdict: None,
            error: None,
            result: None,
            transactions: None,
            elapsed_ms: 0,
        }
    }
}

/// One transaction history's verdict.
fn check_txn_file(path: &Path, kind: TxnKind, model: ConsistencyModel) -> FileReport {
    let mut report = FileReport::new(path);
    match txn::check(path, kind, model) {
        Ok((format, transactions, elapsed_ms)) => {
            report.format = Some(format);
            report.verdict = Some(transactions.verdict);
            report.transactions = Some(transactions);
            report.elapsed_ms = elapsed_ms;
        }
        Err(error) => report.error = Some(error),
    }
    report
}

/// The report input of one checked file.
fn report_input(file: &FileReport) -> ReportInput {
    let mut input = ReportInput { title: format!("faultline check {}", file.file), ..ReportInput::default() };
    if let Some(error) = &file.error {
        input.verdict = Some(Verdict::Unknown);
        input.reasons.push(error.clone());
        input.checks.push(Check::failed("read", error.clone()));
    }
    if let Some(result) = &file.result {
        let check = linearizable::to_check(format!("linearizable-{}", result.model.name()), Ok(result.clone()));
        input.reasons.extend(check.reason_text());
        input.verdict = Some(input.verdict.map_or(result.verdict, |v| v.merge(result.verdict)));
        input.checks.push(check);
        input.facts.push((
            "history".into(),
            format!("{} operations, {} keys, model {}", result.op_count, result.keys.len(), result.model.name()),
        ));
        input.facts.push(("checked in".into(), format!("{} ms", result.elapsed_ms)));
        input.replay = Some(format!("faultline check {} --model {}", shell_word(&file.file), result.model.name()));
    }
    if let Some(transactions) = &file.transactions {
        let check = crate::verdict::transactions::to_check(transactions.clone());
        input.reasons.extend(check.reason_text());
        input.verdict = Some(input.verdict.map_or(transactions.verdict, |v| v.merge(transactions.verdict)));
        input.checks.push(check);
        input.facts.push(("history".into(), format!("{} transactions, {} committed", transactions.workload.name(), transactions.committed)));
        input.facts.push(("checked in".into(), format!("{} ms", file.elapsed_ms)));
        let model = transactions.model.name();
        let kind = transactions.workload.name();
        // A mixed history is checked whole again, both checkers.
        let named = if file.result.is_some() { String::new() } else { format!(" --model {kind}") };
        input.replay = Some(format!("faultline check {}{named} --consistency-model {model}", shell_word(&file.file)));
    }
    input
}

/// `--report` (the first file's page, drawn from the history already
/// parsed) and `--junit` (a suite per file).
fn write_outputs(
    files: &[FileReport],
    timeline: &Timeline,
    report_path: Option<&Path>,
    junit: Option<&Path>,
) -> Result<(), report::ReportError> {
    let inputs: Vec<ReportInput> = files.iter().map(report_input).collect();
    if let (Some(out), Some(input)) = (report_path, inputs.first()) {
        report::write_report(input, timeline, out)?;
    }
    if let Some(path) = junit {
        let runs: Vec<_> = inputs
            .into_iter()
            .map(|input| {
                let findings = report::explain::findings(&input.checks, &Timeline::default());
                (input, findings)
            })
            .collect();
        report::junit::write_many(path, &runs)?;
    }
    Ok(())
}

/// Errors outrank every verdict; then invalid, unknown, valid.
fn exit_code(files: &[FileReport]) -> u8 {
    if files.iter().any(|f| f.error.is_some()) {
        return EXIT_HARNESS_ERROR;
    }
    match Verdict::merge_all(files.iter().filter_map(|f| f.verdict)) {
        Verdict::Valid => EXIT_VALID,
        Verdict::Invalid => EXIT_INVALID,
        Verdict::Unknown => EXIT_UNKNOWN,
    }
}

fn print_text(report: &FileReport) -> anyhow::Result<()> {
    if let Some(error) = &report.error {
        // One line, on stderr, naming the file (the error names the line).
        messages::error(format_args!("{}: {error}", report.file));
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    if let Some(transactions) = &report.transactions {
        txn::print_text(&mut out, &report.file, transactions, report.elapsed_ms)?;
    }
    let Some(result) = &report.result else { return Ok(()) };
    writeln!(
        out,
        "{}: {} ({}, {} ops, {} keys, {} ms)",
        report.file,
        result.verdict.name(),
        result.model.name(),
        result.op_count,
        result.keys.len(),
        result.elapsed_ms
    )?;
    // Every key of a small history; only the keys that are not valid of a
    // large one.
    let list_all = result.keys.len() <= TEXT_KEYS_MAX;
    let listed: Vec<&KeyResult> = result.keys.iter().filter(|k| list_all || k.verdict != Verdict::Valid).collect();
    for key in &listed {
        print_key(&mut out, key)?;
    }
    if listed.len() < result.keys.len() {
        writeln!(out, "  ({} keys not listed, all valid)", result.keys.len() - listed.len())?;
    }
    Ok(())
}

fn print_key(out: &mut impl Write, key: &KeyResult) -> std::io::Result<()> {
    write!(out, "  key {:?}: {} ({} ops)", key.key, key.verdict.name(), key.op_count)?;
    match &key.reason {
        Some(reason) => writeln!(out, ": {reason}")?,
        None => writeln!(out)?,
    }
    let Some(example) = &key.counterexample else { return Ok(()) };
    let shown = example.prefix_tail.len().min(TEXT_PREFIX_OPS_MAX);
    writeln!(out, "    longest linearizable prefix: {} ops; the last {shown}:", example.prefix_len)?;
    for op in &example.prefix_tail[example.prefix_tail.len() - shown..] {
        writeln!(out, "      {}", op.text)?;
    }
    writeln!(out, "    model state after it: {}", example.state)?;
    writeln!(out, "    stuck: {} returned before it could be linearized", example.stuck_op.text)?;
    writeln!(out, "    concurrent operations at that point:")?;
    for op in &example.concurrent {
        writeln!(out, "      {}", op.text)?;
    }
    Ok(())
}
