//! The bank on etcd: account `i` is key `acct-i`, its balance a decimal
//! string; an account never written holds the workload's initial balance.
//!
//! - A read is one etcd txn of a linearizable range per account and no
//!   compares: one snapshot of every balance.
//! - A transfer reads both balances the same way. If `from` holds less
//!   than the amount it fails: nothing moved. Otherwise one etcd txn
//!   compares both keys' `mod_revision` with the ones read (0 for an
//!   absent key) and puts both new balances. A commit answered
//!   `succeeded: false` changed nothing, and its `failure` branch re-reads
//!   both balances in the same atomic step, so the next attempt needs no
//!   extra round trip; attempts are bounded by `APPEND_ATTEMPTS_MAX`.
//!
//! Trouble before a commit is sent fails a transfer; after, it is `info`
//! (`txn_commit_sent`). A read changes nothing: any trouble fails it.
use faultline_workloads::bank::{read_accounts, transfer_of, BALANCE_INITIAL};
use faultline_workloads::Invocation;
use serde_json::{json, Map, Value};

use super::txn::{nothing_done, put, range, seen_all, unchanged, Seen, TXN_PATH};
use super::{bad_value, EtcdClient, Trouble, APPEND_ATTEMPTS_MAX};
use crate::client::Outcome;

/// Accounts one read accepts: etcd refuses a txn of more than 128
/// operations (its `--max-txn-ops` default), one range per account.
const ACCOUNTS_MAX: usize = 128;

/// A transfer as the workload asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transfer {
    from: u64,
    to: u64,
    amount: i64,
}

impl EtcdClient {
    /// Runs one bank read or transfer; the caller classifies trouble.
    pub(super) async fn bank(&mut self, invocation: &Invocation) -> Result<Outcome, Trouble> {
        match invocation.f.as_str() {
            "read" => match read_accounts(&invocation.value) {
                Some(accounts) if (1..=ACCOUNTS_MAX).contains(&accounts.len()) => self.bank_read(&accounts).await,
                _ => Ok(bad_value(invocation)),
            },
            "transfer" => match transfer(&invocation.value) {
                Some(transfer) => self.transfer(invocation, transfer).await,
                None => Ok(bad_value(invocation)),
            },
            other => Ok(Outcome::Fail(format!("a bank has no operation {other:?}"))),
        }
    }

    async fn bank_read(&mut self, accounts: &[u64]) -> Result<Outcome, Trouble> {
        let names: Vec<String> = accounts.iter().map(|&account| name(account)).collect();
        let reply = self.call(TXN_PATH, read_request(&names)).await?;
        let seen = seen_all(&names, &reply).map_err(Trouble::Unknown)?;
        Ok(match balances(accounts, &seen) {
            Ok(balances) => Outcome::Ok(balances),
            Err(message) => Outcome::Fail(message),
        })
    }

    async fn transfer(&mut self, invocation: &Invocation, transfer: Transfer) -> Result<Outcome, Trouble> {
        let names = [name(transfer.from), name(transfer.to)];
        let reply = self.call(TXN_PATH, read_request(&names)).await.map_err(nothing_done)?;
        let mut seen = seen_all(&names, &reply).map_err(Trouble::NotSent)?;
        for _ in 0..APPEND_ATTEMPTS_MAX {
            // Too little money or an unreadable balance: nothing moved.
            let commit = match commit_request(transfer, &names, &seen) {
                Ok(commit) => commit,
                Err(message) => return Ok(Outcome::Fail(message)),
            };
            self.txn_commit_sent = true;
            let reply = self.call(TXN_PATH, commit).await?;
            if reply["succeeded"] == Value::Bool(true) {
                return Ok(Outcome::Ok(invocation.value.clone()));
            }
            // Not succeeded (the gateway omits a false `succeeded`): nothing
            // was put; a reply that is not the failure branch's ranges
            // leaves that unproven, hence Unknown.
            seen = seen_all(&names, &reply).map_err(Trouble::Unknown)?;
            self.txn_commit_sent = false;
        }
        Ok(Outcome::Fail(format!("transfer conflict: a balance changed under each of {APPEND_ATTEMPTS_MAX} commits")))
    }
}

fn name(account: u64) -> String {
    format!("acct-{account}")
}

/// A transfer's value, or None when malformed (from and to the same
/// account would be two puts of one key, which etcd refuses).
fn transfer(value: &Value) -> Option<Transfer> {
    let (from, to, amount) = transfer_of(value)?;
    let amount = i64::try_from(amount).ok()?;
    (from != to && amount > 0).then_some(Transfer { from, to, amount })
}

/// Every account in one txn without compares, so one snapshot.
fn read_request(names: &[String]) -> Value {
    json!({"compare": [], "success": names.iter().map(|name| range(name)).collect::<Vec<_>>()})
}

/// A balance as stored; an account never written holds the initial one.
fn balance(seen: &Seen) -> Result<i64, String> {
    match seen.stored() {
        None => Ok(BALANCE_INITIAL),
        Some(text) => text.parse().map_err(|_| format!("balance {text:?} is not an integer")),
    }
}

