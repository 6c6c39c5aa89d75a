//! List-append transaction histories read from Jepsen EDN (one map per line
//! and pretty-printed vectors), faultline JSONL and Jepsen log lines, then
//! checked as Elle checks them.
use std::path::PathBuf;

use faultline_checkers::read::{is_txn_history, read_txn_bytes, read_txn_path, Format};
use faultline_checkers::txn::{check_list_append, AnomalyKind, Mop, Txn, TxnKind, TxnOutcome};
use faultline_checkers::{ReadError, Verdict};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap()
}

fn kinds(txns: &[Txn]) -> (Verdict, Vec<AnomalyKind>) {
    let report = check_list_append(txns);
    (report.verdict, report.anomalies.iter().map(|anomaly| anomaly.kind).collect())
}

/// Ids are lines, which differ between shapes of one history.
fn without_ids(txns: &[Txn]) -> Vec<Txn> {
    txns.iter().map(|txn| Txn { id: 0, ..txn.clone() }).collect()
}

#[test]
fn an_edn_read_skew_is_g_single() {
    let (format, txns) = read_txn_bytes(read("txn-g-single.edn").as_bytes(), TxnKind::ListAppend).unwrap();
    assert_eq!(format, Format::Edn);
    assert_eq!(txns.len(), 3);
    assert_eq!(txns[1].mops, [Mop::Read { key: 1, list: Some(vec![1]) }, Mop::Read { key: 2, list: Some(vec![]) }]);
    assert_eq!((txns[1].id, txns[1].call_ns, txns[1].return_ns), (2, 1100, 2100), "id = line, time = :time");
    let (verdict, anomalies) = kinds(&txns);
    assert_eq!(verdict, Verdict::Invalid);
    assert!(anomalies.contains(&AnomalyKind::GSingle), "{anomalies:?}");
}

#[test]
fn a_serial_edn_history_is_valid() {
    let text = "{:type :invoke, :process 0, :f :txn, :value [[:append 1 1] [:append 2 1]], :time 1}\n\
                {:type :ok, :process 0, :f :txn, :value [[:append 1 1] [:append 2 1]], :time 2}\n\
                {:type :invoke, :process 1, :f :txn, :value [[:r 1 nil] [:r 2 nil] [:append 1 2]], :time 3}\n\
                {:type :ok, :process 1, :f :txn, :value [[:r 1 [1]] [:r 2 [1]] [:append 1 2]], :time 4}\n\
                {:type :invoke, :process 2, :f :txn, :value [[:append 2 2]], :time 5}\n\
                {:type :fail, :process 2, :f :txn, :value [[:append 2 2]], :time 6, :error :aborted}\n";
    let (_, txns) = read_txn_bytes(text.as_bytes(), TxnKind::ListAppend).unwrap();
    assert_eq!(txns[2].outcome, TxnOutcome::Fail, "Jepsen's :fail of a transaction is an abort");
    assert_eq!(kinds(&txns), (Verdict::Valid, vec![]));
}

#[test]
fn jsonl_and_edn_give_the_same_transactions() {
    let (format, from_jsonl) = read_txn_path(&data("txn-g-single.jsonl"), TxnKind::ListAppend).unwrap();
    assert_eq!(format, Format::Jsonl);
    let (format, from_edn) = read_txn_path(&data("txn-g-single.edn"), TxnKind::ListAppend).unwrap();
    assert_eq!(format, Format::Edn);
    assert_eq!(from_jsonl, from_edn);
}

#[test]
fn a_pretty_printed_vector_reads_as_one_map_per_line() {
    let (format, from_vector) = read_txn_bytes(read("txn-g-single-vector.edn").as_bytes(), TxnKind::ListAppend).unwrap();
    assert_eq!(format, Format::Edn);
    let (_, from_lines) = read_txn_bytes(read("txn-g-single.edn").as_bytes(), TxnKind::ListAppend).unwrap();
    assert_eq!(without_ids(&from_vector), without_ids(&from_lines));
    // Named by the lines their invocations open on.
    assert_eq!(from_vector.iter().map(|txn| txn.id).collect::<Vec<_>>(), [3, 5, 13]);
    assert!(kinds(&from_vector).1.contains(&AnomalyKind::GSingle));
}

