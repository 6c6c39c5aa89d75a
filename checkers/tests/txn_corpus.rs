//! The corpus of small transaction histories with known answers, one EDN
//! file per anomaly from the definitions (Adya's G0, G1a, G1b, G1c,
//! G-single, G2-item; Elle's read skew, lost update, write skew, stale
//! reads, internal, duplicate, garbage and incompatible reads) and valid
//! ones. Each file says in its header what the checker must find:
//!
//! ```text
//! ; kind: list-append          (or rw-register)
//! ; model: snapshot-isolation  (default strict-serializable)
//! ; expect: G2-item            (anomaly names, comma-separated, or valid)
//! ; verdict: valid             (default: invalid when anything is expected)
//! ```
use std::collections::BTreeSet;
use std::path::PathBuf;

use faultline_checkers::read::read_txn_bytes;
use faultline_checkers::txn::{check_txns, ConsistencyModel, TxnKind};
use faultline_checkers::Verdict;

fn corpus() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/txn-corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    files
}

fn header<'a>(text: &'a str, field: &str) -> Option<&'a str> {
    let prefix = format!("; {field}: ");
    text.lines().find_map(|line| line.strip_prefix(&prefix)).map(str::trim)
}

#[test]
fn every_corpus_history_gets_exactly_its_known_answer() {
    let files = corpus();
    assert!(files.len() >= 19, "the corpus has {} files", files.len());
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let kind = match header(&text, "kind") {
            Some("rw-register") => TxnKind::RwRegister,
            _ => TxnKind::ListAppend,
        };
        let model: ConsistencyModel = header(&text, "model").unwrap_or("strict-serializable").parse().unwrap();
        let expect = header(&text, "expect").unwrap_or_else(|| panic!("{name}: no `; expect:` line"));
        let expected: BTreeSet<&str> = if expect == "valid" { BTreeSet::new() } else { expect.split(',').map(str::trim).collect() };
        let (_, txns) = read_txn_bytes(text.as_bytes(), kind).unwrap_or_else(|e| panic!("{name}: {e}"));
        let report = check_txns(kind, &txns, model);
        let found: BTreeSet<&str> = report.anomalies.iter().map(|anomaly| anomaly.kind.name()).collect();
        assert_eq!(found, expected, "{name}: {:#?}", report.anomalies);
        let verdict = match header(&text, "verdict") {
            Some("valid") => Verdict::Valid,
            _ if expected.is_empty() => Verdict::Valid,
            _ => Verdict::Invalid,
        };
        assert_eq!(report.verdict, verdict, "{name} under {model}");
        for anomaly in &report.anomalies {
            assert!(!anomaly.explanation.is_empty() && !anomaly.txns.is_empty(), "{name}: {anomaly:?}");
        }
    }
}