/// A read's completion value: `{"<account>": balance, ...}`.
fn balances(accounts: &[u64], seen: &[Seen]) -> Result<Value, String> {
    assert_eq!(accounts.len(), seen.len(), "a range per account");
    let mut balances = Map::new();
    for (account, seen) in accounts.iter().zip(seen) {
        balances.insert(account.to_string(), Value::from(balance(seen)?));
    }
    Ok(Value::Object(balances))
}

/// The txn moving the money if both balances are still as `seen` (from,
/// then to) read them, re-reading both if not; or why nothing may move.
fn commit_request(transfer: Transfer, names: &[String; 2], seen: &[Seen]) -> Result<Value, String> {
    assert_eq!(seen.len(), 2, "both balances were read");
    let (from_balance, to_balance) = (balance(&seen[0])?, balance(&seen[1])?);
    if from_balance < transfer.amount {
        return Err(format!("account {} holds {from_balance}, less than {}", transfer.from, transfer.amount));
    }
    let to_new =
        to_balance.checked_add(transfer.amount).ok_or_else(|| format!("account {} would overflow", transfer.to))?;
    let from_new = from_balance - transfer.amount;
    let compare = [unchanged(&names[0], &seen[0]), unchanged(&names[1], &seen[1])];
    let success = [put(&names[0], &from_new.to_string()), put(&names[1], &to_new.to_string())];
    Ok(json!({"compare": compare, "success": success, "failure": [range(&names[0]), range(&names[1])]}))
}

#[cfg(test)]
mod tests {
    use super::super::base64_encode;
    use super::*;

    fn held(text: &str, mod_revision: u64) -> Seen {
        Seen { text: text.to_string(), mod_revision }
    }

    fn names(from: u64, to: u64) -> [String; 2] {
        [name(from), name(to)]
    }

    #[test]
    fn transfers_are_read_strictly() {
        let value = json!({"from": 1, "to": 2, "amount": 3});
        assert_eq!(transfer(&value), Some(Transfer { from: 1, to: 2, amount: 3 }));
        assert_eq!(transfer(&json!({"from": 1, "to": 1, "amount": 3})), None, "one account twice");
        assert_eq!(transfer(&json!({"from": 1, "to": 2, "amount": 0})), None);
        assert_eq!(transfer(&json!({"from": 1, "to": 2})), None);
        assert_eq!(transfer(&json!({"from": 1, "to": 2, "amount": u64::MAX})), None);
    }

    #[test]
    fn a_read_is_one_txn_of_linearizable_ranges_of_acct_keys() {
        let request = read_request(&[name(0), name(4)]);
        let range = |key: &str| json!({"request_range": {"key": base64_encode(key.as_bytes()), "serializable": false}});
        assert_eq!(request, json!({"compare": [], "success": [range("acct-0"), range("acct-4")]}));
    }

    #[test]
    fn balances_are_integers_by_account_and_never_written_ones_hold_the_initial_balance() {
        let seen = [held("", 0), held("7", 12), held("0", 3)];
        let expected = json!({"0": BALANCE_INITIAL, "1": 7, "4": 0});
        assert_eq!(balances(&[0, 1, 4], &seen).unwrap(), expected);
        assert!(balances(&[0], &[held("x", 2)]).is_err());
    }

    #[test]
    fn the_commit_compares_both_accounts_and_puts_both_new_balances() {
        let seen = [held("8", 14), held("", 0)];
        let request = commit_request(Transfer { from: 2, to: 5, amount: 3 }, &names(2, 5), &seen).unwrap();
        let (two, five) = (base64_encode(b"acct-2"), base64_encode(b"acct-5"));
        let compare = json!([
            {"key": two, "target": "MOD", "result": "EQUAL", "mod_revision": "14"},
            {"key": five, "target": "MOD", "result": "EQUAL", "mod_revision": "0"},
        ]);
        assert_eq!(request["compare"], compare);
        let puts = json!([
            {"request_put": {"key": two, "value": base64_encode(b"5")}},
            {"request_put": {"key": five, "value": base64_encode(format!("{}", BALANCE_INITIAL + 3).as_bytes())}},
        ]);
        assert_eq!(request["success"], puts);
        assert_eq!(request["failure"], json!([range("acct-2"), range("acct-5")]));
    }

    #[test]
    fn a_transfer_of_more_than_the_balance_moves_nothing() {
        let seen = [held("2", 14), held("9", 3)];
        let refused = commit_request(Transfer { from: 2, to: 5, amount: 3 }, &names(2, 5), &seen);
        assert_eq!(refused, Err("account 2 holds 2, less than 3".to_string()));
        let exact = commit_request(Transfer { from: 2, to: 5, amount: 2 }, &names(2, 5), &seen).unwrap();
        assert_eq!(exact["success"][0]["request_put"]["value"], base64_encode(b"0"), "down to zero is allowed");
        assert!(
            commit_request(Transfer { from: 2, to: 5, amount: 1 }, &names(2, 5), &[held("x", 1), held("", 0)]).is_err()
        );
    }
}
