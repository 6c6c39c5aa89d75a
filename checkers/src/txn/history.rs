//! Transactions from history events: each `txn` invocation paired with its
//! completion, micro-operations parsed once into [`Mop`]s.
//!
//! A transaction's value is a list of `[f, key, value]` micro-operations.
//! List-append: `["append", 3, 7]` and `["r", 3, null]` on invoke,
//! `["r", 3, [1, 7]]` on ok (`null` there, as Elle writes a missing key, is
//! the empty list). Rw-register: `["w", 3, 7]` and `["r", 3, null]`, the
//! read `["r", 3, 7]` or `["r", 3, null]` (nil) on ok. Keys and written
//! values are non-negative integers. An `ok` takes its micro-operations
//! from the completion (they carry the reads); `fail` and `info` keep the
//! invocation's, with no read results.
use rustc_hash::FxHashMap;
use serde_json::Value;

use super::{Mop, Txn, TxnKind, TxnOutcome};
use crate::error::ReadError;
use crate::history::{Event, EventType, Process};
use crate::op::RETURN_NEVER_NS;

/// Micro-operations one transaction may hold; a longer one is refused as a
/// malformed history rather than slowing every later stage.
pub const TXN_MOPS_MAX: usize = 4096;

struct Pending {
    line: u32,
    mops: Vec<Mop>,
    call_ns: u64,
}

/// Pairs `txn` events as they stream in; see the module docs.
pub struct TxnHistoryBuilder {
    kind: TxnKind,
    pending: FxHashMap<u64, Pending>,
    txns: Vec<Txn>,
}

impl TxnHistoryBuilder {
    pub fn new(kind: TxnKind) -> Self {
        TxnHistoryBuilder { kind, pending: FxHashMap::default(), txns: Vec::new() }
    }

    /// Adds one event read from `line`; nemesis events are skipped. After
    /// an error the history is incomplete: stop pushing and report it.
    pub fn push(&mut self, line: u32, event: &Event) -> Result<(), ReadError> {
        let Process::Client(process) = event.process else {
            return Ok(());
        };
        if event.f != crate::TXN_F {
            let message = format!("`{}` is not a transaction (expected f \"txn\")", event.f);
            return Err(ReadError::BadLine { line, message });
        }
        if event.kind == EventType::Invoke {
            let mops = parse_mops(self.kind, &event.value, line, false)?;
            let pending = Pending { line, mops, call_ns: event.time_ns };
            if let Some(earlier) = self.pending.insert(process, pending) {
                let message = format!("process {process} invokes again while its transaction of line {} is pending", earlier.line);
                return Err(ReadError::Pairing { line, message });
            }
            return Ok(());
        }
        let Some(pending) = self.pending.remove(&process) else {
            let message = format!("process {process} completes a transaction it never invoked");
            return Err(ReadError::Pairing { line, message });
        };
        let (outcome, mops, return_ns) = match event.kind {
            EventType::Ok => (TxnOutcome::Ok, completed_mops(self.kind, &pending, &event.value, line)?, event.time_ns),
            EventType::Fail => (TxnOutcome::Fail, pending.mops, event.time_ns),
            _ => (TxnOutcome::Info, pending.mops, RETURN_NEVER_NS),
        };
        self.txns.push(Txn { id: u64::from(pending.line), process, outcome, mops, call_ns: pending.call_ns, return_ns });
        Ok(())
    }

    /// The transactions, in invocation order; one still pending is `info`.
    pub fn finish(mut self) -> Vec<Txn> {
        for (process, pending) in self.pending.drain() {
            self.txns.push(Txn {
                id: u64::from(pending.line),
                process,
                outcome: TxnOutcome::Info,
                mops: pending.mops,
                call_ns: pending.call_ns,
                return_ns: RETURN_NEVER_NS,
            });
        }
        self.txns.sort_unstable_by_key(|txn| txn.id);
        self.txns
    }
}

/// The completion's micro-operations, which must be the invocation's with
/// the reads filled in.
fn completed_mops(kind: TxnKind, pending: &Pending, value: &Value, line: u32) -> Result<Vec<Mop>, ReadError> {
    let mops = parse_mops(kind, value, line, true)?;
    let same_shape = mops.len() == pending.mops.len()
        && mops.iter().zip(&pending.mops).all(|(done, asked)| match (done, asked) {
            (Mop::Append { .. }, Mop::Append { .. }) | (Mop::Write { .. }, Mop::Write { .. }) => done == asked,
            (Mop::Read { key, .. }, Mop::Read { key: asked, .. }) => key == asked,
            (Mop::ReadRegister { key, .. }, Mop::ReadRegister { key: asked, .. }) => key == asked,
            _ => false,
        });
    if !same_shape {
        let message = format!("the transaction completes with other micro-operations than line {} invoked", pending.line);
        return Err(ReadError::Pairing { line, message });
    }
    Ok(mops)
}

/// `completed`: the micro-operations of an `ok`, whose reads are results.
fn parse_mops(kind: TxnKind, value: &Value, line: u32, completed: bool) -> Result<Vec<Mop>, ReadError> {
    let bad = |message: String| ReadError::BadLine { line, message };
    let list = value.as_array().ok_or_else(|| bad(format!("a transaction's value is a list of micro-operations, not {value}")))?;
    if list.len() > TXN_MOPS_MAX {
        return Err(bad(format!("{} micro-operations in one transaction (at most {TXN_MOPS_MAX})", list.len())));
    }
    let parse = |mop: &Value| parse_mop(kind, mop, completed).map_err(|why| bad(format!("micro-operation {mop}: {why}")));
    list.iter().map(parse).collect()
}

