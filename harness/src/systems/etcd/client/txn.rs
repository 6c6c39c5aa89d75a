//! List-append transactions (`f: "txn"`) on etcd, as issue 19 asks: a
//! read-modify-write is an etcd `Txn` comparing the `mod_revision` of every
//! key it read.
//!
//! 1. One etcd txn with a range per key touched and no compares: a single
//!    linearizable read, so the keys form one snapshot.
//! 2. The reads (which see the transaction's own earlier appends) and each
//!    appended key's new string are computed locally from that snapshot.
//! 3. One etcd txn commits: compare every touched key's `mod_revision` with
//!    the one read (0 for an absent key, which etcd compares as 0), put
//!    each appended key. A commit answered `succeeded: false` changed
//!    nothing; its `failure` branch re-reads every key in the same atomic
//!    step, so the next attempt starts from a fresh snapshot without
//!    another round trip. Attempts are bounded by `APPEND_ATTEMPTS_MAX`.
//!
//! A read-only transaction is step 1 alone. Trouble before a commit is sent
//! fails the operation (reads change nothing); after, it is `info`.
//! Keys are the integer in decimal and lists the elements appended as
//! `" <n>"`, as faultline-node stores them; `text_values` reads them back.
use std::collections::BTreeMap;

use faultline_workloads::{Invocation, WorkloadKind};
use serde_json::{json, Value};

use super::{bad_value, base64_decode, base64_encode, EtcdClient, Trouble, APPEND_ATTEMPTS_MAX};
use crate::client::Outcome;
use crate::systems::text_values;

const TXN_PATH: &str = "/v3/kv/txn";

/// Micro-operations accepted per transaction: the workload draws at most 4,
/// and etcd refuses a txn with more than 128 compares or puts (its
/// `--max-txn-ops` default); each micro-op adds at most one of each.
const MOPS_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mop {
    Read { key: u64 },
    Append { key: u64, element: u64 },
}

impl Mop {
    fn key(self) -> u64 {
        match self {
            Mop::Read { key } | Mop::Append { key, .. } => key,
        }
    }
}

/// One key as a snapshot read it; an absent key is empty at revision 0.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    text: String,
    mod_revision: u64,
}

/// Every key a transaction touches, in key order (etcd's range responses
/// come back in request order, and both requests list keys this way).
type Snapshot = BTreeMap<u64, Seen>;

/// A transaction as it commits over a snapshot.
#[derive(Debug, PartialEq)]
struct Applied {
    /// The completion value: the micro-ops with each read's list filled in.
    value: Value,
    /// The new string of every appended key.
    writes: BTreeMap<u64, String>,
}

impl EtcdClient {
    /// Runs one list-append transaction; the caller classifies trouble
    /// (with `txn_commit_sent` telling a timeout before the commit apart).
    pub(super) async fn txn(&mut self, invocation: &Invocation) -> Result<Outcome, Trouble> {
        let Some(mops) = micro_ops(&invocation.value) else { return Ok(bad_value(invocation)) };
        let keys = keys(&mops);
        let reply = self.call(TXN_PATH, read_request(&keys)).await.map_err(nothing_done)?;
        let mut snapshot = read_snapshot(&keys, &reply).map_err(Trouble::NotSent)?;
        for _ in 0..APPEND_ATTEMPTS_MAX {
            // Unreadable stored lists: nothing of this transaction committed.
            let applied = match apply(&mops, &snapshot) {
                Ok(applied) => applied,
                Err(message) => return Ok(Outcome::Fail(message)),
            };
            if applied.writes.is_empty() {
                return Ok(Outcome::Ok(applied.value));
            }
            self.txn_commit_sent = true;
            let reply = self.call(TXN_PATH, commit_request(&snapshot, &applied.writes)).await?;
            if reply["succeeded"] == Value::Bool(true) {
                return Ok(Outcome::Ok(applied.value));
            }
            // Not succeeded (the gateway omits a false `succeeded`): nothing
            // was put. A reply we cannot read as the failure branch's ranges
            // leaves that unproven, hence Unknown.
            snapshot = read_snapshot(&keys, &reply).map_err(Trouble::Unknown)?;
            self.txn_commit_sent = false;
        }
        Ok(Outcome::Fail(format!("txn conflict: a key changed under each of {APPEND_ATTEMPTS_MAX} commits")))
    }
}

/// Trouble while only reading: whatever it was, nothing changed.
fn nothing_done(trouble: Trouble) -> Trouble {
    match trouble {
        Trouble::NotSent(message) | Trouble::Unknown(message) | Trouble::Refused(message) => Trouble::NotSent(message),
    }
}

/// The micro-ops of a transaction's value, or None when malformed.
fn micro_ops(value: &Value) -> Option<Vec<Mop>> {
    let mops = value.as_array().filter(|mops| (1..=MOPS_MAX).contains(&mops.len()))?;
    mops.iter().map(micro_op).collect()
}

