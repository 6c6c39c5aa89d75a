//! Transactions checked as Elle checks them: the dependency graph of the
//! committed transactions, each anomaly named with the transactions
//! involved and explained in words.
use faultline_checkers::txn::{check_txns, AnomalyKind, ConsistencyModel, Txn, TxnKind, TxnReport};
use faultline_checkers::Verdict;

use super::{Check, CheckDetails};

pub const NAME: &str = "transactions";

/// The check of a history's transactions of `kind` under `model`.
pub fn check(kind: TxnKind, txns: &[Txn], model: ConsistencyModel) -> Check {
    to_check(check_txns(kind, txns, model))
}

/// The check of a transaction checker's report.
pub fn to_check(report: TxnReport) -> Check {
    let reason = reason(&report);
    Check { name: NAME.to_string(), verdict: report.verdict, reason, details: CheckDetails::Transactions(report) }
}

/// The first anomaly in words, then how many of each kind there were.
fn reason(report: &TxnReport) -> Option<String> {
    match report.verdict {
        Verdict::Valid => None,
        Verdict::Unknown if report.committed == 0 => Some(format!("{NAME}: no transaction committed")),
        Verdict::Unknown => Some(format!("{NAME}: no committed transaction read anything, so nothing was observed")),
        Verdict::Invalid => {
            let first = report.anomalies.iter().find(|anomaly| report.model.forbids(anomaly.kind))?;
            let mut kinds: Vec<(AnomalyKind, usize)> = Vec::new();
            for anomaly in &report.anomalies {
                match kinds.last_mut() {
                    Some((kind, count)) if *kind == anomaly.kind => *count += 1,
                    _ => kinds.push((anomaly.kind, 1)),
                }
            }
            let counts: Vec<String> = kinds.iter().map(|(kind, count)| format!("{count} {}", kind.name())).collect();
            let compatible: Vec<&str> = report.compatible.iter().map(|model| model.name()).collect();
            let compatible = match compatible.is_empty() {
                true => "not even read-committed".to_string(),
                false => format!("at most {}", compatible.join(" or ")),
            };
            Some(format!(
                "{NAME}: not {}: {}: {} ({}; {compatible})",
                report.model.name(),
                first.kind.name(),
                first.explanation,
                counts.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use faultline_checkers::txn::{Mop, TxnOutcome};

    use super::*;

    fn ok(id: u64, mops: Vec<Mop>) -> Txn {
        Txn { id, process: id, outcome: TxnOutcome::Ok, mops, call_ns: id, return_ns: id + 1 }
    }

    #[test]
    fn a_read_skew_is_invalid_and_named_and_a_serial_history_is_valid() {
        let append = |key, value| Mop::Append { key, value };
        let read = |key, list: &[u64]| Mop::Read { key, list: Some(list.to_vec()) };
        let serial = [ok(1, vec![append(1, 1), append(2, 1)]), ok(2, vec![read(1, &[1]), read(2, &[1])])];
        let valid = check(TxnKind::ListAppend, &serial, ConsistencyModel::StrictSerializable);
        assert_eq!((valid.verdict, valid.reason.as_deref()), (Verdict::Valid, None));
        let skew = [ok(1, vec![append(1, 1), append(2, 1)]), ok(2, vec![read(1, &[1]), read(2, &[])])];
        let invalid = check(TxnKind::ListAppend, &skew, ConsistencyModel::StrictSerializable);
        assert_eq!(invalid.verdict, Verdict::Invalid);
        let reason = invalid.reason.clone().unwrap();
        assert!(reason.starts_with("transactions: not strict-serializable: G-single: "), "{reason}");
        assert!(reason.ends_with("(1 G-single; at most read-committed)"), "{reason}");
        let weak = check(TxnKind::ListAppend, &skew, ConsistencyModel::ReadCommitted);
        assert_eq!((weak.verdict, weak.reason), (Verdict::Valid, None), "read committed allows a read skew");
        assert!(matches!(&invalid.details, CheckDetails::Transactions(report) if report.anomalies.len() == 1));
        let json = serde_json::to_string(&invalid).unwrap();
        assert_eq!(serde_json::from_str::<Check>(&json).unwrap(), invalid, "results.json reads the check back");
        let blind = check(TxnKind::ListAppend, &[ok(1, vec![append(1, 1)])], ConsistencyModel::StrictSerializable);
        assert_eq!(blind.verdict, Verdict::Unknown, "nothing read: no evidence");
    }
}
