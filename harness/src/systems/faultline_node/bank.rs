//! The bank on faultline-node: account `i` is key `acct-i`, its balance a
//! decimal string; an account never written holds the workload's initial
//! balance.
//!
//! - A read is one `txn` of a `get` per account: one snapshot.
//! - A transfer is optimistic: a `txn` reads both balances, then a second
//!   `txn` commits both new balances with a `cas` each, which the node
//!   applies all or nothing. A `cas_mismatch` means another transfer came
//!   between, and nothing of this one happened: read again, a bounded
//!   number of times.
use std::time::{Duration, Instant};

use faultline_workloads::bank::{read_accounts, transfer_of, BALANCE_INITIAL};
use faultline_workloads::Invocation;
use serde_json::{json, Map, Value};

use super::client::{refusal, NodeClient};
use crate::client::{Completion, Outcome};

/// Read-then-commit rounds of one transfer before it gives up (each lost
/// round changed nothing).
const TRANSFER_ROUNDS_MAX: u32 = 8;

fn key(account: u64) -> String {
    format!("acct-{account}")
}

/// A balance as stored (None: never written) → its amount.
fn balance(stored: &Value) -> Result<i64, String> {
    match stored {
        Value::Null => Ok(BALANCE_INITIAL),
        Value::String(text) => text.parse().map_err(|_| format!("balance {text:?} is not an integer")),
        other => Err(format!("balance {other} is not a string")),
    }
}

impl NodeClient {
    pub(super) async fn bank(&mut self, invocation: &Invocation) -> Completion {
        let deadline = Instant::now() + Duration::from_millis(self.op_timeout_ms());
        let fail = |why: String| Completion { outcome: Outcome::Fail(why), node: None };
        match invocation.f.as_str() {
            "read" => match read_accounts(&invocation.value) {
                Some(accounts) => self.bank_read(&accounts, deadline).await,
                None => fail(format!("a bank read names its accounts, not {}", invocation.value)),
            },
            "transfer" => match transfer_of(&invocation.value) {
                Some(transfer) => self.transfer(invocation, transfer, deadline).await,
                None => fail(format!("a transfer is {{from, to, amount}}, not {}", invocation.value)),
            },
            other => fail(format!("a bank has no operation {other:?}")),
        }
    }

    async fn bank_read(&mut self, accounts: &[u64], deadline: Instant) -> Completion {
        let gets: Vec<Value> = accounts.iter().map(|account| json!({"f": "get", "key": key(*account)})).collect();
        let (response, node) = match self.round_trip(&json!({"op": "txn", "txn": gets}), left(deadline)).await {
            Ok(answer) => answer,
            Err(completion) => return completion,
        };
        let done = |outcome| Completion { outcome, node: Some(node) };
        if response["ok"] != Value::Bool(true) {
            return done(refusal(&response));
        }
        let values = response["value"].as_array().filter(|values| values.len() == accounts.len());
        let Some(values) = values else { return done(Outcome::Info(format!("unreadable answer {response}"))) };
        let mut balances = Map::new();
        for (account, stored) in accounts.iter().zip(values) {
            match balance(stored) {
                Ok(amount) => balances.insert(account.to_string(), Value::from(amount)),
                Err(why) => return done(Outcome::Info(why)),
            };
        }
        done(Outcome::Ok(Value::Object(balances)))
    }

    async fn transfer(&mut self, invocation: &Invocation, (from, to, amount): (u64, u64, u64), deadline: Instant) -> Completion {
        let amount = i64::try_from(amount).unwrap_or(i64::MAX);
        for _ in 0..TRANSFER_ROUNDS_MAX {
            let read = json!({"op": "txn", "txn": [{"f": "get", "key": key(from)}, {"f": "get", "key": key(to)}]});
            let (response, node) = match self.round_trip(&read, left(deadline)).await {
                Ok(answer) => answer,
                // Nothing was written yet, whatever the read did.
                Err(completion) => return Completion { outcome: Outcome::Fail(reason(&completion)), node: completion.node },
            };
            let done = |outcome| Completion { outcome, node: Some(node) };
            let stored = match (response["ok"] == Value::Bool(true), response["value"].as_array()) {
                (true, Some(values)) if values.len() == 2 => (values[0].clone(), values[1].clone()),
                _ => return done(Outcome::Fail(format!("reading the balances: {}", reason(&done(refusal(&response)))))),
            };
            let (Ok(from_balance), Ok(to_balance)) = (balance(&stored.0), balance(&stored.1)) else {
                return done(Outcome::Fail(format!("unreadable balances {stored:?}")));
            };
            if from_balance < amount {
                return done(Outcome::Fail(format!("account {from} holds {from_balance}, less than {amount}")));
            }
            let cas = |account: u64, old: &Value, new: i64| json!({"f": "cas", "key": key(account), "from": old, "to": new.to_string()});
            let commit = json!({"op": "txn", "txn": [cas(from, &stored.0, from_balance - amount), cas(to, &stored.1, to_balance + amount)]});
            let (response, node) = match self.round_trip(&commit, left(deadline)).await {
                Ok(answer) => answer,
                Err(completion) => return completion,
            };
            if response["ok"] == Value::Bool(true) {
                return Completion { outcome: Outcome::Ok(invocation.value.clone()), node: Some(node) };
            }
            if response["error"] != "cas_mismatch" {
                return Completion { outcome: refusal(&response), node: Some(node) };
            }
        }
        let why = format!("{TRANSFER_ROUNDS_MAX} rounds lost to concurrent transfers");
        Completion { outcome: Outcome::Fail(why), node: None }
    }
}

/// What is left of the operation's time.
fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn reason(completion: &Completion) -> String {
    match &completion.outcome {
        Outcome::Ok(_) => "ok".to_string(),
        Outcome::Fail(why) | Outcome::Info(why) => why.clone(),
    }
}
