//! A brute-force oracle for tests: a committed list-append history is
//! serializable when some order of its committed transactions, run one at a
//! time, gives every read exactly the list it returned. Aborted
//! transactions are left out; histories with unknown outcomes are not
//! asked of it.
use std::collections::HashMap;

use super::{Mop, Txn, TxnOutcome};

/// Most committed transactions the oracle tries every order of.
pub(super) const TXNS_MAX: usize = 7;

pub(super) fn serializable(txns: &[Txn]) -> bool {
    let committed: Vec<&Txn> = txns.iter().filter(|txn| txn.outcome == TxnOutcome::Ok).collect();
    assert!(committed.len() <= TXNS_MAX, "the oracle tries every order: at most {TXNS_MAX} transactions");
    let mut order: Vec<usize> = (0..committed.len()).collect();
    permutations(&mut order, 0, &mut |order| runs_serially(&committed, order))
}

/// Strict serializability: some serial order that also keeps every
/// transaction after those that completed before it was invoked.
pub(super) fn strict_serializable(txns: &[Txn]) -> bool {
    let committed: Vec<&Txn> = txns.iter().filter(|txn| txn.outcome == TxnOutcome::Ok).collect();
    assert!(committed.len() <= TXNS_MAX, "the oracle tries every order: at most {TXNS_MAX} transactions");
    let mut order: Vec<usize> = (0..committed.len()).collect();
    let in_real_time = |order: &[usize]| {
        order.iter().enumerate().all(|(at, later)| order[at + 1..].iter().all(|after| committed[*after].return_ns >= committed[*later].call_ns))
    };
    permutations(&mut order, 0, &mut |order| in_real_time(order) && runs_serially(&committed, order))
}

/// Calls `found` on each permutation of `items[at..]` until it says true.
fn permutations(items: &mut Vec<usize>, at: usize, found: &mut dyn FnMut(&[usize]) -> bool) -> bool {
    if at == items.len() {
        return found(items);
    }
    for next in at..items.len() {
        items.swap(at, next);
        if permutations(items, at + 1, found) {
            return true;
        }
        items.swap(at, next);
    }
    false
}

fn runs_serially(committed: &[&Txn], order: &[usize]) -> bool {
    let mut state: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut registers: HashMap<u64, u64> = HashMap::new();
    for &index in order {
        for mop in &committed[index].mops {
            match mop {
                Mop::Write { key, value } => {
                    registers.insert(*key, *value);
                }
                Mop::ReadRegister { key, value: Some(value) } => {
                    if registers.get(key).copied() != *value {
                        return false;
                    }
                }
                Mop::ReadRegister { value: None, .. } => {}
                Mop::Append { key, value } => state.entry(*key).or_default().push(*value),
                Mop::Read { key, list: Some(list) } => {
                    if state.get(key).map_or(&[][..], Vec::as_slice) != list.as_slice() {
                        return false;
                    }
                }
                Mop::Read { list: None, .. } => {}
            }
        }
    }
    true
}
