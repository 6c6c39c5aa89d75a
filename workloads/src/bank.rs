//! Jepsen's bank workload: money moves between accounts, and every read of
//! all the balances must show the same total, none of it negative.
//!
//! Operations (no key):
//! - `transfer`, value `{"from": a, "to": b, "amount": n}`: move `n` (1 to
//!   [`TRANSFER_AMOUNT_MAX`]) from account `a` to account `b`, in one
//!   transaction; a client answers `fail` when `a` holds less than `n`
//!   (nothing moved).
//! - `read`, value the list of accounts `[0, 1, …]` → on ok, the balances
//!   by account: `{"0": 10, "1": 7, …}`, all read in one transaction.
//!
//! Accounts are `0..keys_active`. Every account starts with
//! [`BALANCE_INITIAL`]: a client reads an account never written as holding
//! it, so no set-up phase is needed, and the total is
//! `keys_active × BALANCE_INITIAL`.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::generator::{Context, Generator, Invocation, Next};
use crate::WorkloadConfig;

/// What every account holds before any transfer.
pub const BALANCE_INITIAL: i64 = 10;
/// The largest amount one transfer moves.
pub const TRANSFER_AMOUNT_MAX: u64 = 5;

/// The money in the bank: what every read must add up to.
pub fn total(accounts: u32) -> i64 {
    i64::from(accounts) * BALANCE_INITIAL
}

/// The infinite operation source of the bank workload.
pub struct BankGenerator {
    accounts: u64,
    rng: ChaCha8Rng,
}

impl BankGenerator {
    pub fn new(config: &WorkloadConfig, seed: u64) -> Self {
        assert!(config.keys_active >= 2, "a bank needs two accounts (validated in the spec)");
        BankGenerator { accounts: u64::from(config.keys_active), rng: ChaCha8Rng::seed_from_u64(seed) }
    }
}

impl Generator for BankGenerator {
    fn next(&mut self, _ctx: &Context) -> Next {
        if self.rng.random_bool(0.5) {
            let accounts: Vec<u64> = (0..self.accounts).collect();
            return Next::Invoke(Invocation { f: "read".to_string(), key: None, value: json!(accounts) });
        }
        let from = self.rng.random_range(0..self.accounts);
        let to = (from + self.rng.random_range(1..self.accounts)) % self.accounts;
        let amount = self.rng.random_range(1..=TRANSFER_AMOUNT_MAX);
        Next::Invoke(Invocation { f: "transfer".to_string(), key: None, value: json!({"from": from, "to": to, "amount": amount}) })
    }
}

/// The accounts a read asks for (its invocation's value).
pub fn read_accounts(value: &Value) -> Option<Vec<u64>> {
    value.as_array()?.iter().map(Value::as_u64).collect()
}

/// A transfer's (from, to, amount).
pub fn transfer_of(value: &Value) -> Option<(u64, u64, u64)> {
    Some((value.get("from")?.as_u64()?, value.get("to")?.as_u64()?, value.get("amount")?.as_u64()?))
}
