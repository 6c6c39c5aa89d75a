//! Applying a transaction, all or nothing: its outcome and writes are
//! worked out from the data without changing it, and the caller writes
//! them only if every `cas` held.
use std::collections::BTreeMap;

use super::TxnOp;

/// A transaction that applies: one value per micro-op (`None` for
/// writes), and the final value of each key it writes.
pub(super) struct Commit {
    pub values: Vec<Option<String>>,
    pub writes: BTreeMap<String, String>,
}

/// A transaction that applies nothing: its first `cas` (0-based
/// `position`) found `current` instead of its `from`.
pub(super) struct Mismatch {
    pub position: u64,
    pub current: Option<String>,
}

/// What one micro-op does, given its key's value as the transaction's
/// earlier micro-ops left it.
enum Step {
    Read(Option<String>),
    Write(String),
    Mismatch,
}

impl TxnOp {
    pub fn key(&self) -> &str {
        match self {
            TxnOp::Get { key }
            | TxnOp::Put { key, .. }
            | TxnOp::Append { key, .. }
            | TxnOp::Cas { key, .. } => key,
        }
    }
}

fn step(op: &TxnOp, current: Option<&String>) -> Step {
    match op {
        TxnOp::Get { .. } => Step::Read(current.cloned()),
        TxnOp::Put { value, .. } => Step::Write(value.clone()),
        TxnOp::Append { value, .. } => {
            let mut new_value = current.cloned().unwrap_or_default();
            new_value.push_str(value);
            Step::Write(new_value)
        }
        TxnOp::Cas { from, to, .. } if current == from.as_ref() => Step::Write(to.clone()),
        TxnOp::Cas { .. } => Step::Mismatch,
    }
}