#[test]
fn jepsen_log_lines_are_read_too() {
    let text = "INFO  jepsen.core - starting\n\
                INFO  jepsen.util - 0\t:invoke\t:txn\t[[:append 1 1]]\n\
                INFO  jepsen.util - :nemesis\t:info\t:start\tpartitioned {n1 n2}\n\
                INFO  jepsen.util - 0\t:ok\t:txn\t[[:append 1 1]]\n\
                INFO  jepsen.util - 1\t:invoke\t:txn\t[[:r 1 nil]]\n\
                INFO  jepsen.util - 1\t:ok\t:txn\t[[:r 1 [1]]]\n";
    let (format, txns) = read_txn_bytes(text.as_bytes(), TxnKind::ListAppend).unwrap();
    assert_eq!(format, Format::JepsenLog);
    assert_eq!(txns.iter().map(|txn| (txn.id, txn.call_ns)).collect::<Vec<_>>(), [(2, 2), (5, 5)]);
    assert_eq!(kinds(&txns).0, Verdict::Valid);
    assert!(is_txn_history(text.as_bytes()));
}

#[test]
fn malformed_transactions_are_one_line_errors() {
    let invoke = "{:type :invoke, :process 0, :f :txn, :value [[:append 1 1]]}";
    let cases = [
        (format!("{invoke}\n{{:type :ok, :process 0, :f :txn, :value [[:w 1 1]]}}\n"), 2, "\"append\" or \"r\""),
        (format!("[{invoke}\n {{:type :ok, :process 1, :f :txn, :value [[:append 1 1]]}}]"), 2, "never invoked"),
        (format!("{invoke}\n{{:type :invoke, :process 1, :f :read, :value nil}}\n"), 2, "not a transaction"),
        (format!("[{invoke}\n\n {{:type :ok, :process 0, :f :txn,\n :value [[:append 1 1]], :time -1}}]"), 3, "negative :time"),
        (format!("[{invoke}\n {{:type :ok, :process 0, :f :txn, :value [[:append 1 1.5]]}}]"), 2, "non-negative integer"),
        (format!("[{invoke}\n"), 1, "never closed"),
    ];
    for (text, want_line, needle) in cases {
        let error = read_txn_bytes(text.as_bytes(), TxnKind::ListAppend).unwrap_err();
        let line = match &error {
            ReadError::BadLine { line, .. } | ReadError::Pairing { line, .. } => *line,
            other => panic!("{text}: expected a line's error, got {other:?}"),
        };
        let message = error.to_string();
        assert_eq!(line, want_line, "{text}: {message}");
        assert!(message.contains(needle) && !message.contains('\n'), "{text}: {message}");
    }
}

#[test]
fn is_txn_history_looks_at_the_first_client_operation() {
    // Each file, and where its second operation starts.
    for (name, second) in [("txn-g-single.edn", "\n"), ("txn-g-single.jsonl", "\n"), ("txn-g-single-vector.edn", ":index 1")] {
        let text = read(name);
        assert!(is_txn_history(text.as_bytes()), "{name}");
        // A head cut inside its second operation still shows the first.
        let cut = text.find(second).unwrap() + 20;
        assert!(is_txn_history(&text.as_bytes()[..cut]), "{name} cut");
    }
    let nemesis_first = "{:process :nemesis, :type :info, :f :start, :value nil}\n{:process 0, :type :invoke, :f :txn, :value []}\n";
    assert!(is_txn_history(nemesis_first.as_bytes()));
    for name in ["cas-register-lines.edn", "cas-register-vector.edn"] {
        assert!(!is_txn_history(read(name).as_bytes()), "{name}");
    }
    let register = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time_ns\":1}\n";
    assert!(!is_txn_history(register.as_bytes()));
    assert!(!is_txn_history(b"hello"));
    assert!(!is_txn_history(b""));
}
