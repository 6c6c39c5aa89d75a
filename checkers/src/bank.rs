//! Jepsen's bank checker: money moves between accounts by transfers, so
//! every committed read of all the balances must add up to the same
//! total, and (unless allowed) show no balance below zero.
//!
//! A read is `f: "read"` whose `ok` value maps each account to its
//! balance: `{"0": 10, "1": 7}` (keys are account numbers as text, as JSON
//! objects need; EDN maps with integer keys read the same). Transfers are
//! not checked one by one: a lost, doubled or half-applied transfer shows
//! in the totals that reads see.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ReadError;
use crate::history::{Event, EventType, Process};
use crate::verdict::Verdict;

/// Wrong reads kept in a report; the rest are counted.
pub const BAD_READS_KEPT_MAX: usize = 100;

/// What the bank must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankConfig {
    /// Accounts `0..accounts`: every read must show each of them.
    pub accounts: u32,
    /// What every read must add up to.
    pub total: i64,
    pub negative_allowed: bool,
}

/// One committed read of the balances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankRead {
    /// The history line of its completion.
    pub line: u32,
    pub time_ns: u64,
    pub node: Option<String>,
    pub balances: BTreeMap<u64, i64>,
}

/// Collects the committed reads of a bank history as events stream in.
#[derive(Default)]
pub struct BankHistoryBuilder {
    reads: Vec<BankRead>,
}

impl BankHistoryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one event read from `line`: an `ok` read keeps its balances,
    /// everything else is skipped. A read whose value is not a map of
    /// accounts to integers is a malformed history.
    pub fn push(&mut self, line: u32, event: &Event) -> Result<(), ReadError> {
        if event.process == Process::Nemesis || event.kind != EventType::Ok || event.f != "read" {
            return Ok(());
        }
        let balances = balances(&event.value)
            .ok_or_else(|| ReadError::BadLine { line, message: format!("a bank read's value is a map of accounts to balances, not {}", event.value) })?;
        self.reads.push(BankRead { line, time_ns: event.time_ns, node: event.node.clone(), balances });
        Ok(())
    }

    pub fn finish(self) -> Vec<BankRead> {
        self.reads
    }
}

fn balances(value: &Value) -> Option<BTreeMap<u64, i64>> {
    value.as_object()?.iter().map(|(account, balance)| Some((account.parse().ok()?, balance.as_i64()?))).collect()
}

/// Why a read is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BankError {
    /// The balances add up to another total: money was made or lost.
    WrongTotal { total: i64 },
    /// An account below zero.
    Negative { account: u64, balance: i64 },
    /// Accounts missing from the read, or ones that do not exist.
    WrongAccounts { missing: Vec<u64>, unknown: Vec<u64> },
}

/// One wrong read, named by its line, with why in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRead {
    pub line: u32,
    pub time_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub errors: Vec<BankError>,
    pub explanation: String,
}

/// What the bank checker found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankReport {
    /// Invalid with any wrong read; valid with none and at least one read
    /// (evidence); unknown with no read at all.
    pub verdict: Verdict,
    pub config: BankConfig,
    pub reads: usize,
    pub bad_count: usize,
    /// The first [`BAD_READS_KEPT_MAX`] wrong reads.
    pub bad: Vec<BadRead>,
}

/// Checks every committed read against `config`.
pub fn check_bank(reads: &[BankRead], config: BankConfig) -> BankReport {
    let mut bad = Vec::new();
    let mut bad_count = 0;
    for read in reads {
        let errors = read_errors(read, config);
        if errors.is_empty() {
            continue;
        }
        bad_count += 1;
        if bad.len() < BAD_READS_KEPT_MAX {
            let explanation = explain(read, &errors, config);
            bad.push(BadRead { line: read.line, time_ns: read.time_ns, node: read.node.clone(), errors, explanation });
        }
    }
    let verdict = match (bad_count, reads.len()) {
        (0, 0) => Verdict::Unknown,
        (0, _) => Verdict::Valid,
        _ => Verdict::Invalid,
    };
    BankReport { verdict, config, reads: reads.len(), bad_count, bad }
}