/// Walks `ops` in order over `data` overlaid with the transaction's own
/// writes so far; stops at the first `cas` that fails.
pub(super) fn plan(data: &BTreeMap<String, String>, ops: &[TxnOp]) -> Result<Commit, Mismatch> {
    let mut values = Vec::with_capacity(ops.len());
    let mut writes: BTreeMap<String, String> = BTreeMap::new();
    for (position, op) in ops.iter().enumerate() {
        let key = op.key();
        let current = writes.get(key).or_else(|| data.get(key));
        match step(op, current) {
            Step::Read(value) => values.push(value),
            Step::Write(value) => {
                writes.insert(key.to_string(), value);
                values.push(None);
            }
            Step::Mismatch => {
                let position = u64::try_from(position).expect("a position fits in u64");
                let current = current.cloned();
                return Err(Mismatch { position, current });
            }
        }
    }
    assert_eq!(values.len(), ops.len(), "one value per micro-op");
    assert!(writes.len() <= ops.len(), "at most one write per micro-op");
    Ok(Commit { values, writes })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{append, cmd};
    use super::super::{KvOp, KvState, Outcome};
    use super::*;

    fn get(key: &str) -> TxnOp {
        TxnOp::Get { key: key.into() }
    }

    fn put(key: &str, value: &str) -> TxnOp {
        TxnOp::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    fn append_mop(key: &str, value: &str) -> TxnOp {
        TxnOp::Append {
            key: key.into(),
            value: value.into(),
        }
    }

    fn cas(key: &str, from: Option<&str>, to: &str) -> TxnOp {
        TxnOp::Cas {
            key: key.into(),
            from: from.map(str::to_string),
            to: to.into(),
        }
    }

    fn txn(ops: Vec<TxnOp>) -> KvOp {
        KvOp::Txn { ops }
    }

    fn put_op(key: &str, value: &str) -> KvOp {
        KvOp::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    fn value<'a>(kv: &'a KvState, key: &str) -> Option<&'a str> {
        kv.get(key).map(String::as_str)
    }

    #[test]
    fn a_txn_applies_whole_in_one_entry_and_sees_its_own_writes() {
        let mut kv = KvState::new(4);
        kv.apply(1, &cmd(None, None, append("a", "1")));
        let ops = vec![
            get("a"),
            append_mop("a", " 3"),
            get("a"),
            put("b", "x"),
            get("b"),
        ];
        let outcome = kv.apply(2, &cmd(None, None, txn(ops)));
        let expected = vec![
            Some("1".into()),
            None,
            Some("1 3".into()),
            None,
            Some("x".into()),
        ];
        assert_eq!(outcome, Outcome::Values(expected));
        // The digest moved exactly as plain writes of the final values move it.
        let mut plain = KvState::new(4);
        plain.apply(1, &cmd(None, None, append("a", "1 3")));
        plain.apply(2, &cmd(None, None, append("b", "x")));
        assert_eq!((kv.get("a"), kv.get("b")), (plain.get("a"), plain.get("b")));
        assert_eq!(kv.digest(), plain.digest());
        let empty_read = kv.apply(3, &cmd(None, None, txn(vec![get("absent")])));
        assert_eq!(empty_read, Outcome::Values(vec![None]));
    }

    #[test]
    fn a_retried_txn_applies_once_and_answers_the_same() {
        let mut kv = KvState::new(4);
        let op = txn(vec![get("k"), append_mop("k", "x")]);
        let first = kv.apply(1, &cmd(Some("c1"), Some(4), op.clone()));
        kv.apply(2, &cmd(None, None, append("k", "y")));
        let retry = kv.apply(3, &cmd(Some("c1"), Some(4), op.clone()));
        assert_eq!(first, Outcome::Values(vec![None, None]));
        assert_eq!(retry, first, "the remembered answer, not a second read");
        assert_eq!(value(&kv, "k"), Some("xy"));
        assert_eq!(kv.apply(4, &cmd(Some("c1"), Some(3), op)), Outcome::Stale);
    }

    #[test]
    fn a_txn_entry_is_tagged_by_op_and_its_micro_ops_by_f() {
        let op = txn(vec![get("a"), put("b", "x"), cas("c", None, "y")]);
        let text = serde_json::to_string(&op).unwrap();
        assert_eq!(
            text,
            r#"{"op":"txn","ops":[{"f":"get","key":"a"},{"f":"put","key":"b","value":"x"},{"f":"cas","key":"c","from":null,"to":"y"}]}"#
        );
        assert_eq!(serde_json::from_str::<KvOp>(&text).unwrap(), op);
    }

    /// A bank transfer of 3 from account "0" (10) to account "3" (5).
    #[test]
    fn a_txn_whose_cas_all_hold_applies_every_write() {
        let mut kv = KvState::new(4);
        kv.apply(1, &cmd(None, None, put_op("0", "10")));
        kv.apply(2, &cmd(None, None, put_op("3", "5")));
        let transfer = txn(vec![cas("0", Some("10"), "7"), cas("3", Some("5"), "8")]);
        let outcome = kv.apply(3, &cmd(None, None, transfer));
        assert_eq!(outcome, Outcome::Values(vec![None, None]));
        assert_eq!((value(&kv, "0"), value(&kv, "3")), (Some("7"), Some("8")));
        let mut plain = KvState::new(4);
        plain.apply(1, &cmd(None, None, put_op("3", "8")));
        plain.apply(2, &cmd(None, None, put_op("0", "7")));
        assert_eq!(kv.digest(), plain.digest());
    }

    #[test]
    fn a_mismatching_cas_applies_nothing_and_names_its_position() {
        let mut kv = KvState::new(4);
        kv.apply(1, &cmd(None, None, put_op("0", "10")));
        kv.apply(2, &cmd(None, None, put_op("3", "5")));
        let before = kv.clone();
        let ops = vec![
            put("new", "x"),
            cas("0", Some("10"), "7"),
            append_mop("3", "!"),
            cas("3", Some("5"), "8"),
            put("later", "y"),
        ];
        let outcome = kv.apply(3, &cmd(None, None, txn(ops)));
        let expected = Outcome::TxnCasMismatch {
            position: 3,
            current: Some("5!".into()),
        };
        assert_eq!(outcome, expected, "the value as the txn's append left it");
        assert_eq!(kv, before, "no write of the txn applied");
        assert_eq!(kv.digest(), before.digest());
        let absent = kv.apply(4, &cmd(None, None, txn(vec![cas("gone", Some("1"), "2")])));
        let expected = Outcome::TxnCasMismatch {
            position: 0,
            current: None,
        };
        assert_eq!(absent, expected);
        assert_eq!(kv, before);
    }

    #[test]
    fn a_cas_sees_the_txns_own_earlier_writes() {
        let mut kv = KvState::new(4);
        let ops = vec![
            put("a", "1"),
            cas("a", Some("1"), "2"),
            get("a"),
            cas("b", None, "x"),
            cas("b", Some("x"), "y"),
            get("b"),
        ];
        let outcome = kv.apply(1, &cmd(None, None, txn(ops)));
        let expected = vec![None, None, Some("2".into()), None, None, Some("y".into())];
        assert_eq!(outcome, Outcome::Values(expected));
        assert_eq!((value(&kv, "a"), value(&kv, "b")), (Some("2"), Some("y")));
        // The second cas expects the key absent, as it was before the txn.
        let twice = txn(vec![cas("c", None, "x"), cas("c", None, "z")]);
        let outcome = kv.apply(2, &cmd(None, None, twice));
        let expected = Outcome::TxnCasMismatch {
            position: 1,
            current: Some("x".into()),
        };
        assert_eq!(outcome, expected);
        assert_eq!(kv.get("c"), None, "the first cas did not apply either");
    }

    #[test]
    fn a_retried_mismatch_answers_the_same_mismatch_and_applies_nothing() {
        let mut kv = KvState::new(4);
        kv.apply(1, &cmd(None, None, put_op("0", "9")));
        let transfer = txn(vec![cas("0", Some("10"), "7"), put("3", "8")]);
        let first = kv.apply(2, &cmd(Some("c1"), Some(5), transfer.clone()));
        let mismatch = Outcome::TxnCasMismatch {
            position: 0,
            current: Some("9".into()),
        };
        assert_eq!(first, mismatch);
        // Now the cas would hold; the retry must still not apply it.
        kv.apply(3, &cmd(None, None, put_op("0", "10")));
        let restored = KvState::from_bytes(&kv.to_bytes()).unwrap();
        assert_eq!(restored, kv, "the remembered mismatch survives a snapshot");
        for mut state in [kv, restored] {
            let retry = state.apply(4, &cmd(Some("c1"), Some(5), transfer.clone()));
            assert_eq!(retry, mismatch, "the remembered answer, not a second check");
            assert_eq!((value(&state, "0"), state.get("3")), (Some("10"), None));
        }
    }
}