fn parse_mop(kind: TxnKind, mop: &Value, completed: bool) -> Result<Mop, &'static str> {
    let [f, key, value] = mop.as_array().map(Vec::as_slice).unwrap_or_default() else {
        return Err("expected [f, key, value]");
    };
    let key = key.as_u64().ok_or("the key must be a non-negative integer")?;
    match (kind, f.as_str()) {
        (TxnKind::ListAppend, Some("append")) => {
            let value = value.as_u64().ok_or("an appended value must be a non-negative integer")?;
            Ok(Mop::Append { key, value })
        }
        (TxnKind::ListAppend, Some("r")) => Ok(Mop::Read { key, list: read_list(value, completed)? }),
        (TxnKind::ListAppend, _) => Err("f must be \"append\" or \"r\" in a list-append transaction"),
        (TxnKind::RwRegister, Some("w")) => {
            let value = value.as_u64().ok_or("a written value must be a non-negative integer")?;
            Ok(Mop::Write { key, value })
        }
        (TxnKind::RwRegister, Some("r")) => Ok(Mop::ReadRegister { key, value: read_register(value, completed)? }),
        (TxnKind::RwRegister, _) => Err("f must be \"w\" or \"r\" in a rw-register transaction"),
    }
}

fn read_register(value: &Value, completed: bool) -> Result<Option<Option<u64>>, &'static str> {
    match (value, completed) {
        (_, false) => Ok(None),
        (Value::Null, true) => Ok(Some(None)),
        (value, true) => value.as_u64().map(|v| Some(Some(v))).ok_or("a register read must be null or a non-negative integer"),
    }
}

fn read_list(value: &Value, completed: bool) -> Result<Option<Vec<u64>>, &'static str> {
    match value {
        // Elle's nil for a key never appended to.
        Value::Null if completed => Ok(Some(Vec::new())),
        Value::Null => Ok(None),
        Value::Array(items) => {
            let list: Option<Vec<u64>> = items.iter().map(Value::as_u64).collect();
            list.map(Some).ok_or("a read's list must hold non-negative integers")
        }
        _ => Err("a read's value must be null or a list"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(process: u64, kind: EventType, value: Value, time_ns: u64) -> Event {
        Event { process: Process::Client(process), kind, f: "txn".into(), key: None, value, time_ns, node: None, error: None }
    }

    #[test]
    fn pairs_transactions_and_takes_reads_from_the_completion() {
        let mut builder = TxnHistoryBuilder::new(TxnKind::ListAppend);
        let events = [
            event(0, EventType::Invoke, json!([["append", 1, 1], ["r", 1, null]]), 10),
            event(1, EventType::Invoke, json!([["r", 2, null]]), 11),
            event(0, EventType::Ok, json!([["append", 1, 1], ["r", 1, [1]]]), 20),
            event(2, EventType::Invoke, json!([["append", 2, 1]]), 21),
            event(1, EventType::Info, json!(null), 30),
            event(2, EventType::Fail, json!(null), 31),
        ];
        for (line, event) in events.iter().enumerate() {
            builder.push(line as u32 + 1, event).unwrap();
        }
        builder.push(7, &event(3, EventType::Invoke, json!([["append", 3, 1]]), 40)).unwrap();
        let txns = builder.finish();
        let summary: Vec<(u64, TxnOutcome, u64, u64)> =
            txns.iter().map(|txn| (txn.id, txn.outcome, txn.call_ns, txn.return_ns)).collect();
        assert_eq!(
            summary,
            [
                (1, TxnOutcome::Ok, 10, 20),
                (2, TxnOutcome::Info, 11, RETURN_NEVER_NS),
                (4, TxnOutcome::Fail, 21, 31),
                (7, TxnOutcome::Info, 40, RETURN_NEVER_NS),
            ]
        );
        assert_eq!(txns[0].mops[1], Mop::Read { key: 1, list: Some(vec![1]) });
        assert_eq!(txns[1].mops[0], Mop::Read { key: 2, list: None });
    }

    #[test]
    fn malformed_transactions_are_one_line_errors() {
        let cases = [
            (json!({"a": 1}), "list of micro-operations"),
            (json!([["append", -1, 2]]), "non-negative integer"),
            (json!([["w", 1, 2]]), "\"append\" or \"r\" in a list-append"),
            (json!([["r", 1, "x"]]), "null or a list"),
            (json!([["append", 1]]), "[f, key, value]"),
        ];
        for (value, needle) in cases {
            let error = TxnHistoryBuilder::new(TxnKind::ListAppend).push(3, &event(0, EventType::Invoke, value.clone(), 1)).unwrap_err();
            let text = error.to_string();
            assert!(text.starts_with("line 3:") && text.contains(needle), "{value}: {text}");
        }
        let mut builder = TxnHistoryBuilder::new(TxnKind::ListAppend);
        builder.push(1, &event(0, EventType::Invoke, json!([["append", 1, 2]]), 1)).unwrap();
        let error = builder.push(2, &event(0, EventType::Ok, json!([["append", 1, 3]]), 2)).unwrap_err();
        assert!(error.to_string().contains("other micro-operations"), "{error}");
        let read = Event { f: "read".into(), ..event(0, EventType::Invoke, json!(null), 1) };
        assert!(TxnHistoryBuilder::new(TxnKind::ListAppend).push(1, &read).unwrap_err().to_string().contains("not a transaction"));
    }
}
