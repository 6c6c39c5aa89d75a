//! `faultline check` on a history of transactions (`f` "txn", from
//! faultline JSONL, Jepsen EDN or Jepsen log lines): Elle-style anomalies
//! under a consistency model instead of per-key linearizability.
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use faultline_checkers::read::{is_txn_history, read_txn_path, read_txns_beside_ops, txn_kind, Format, CHUNK_BYTES};
use faultline_checkers::txn::{check_txns, ConsistencyModel, TxnKind, TxnReport};
use faultline_checkers::OpHistory;

/// Anomalies printed in text output; all are in `--format json`.
const TEXT_ANOMALIES_MAX: usize = 10;

/// The kind of transactions a file holds, from its first bytes; None for
/// a history of single-key operations (or a file that cannot be read: the
/// single-key path reports why).
pub fn txn_file_kind(path: &Path) -> Option<TxnKind> {
    let head = head(path)?;
    is_txn_history(&head).then(|| txn_kind(&head))
}

/// The file's first bytes, which the format and kind are told from.
fn head(path: &Path) -> Option<Vec<u8>> {
    let file = std::fs::File::open(path).ok()?;
    let mut head = Vec::new();
    file.take(CHUNK_BYTES as u64).read_to_end(&mut head).ok()?;
    Some(head)
}

/// Reads and checks one transaction history; the report carries how long
/// both took.
pub fn check(path: &Path, kind: TxnKind, model: ConsistencyModel) -> Result<(Format, TxnReport, u64), String> {
    let started = Instant::now();
    let (format, txns) = read_txn_path(path, kind).map_err(|error| error.to_string())?;
    let report = check_txns(kind, &txns, model);
    Ok((format, report, started.elapsed().as_millis() as u64))
}

/// A history that mixes transactions with single-key operations (a
/// faultline run with `workload.transactions`, as the no-flag test's):
/// takes the transactions out of `history`, which the per-key checker
/// judges without them, and returns their kind; None, and `history` left
/// as it was, when it holds one kind only.
pub fn split_transactions(path: &Path, history: &mut OpHistory) -> Option<TxnKind> {
    let is_txn = |op: &faultline_checkers::Op| op.f.name() == faultline_checkers::TXN_F;
    let txns: usize = history.ops_by_key.iter().map(|ops| ops.iter().filter(|op| is_txn(op)).count()).sum();
    if txns == 0 || txns as u64 == history.op_count() {
        return None;
    }
    for ops in &mut history.ops_by_key {
        ops.retain(|op| !is_txn(op));
    }
    // Transactions have no key: the key they were filed under goes.
    let keep: Vec<bool> = history.ops_by_key.iter().map(|ops| !ops.is_empty()).collect();
    let mut kept = keep.iter();
    history.keys.retain(|_| kept.next().copied().unwrap_or(true));
    history.ops_by_key.retain(|ops| !ops.is_empty());
    Some(txn_kind(&head(path)?))
}

/// Reads and checks the transactions of a mixed history (see
/// [`split_transactions`]).
pub fn check_beside_ops(path: &Path, kind: TxnKind, model: ConsistencyModel) -> Result<(TxnReport, u64), String> {
    let started = Instant::now();
    let txns = read_txns_beside_ops(path, kind).map_err(|error| error.to_string())?;
    let report = check_txns(kind, &txns, model);
    Ok((report, started.elapsed().as_millis() as u64))
}

pub fn print_text(out: &mut impl Write, file: &str, report: &TxnReport, elapsed_ms: u64) -> std::io::Result<()> {
    let compatible: Vec<&str> = report.compatible.iter().map(|model| model.name()).collect();
    let compatible = if compatible.is_empty() { "none".to_string() } else { compatible.join(", ") };
    writeln!(
        out,
        "{file}: {} ({} transactions under {}, {} committed, {} edges, {elapsed_ms} ms)",
        report.verdict.name(),
        report.workload.name(),
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