fn micro_op(mop: &Value) -> Option<Mop> {
    let [f, key, value] = mop.as_array()?.as_slice() else { return None };
    match (f.as_str()?, key.as_u64()?) {
        ("r", key) if value.is_null() => Some(Mop::Read { key }),
        ("append", key) => Some(Mop::Append { key, element: value.as_u64()? }),
        _ => None,
    }
}

/// The keys touched, sorted, each once.
fn keys(mops: &[Mop]) -> Vec<u64> {
    let mut keys: Vec<u64> = mops.iter().map(|mop| mop.key()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn key64(key: u64) -> String {
    base64_encode(key.to_string().as_bytes())
}

/// A range per key, linearizable (`serializable: false`, said explicitly:
/// a serializable range could answer from a stale member).
fn ranges(keys: impl Iterator<Item = u64>) -> Vec<Value> {
    keys.map(|key| json!({"request_range": {"key": key64(key), "serializable": false}})).collect()
}

/// Step 1: every key in one txn without compares, so one snapshot.
fn read_request(keys: &[u64]) -> Value {
    json!({"compare": [], "success": ranges(keys.iter().copied())})
}

/// Step 3: commit only if no touched key changed since the snapshot; if
/// one did, read them all again in the same step.
fn commit_request(snapshot: &Snapshot, writes: &BTreeMap<u64, String>) -> Value {
    assert!(!writes.is_empty(), "a read-only transaction has nothing to commit");
    assert!(writes.keys().all(|key| snapshot.contains_key(key)), "every appended key was read");
    let compare: Vec<Value> = snapshot
        .iter()
        .map(|(&key, seen)| {
            json!({"key": key64(key), "target": "MOD", "result": "EQUAL", "mod_revision": seen.mod_revision.to_string()})
        })
        .collect();
    let success: Vec<Value> = writes
        .iter()
        .map(|(&key, text)| json!({"request_put": {"key": key64(key), "value": base64_encode(text.as_bytes())}}))
        .collect();
    json!({"compare": compare, "success": success, "failure": ranges(snapshot.keys().copied())})
}

/// The keys as a txn reply's range responses (one per key, in order) show
/// them.
fn read_snapshot(keys: &[u64], reply: &Value) -> Result<Snapshot, String> {
    let responses = reply["responses"].as_array().map(Vec::as_slice).unwrap_or_default();
    if responses.len() != keys.len() {
        return Err(format!("txn reply has {} responses for {} keys", responses.len(), keys.len()));
    }
    keys.iter().zip(responses).map(|(&key, response)| Ok((key, seen(key, &response["response_range"])?))).collect()
}

fn seen(key: u64, range: &Value) -> Result<Seen, String> {
    if !range.is_object() {
        return Err(format!("not a range response: {range}"));
    }
    // The gateway omits an empty `kvs`: the key is absent.
    let Some(kv) = range["kvs"].as_array().and_then(|kvs| kvs.first()) else {
        return Ok(Seen { text: String::new(), mod_revision: 0 });
    };
    let name = decode(&kv["key"])?;
    if name != key.to_string() {
        return Err(format!("range of key {key} returned key {name:?}"));
    }
    // int64 fields come as JSON strings.
    let mod_revision = kv["mod_revision"].as_str().and_then(|text| text.parse::<u64>().ok());
    match mod_revision {
        Some(mod_revision) if mod_revision > 0 => Ok(Seen { text: decode(&kv["value"])?, mod_revision }),
        _ => Err(format!("key {key} has a bad mod_revision {}", kv["mod_revision"])),
    }
}

fn decode(field: &Value) -> Result<String, String> {
    // The gateway omits empty values.
    let text = field.as_str().unwrap_or("");
    let bytes = base64_decode(text).ok_or_else(|| format!("bad base64 {text:?}"))?;
    String::from_utf8(bytes).map_err(|_| "non-UTF-8 value".to_string())
}

/// Step 2: walk the micro-ops in order over the snapshot; a read sees the
/// transaction's own earlier appends.
fn apply(mops: &[Mop], snapshot: &Snapshot) -> Result<Applied, String> {
    let mut lists: BTreeMap<u64, String> = snapshot.iter().map(|(&key, seen)| (key, seen.text.clone())).collect();
    let mut writes = BTreeMap::new();
    let mut value = Vec::with_capacity(mops.len());
    for &mop in mops {
        let text = lists.get_mut(&mop.key()).expect("the snapshot holds every key touched");
        match mop {
            Mop::Read { key } => value.push(json!(["r", key, read_list(text)?])),
            Mop::Append { key, element } => {
                text.push_str(&format!(" {element}"));
                writes.insert(key, text.clone());
                value.push(json!(["append", key, element]));
            }
        }
    }
    Ok(Applied { value: Value::Array(value), writes })
}

/// A key's string as the list a read returns.
fn read_list(text: &str) -> Result<Value, String> {
    let read = Invocation { f: "read".into(), key: None, value: Value::Null };
    text_values::ok_value(WorkloadKind::ListAppend, &read, &Value::String(text.to_string())).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(text: &str, mod_revision: u64) -> Seen {
        Seen { text: text.to_string(), mod_revision }
    }

    fn range_response(key: u64, value: &str, mod_revision: &str) -> Value {
        let kv = json!({"key": key64(key), "value": base64_encode(value.as_bytes()), "mod_revision": mod_revision});
        json!({"response_range": {"header": {}, "kvs": [kv], "count": "1"}})
    }

    #[test]
    fn micro_ops_are_read_strictly_and_keys_once_each() {
        let mops = micro_ops(&json!([["append", 3, 7], ["r", 1, null], ["r", 3, null]])).unwrap();
        assert_eq!(mops, [Mop::Append { key: 3, element: 7 }, Mop::Read { key: 1 }, Mop::Read { key: 3 }]);
        assert_eq!(keys(&mops), [1, 3]);
        assert!(micro_ops(&json!([])).is_none(), "an empty transaction");
        assert!(micro_ops(&json!([["w", 1, 2]])).is_none());
        assert!(micro_ops(&json!([["append", 1, null]])).is_none());
        assert!(micro_ops(&json!([["append", -1, 2]])).is_none());
        assert!(micro_ops(&json!([["r", 1]])).is_none());
        let too_many: Vec<Value> = (0..=MOPS_MAX as u64).map(|key| json!(["r", key, null])).collect();
        assert!(micro_ops(&Value::Array(too_many)).is_none());
    }

    #[test]
    fn reads_see_the_snapshot_and_the_transactions_own_earlier_appends() {
        let mops =
            micro_ops(&json!([["r", 3, null], ["append", 3, 7], ["r", 3, null], ["append", 3, 8], ["r", 4, null]]));
        let snapshot = Snapshot::from([(3, held(" 1 5", 9)), (4, held("", 0))]);
        let applied = apply(&mops.unwrap(), &snapshot).unwrap();
        let value = json!([["r", 3, [1, 5]], ["append", 3, 7], ["r", 3, [1, 5, 7]], ["append", 3, 8], ["r", 4, []]]);
        assert_eq!(applied.value, value);
        assert_eq!(applied.writes, BTreeMap::from([(3, " 1 5 7 8".to_string())]));
        let read_only = apply(&micro_ops(&json!([["r", 4, null]])).unwrap(), &snapshot).unwrap();
        assert!(read_only.writes.is_empty());
        let garbage = Snapshot::from([(3, held(" 1 x", 2))]);
        assert!(apply(&micro_ops(&json!([["r", 3, null]])).unwrap(), &garbage).is_err());
    }

    #[test]
    fn the_read_is_one_txn_of_linearizable_ranges_without_compares() {
        let request = read_request(&[1, 3]);
        let range = |key: &str| json!({"request_range": {"key": base64_encode(key.as_bytes()), "serializable": false}});
        assert_eq!(request, json!({"compare": [], "success": [range("1"), range("3")]}));
    }

    #[test]
    fn the_commit_compares_every_touched_key_and_puts_each_appended_one() {
        let snapshot = Snapshot::from([(1, held("", 0)), (3, held(" 2", 14))]);
        let writes = BTreeMap::from([(3, " 2 7".to_string())]);
        let request = commit_request(&snapshot, &writes);
        let (one, three) = (base64_encode(b"1"), base64_encode(b"3"));
        let compare = json!([
            {"key": one, "target": "MOD", "result": "EQUAL", "mod_revision": "0"},
            {"key": three, "target": "MOD", "result": "EQUAL", "mod_revision": "14"},
        ]);
        assert_eq!(request["compare"], compare);
        assert_eq!(request["success"], json!([{"request_put": {"key": three, "value": base64_encode(b" 2 7")}}]));
        assert_eq!(request["failure"], Value::Array(ranges([1, 3].into_iter())));
    }

    #[test]
    fn range_responses_become_a_snapshot_with_absent_keys_at_revision_zero() {
        let reply = json!({"succeeded": true, "responses": [{"response_range": {"header": {}}}, range_response(3, " 4", "12")]});
        let expected = Snapshot::from([(1, held("", 0)), (3, held(" 4", 12))]);
        assert_eq!(read_snapshot(&[1, 3], &reply).unwrap(), expected);
        assert!(read_snapshot(&[1, 3, 4], &reply).is_err(), "a response per key");
        assert!(read_snapshot(&[2, 3], &reply).is_ok(), "an absent key names nothing");
        assert!(read_snapshot(&[1, 4], &reply).is_err(), "the range of 4 returned key 3");
        let bad_revision = json!({"responses": [range_response(3, " 4", "0")]});
        assert!(read_snapshot(&[3], &bad_revision).is_err());
        let put = json!({"responses": [{"response_put": {"header": {}}}]});
        assert!(read_snapshot(&[3], &put).is_err(), "a put response is no read");
    }

    #[test]
    fn trouble_while_reading_changed_nothing() {
        assert!(matches!(nothing_done(Trouble::Unknown("x".into())), Trouble::NotSent(_)));
        assert!(matches!(nothing_done(Trouble::Refused("x".into())), Trouble::NotSent(_)));
    }
}