fn read_errors(read: &BankRead, config: BankConfig) -> Vec<BankError> {
    let mut errors = Vec::new();
    let missing: Vec<u64> = (0..u64::from(config.accounts)).filter(|account| !read.balances.contains_key(account)).collect();
    let unknown: Vec<u64> = read.balances.keys().copied().filter(|account| *account >= u64::from(config.accounts)).collect();
    if !missing.is_empty() || !unknown.is_empty() {
        errors.push(BankError::WrongAccounts { missing, unknown });
    }
    let total = read.balances.values().fold(0i64, |sum, balance| sum.saturating_add(*balance));
    if total != config.total {
        errors.push(BankError::WrongTotal { total });
    }
    if !config.negative_allowed {
        let negative = read.balances.iter().filter(|(_, balance)| **balance < 0);
        errors.extend(negative.map(|(account, balance)| BankError::Negative { account: *account, balance: *balance }));
    }
    errors
}

fn explain(read: &BankRead, errors: &[BankError], config: BankConfig) -> String {
    let node = read.node.as_deref().map_or(String::new(), |node| format!(" from {node}"));
    let said: Vec<String> = errors
        .iter()
        .map(|error| match error {
            BankError::WrongTotal { total } => format!("the balances add up to {total}, not {}", config.total),
            BankError::Negative { account, balance } => format!("account {account} holds {balance}"),
            BankError::WrongAccounts { missing, unknown } => format!("accounts missing {missing:?}, unknown {unknown:?}"),
        })
        .collect();
    format!("the read on line {}{node} saw {:?}: {}", read.line, read.balances, said.join("; "))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CONFIG: BankConfig = BankConfig { accounts: 3, total: 30, negative_allowed: false };

    fn reads(values: &[Value]) -> Vec<BankRead> {
        let mut builder = BankHistoryBuilder::new();
        for (at, value) in values.iter().enumerate() {
            let event = |kind| Event {
                process: Process::Client(0),
                kind,
                f: "read".into(),
                key: None,
                value: value.clone(),
                time_ns: at as u64,
                node: Some("n1".into()),
                error: None,
            };
            builder.push(2 * at as u32 + 1, &event(EventType::Invoke)).unwrap();
            builder.push(2 * at as u32 + 2, &event(EventType::Ok)).unwrap();
        }
        builder.finish()
    }

    #[test]
    fn conserved_totals_are_valid_and_every_wrong_read_is_named() {
        let good = reads(&[json!({"0": 10, "1": 10, "2": 10}), json!({"0": 3, "1": 17, "2": 10})]);
        assert_eq!(check_bank(&good, CONFIG).verdict, Verdict::Valid);
        assert_eq!(check_bank(&[], CONFIG).verdict, Verdict::Unknown, "no read, no evidence");
        let bad = reads(&[json!({"0": 10, "1": 15, "2": 10}), json!({"0": -2, "1": 22, "2": 10}), json!({"0": 30, "1": 0})]);
        let report = check_bank(&bad, CONFIG);
        assert_eq!((report.verdict, report.bad_count), (Verdict::Invalid, 3));
        assert_eq!(report.bad[0].errors, vec![BankError::WrongTotal { total: 35 }]);
        assert!(report.bad[0].explanation.contains("line 2 from n1") && report.bad[0].explanation.contains("add up to 35, not 30"));
        assert_eq!(report.bad[1].errors, vec![BankError::Negative { account: 0, balance: -2 }]);
        assert_eq!(report.bad[2].errors, vec![BankError::WrongAccounts { missing: vec![2], unknown: vec![] }]);
        let lenient = BankConfig { negative_allowed: true, ..CONFIG };
        assert_eq!(check_bank(&bad[1..2], lenient).verdict, Verdict::Valid);
    }

    #[test]
    fn a_read_that_is_not_a_map_of_balances_is_a_malformed_history() {
        let event = Event { process: Process::Client(0), kind: EventType::Ok, f: "read".into(), key: None, value: json!([1, 2]), time_ns: 0, node: None, error: None };
        let error = BankHistoryBuilder::new().push(7, &event).unwrap_err().to_string();
        assert!(error.starts_with("line 7:") && error.contains("map of accounts"), "{error}");
    }
}
