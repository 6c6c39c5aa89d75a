//! `faultline check` on a history of transactions (`f` "txn", from
//! faultline JSONL, Jepsen EDN or Jepsen log lines): Elle-style anomalies
//! under a consistency model instead of per-key linearizability.
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use faultline_checkers::read::{read_txn_path, Format};
use faultline_checkers::txn::{check_list_append_under, ConsistencyModel, TxnReport};

/// Anomalies printed in text output; all are in `--format json`.
const TEXT_ANOMALIES_MAX: usize = 10;

/// The first bytes of a file, enough to tell a transaction history.
pub fn is_txn_file(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else { return false };
    let mut head = Vec::new();
    let read = file.take(faultline_checkers::read::CHUNK_BYTES as u64).read_to_end(&mut head);
    read.is_ok() && faultline_checkers::read::is_txn_history(&head)
}

/// Reads and checks one transaction history; the report carries how long
/// both took.
pub fn check(path: &Path, model: ConsistencyModel) -> Result<(Format, TxnReport, u64), String> {
    let started = Instant::now();
    let (format, txns) = read_txn_path(path).map_err(|error| error.to_string())?;
    let report = check_list_append_under(&txns, model);
    Ok((format, report, started.elapsed().as_millis() as u64))
}

pub fn print_text(out: &mut impl Write, file: &str, report: &TxnReport, elapsed_ms: u64) -> std::io::Result<()> {
    let compatible: Vec<&str> = report.compatible.iter().map(|model| model.name()).collect();
    let compatible = if compatible.is_empty() { "none".to_string() } else { compatible.join(", ") };
    writeln!(
        out,
        "{file}: {} (list-append transactions under {}, {} committed, {} edges, {elapsed_ms} ms)",
        report.verdict.name(),
        report.model.name(),
        report.committed,
        report.edges
    )?;
    writeln!(out, "  strongest models still possible: {compatible}")?;
    for anomaly in report.anomalies.iter().take(TEXT_ANOMALIES_MAX) {
        let allowed = if report.model.forbids(anomaly.kind) { "" } else { " (allowed by the model)" };
        writeln!(out, "  {}{allowed}: {}", anomaly.kind.name(), anomaly.explanation)?;
    }
    if report.anomalies.len() > TEXT_ANOMALIES_MAX {
        writeln!(out, "  ({} more anomalies in --format json)", report.anomalies.len() - TEXT_ANOMALIES_MAX)?;
    }
    Ok(())
}
