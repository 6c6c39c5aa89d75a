//! Transactions (`f: "txn"`) on etcd, of the list-append workload (issue
//! 19) and of rw-register: a read-modify-write is an etcd `Txn` comparing
//! the `mod_revision` of every key whose stored value it depends on.
//!
//! 1. One etcd txn with a range per key read and no compares: a single
//!    linearizable read, so the keys form one snapshot. A key read is one
//!    whose stored value the transaction uses: every list-append key (an
//!    append puts the whole new list), and each rw-register key whose first
//!    micro-op is a read.
//! 2. The reads (which see the transaction's own earlier writes) and each
//!    written key's new string are computed locally from that snapshot.
//! 3. One etcd txn commits: compare every read key's `mod_revision` with
//!    the one seen (0 for an absent key, which etcd compares as 0), put
//!    each written key. A commit answered `succeeded: false` changed
//!    nothing; its `failure` branch re-reads every key in the same atomic
//!    step, so the next attempt starts from a fresh snapshot without
//!    another round trip. Attempts are bounded by `APPEND_ATTEMPTS_MAX`.
//!
//! Strict serializability: the transaction takes effect at the commit's
//! revision, where every value it read is still the one seen (the
//! compares) and its writes land together. A register written before it
//! is read (a blind write) does not depend on the stored value, so it
//! needs no compare; a transaction of blind writes alone skips step 1.
//! A read-only transaction is step 1 alone, answered at that read's
//! revision. Trouble before a commit is sent fails the operation (reads
//! change nothing); after, it is `info`.
//! Keys are the integer in decimal, registers the integer in decimal and
//! lists the elements appended as `" <n>"`, as faultline-node stores them;
//! `text_values` reads them back.
use std::collections::BTreeMap;

use faultline_workloads::{Invocation, WorkloadKind};
use serde_json::{json, Value};

use super::{bad_value, base64_decode, base64_encode, EtcdClient, Trouble, APPEND_ATTEMPTS_MAX};
use crate::client::Outcome;
use crate::systems::text_values;

pub(super) const TXN_PATH: &str = "/v3/kv/txn";

/// Micro-operations accepted per transaction: the workload draws at most 4,
/// and etcd refuses a txn with more than 128 compares or puts (its
/// `--max-txn-ops` default); each micro-op adds at most one of each.
const MOPS_MAX: usize = 64;

/// A micro-op: a read, list-append's write (the element goes to the end
/// of the list) or rw-register's (the register holds the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mop {
    Read { key: u64 },
    Append { key: u64, element: u64 },
    Write { key: u64, value: i64 },
}

impl Mop {
    fn key(self) -> u64 {
        match self {
            Mop::Read { key } | Mop::Append { key, .. } | Mop::Write { key, .. } => key,
        }
    }
}

/// One key as a range read it; an absent key is empty at revision 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    pub(super) text: String,
    pub(super) mod_revision: u64,
}

impl Seen {
    /// The stored string, None when the key is absent.
    pub(super) fn stored(&self) -> Option<&str> {
        (self.mod_revision > 0).then_some(self.text.as_str())
    }
}

/// Every key a transaction reads, in key order (etcd's range responses
/// come back in request order, and both requests list keys this way).
type Snapshot = BTreeMap<u64, Seen>;

/// A transaction as it commits over a snapshot.
#[derive(Debug, PartialEq)]
struct Applied {
    /// The completion value: the micro-ops with each read filled in.
    value: Value,
    /// The new string of every written key.
    writes: BTreeMap<u64, String>,
}

impl EtcdClient {
    /// Runs one list-append or rw-register transaction; the caller
    /// classifies trouble (with `txn_commit_sent` telling a timeout before
    /// the commit apart).
    pub(super) async fn txn(&mut self, invocation: &Invocation) -> Result<Outcome, Trouble> {
        let kind = self.config.kind_of(invocation);
        let Some(mops) = micro_ops(kind, &invocation.value) else { return Ok(bad_value(invocation)) };
        let keys = keys_read(&mops);
        // Blind writes alone read nothing: the commit is the first step.
        let mut snapshot = Snapshot::new();
        if !keys.is_empty() {
            let reply = self.call(TXN_PATH, read_request(&keys)).await.map_err(nothing_done)?;
            snapshot = read_snapshot(&keys, &reply).map_err(Trouble::NotSent)?;
        }
        for _ in 0..APPEND_ATTEMPTS_MAX {
            // Unreadable stored values: nothing of this transaction committed.
            let applied = match apply(kind, &mops, &snapshot) {
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
pub(super) fn nothing_done(trouble: Trouble) -> Trouble {
    match trouble {
        Trouble::NotSent(message) | Trouble::Unknown(message) | Trouble::Refused(message) => Trouble::NotSent(message),
    }
}

/// The micro-ops of a transaction's value, or None when malformed or of
/// another workload (a list-append transaction appends, an rw-register
/// one writes).
fn micro_ops(kind: WorkloadKind, value: &Value) -> Option<Vec<Mop>> {
    let mops = value.as_array().filter(|mops| (1..=MOPS_MAX).contains(&mops.len()))?;
    mops.iter().map(|mop| micro_op(kind, mop)).collect()
}

fn micro_op(kind: WorkloadKind, mop: &Value) -> Option<Mop> {
    let [f, key, value] = mop.as_array()?.as_slice() else { return None };
    match (f.as_str()?, key.as_u64()?, kind) {
        ("r", key, WorkloadKind::ListAppend | WorkloadKind::RwRegister) if value.is_null() => Some(Mop::Read { key }),
        ("append", key, WorkloadKind::ListAppend) => Some(Mop::Append { key, element: value.as_u64()? }),
        ("w", key, WorkloadKind::RwRegister) => Some(Mop::Write { key, value: value.as_i64()? }),
        _ => None,
    }
}

/// The keys whose stored value the transaction uses, sorted, each once:
/// those whose first micro-op reads (an append reads, too).
fn keys_read(mops: &[Mop]) -> Vec<u64> {
    let mut first: BTreeMap<u64, Mop> = BTreeMap::new();
    for &mop in mops {
        first.entry(mop.key()).or_insert(mop);
    }
    first.into_iter().filter(|(_, mop)| !matches!(mop, Mop::Write { .. })).map(|(key, _)| key).collect()
}

fn name(key: u64) -> String {
    key.to_string()
}

/// A linearizable range of one key (`serializable: false`, said
/// explicitly: a serializable range could answer from a stale member).
pub(super) fn range(name: &str) -> Value {
    json!({"request_range": {"key": base64_encode(name.as_bytes()), "serializable": false}})
}

/// The compare that holds while the key is as `seen` saw it.
pub(super) fn unchanged(name: &str, seen: &Seen) -> Value {
    let key = base64_encode(name.as_bytes());
    json!({"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": seen.mod_revision.to_string()})
}

pub(super) fn put(name: &str, text: &str) -> Value {
    json!({"request_put": {"key": base64_encode(name.as_bytes()), "value": base64_encode(text.as_bytes())}})
}

/// Step 1: every key in one txn without compares, so one snapshot.
fn read_request(keys: &[u64]) -> Value {
    json!({"compare": [], "success": keys.iter().map(|&key| range(&name(key))).collect::<Vec<_>>()})
}

/// Step 3: commit only if no read key changed since the snapshot; if one
/// did, read them all again in the same step.
fn commit_request(snapshot: &Snapshot, writes: &BTreeMap<u64, String>) -> Value {
    assert!(!writes.is_empty(), "a read-only transaction has nothing to commit");
    let compare: Vec<Value> = snapshot.iter().map(|(&key, seen)| unchanged(&name(key), seen)).collect();
    let success: Vec<Value> = writes.iter().map(|(&key, text)| put(&name(key), text)).collect();
    let failure: Vec<Value> = snapshot.keys().map(|&key| range(&name(key))).collect();
    json!({"compare": compare, "success": success, "failure": failure})
}

/// The keys as a txn reply's range responses (one per key, in order) show
/// them.
fn read_snapshot(keys: &[u64], reply: &Value) -> Result<Snapshot, String> {
    let names: Vec<String> = keys.iter().map(|&key| name(key)).collect();
    Ok(keys.iter().copied().zip(seen_all(&names, reply)?).collect())
}

/// The keys `names` as a txn reply's range responses (one per name, in
/// order) show them.
pub(super) fn seen_all(names: &[String], reply: &Value) -> Result<Vec<Seen>, String> {
    let responses = reply["responses"].as_array().map(Vec::as_slice).unwrap_or_default();
    if responses.len() != names.len() {
        return Err(format!("txn reply has {} responses for {} keys", responses.len(), names.len()));
    }
    names.iter().zip(responses).map(|(name, response)| seen(name, &response["response_range"])).collect()
}

fn seen(name: &str, range: &Value) -> Result<Seen, String> {
    if !range.is_object() {
        return Err(format!("not a range response: {range}"));
    }
    // The gateway omits an empty `kvs`: the key is absent.
    let Some(kv) = range["kvs"].as_array().and_then(|kvs| kvs.first()) else {
        return Ok(Seen { text: String::new(), mod_revision: 0 });
    };
    let returned = decode(&kv["key"])?;
    if returned != name {
        return Err(format!("range of key {name:?} returned key {returned:?}"));
    }
    // int64 fields come as JSON strings.
    let mod_revision = kv["mod_revision"].as_str().and_then(|text| text.parse::<u64>().ok());
    match mod_revision {
        Some(mod_revision) if mod_revision > 0 => Ok(Seen { text: decode(&kv["value"])?, mod_revision }),
        _ => Err(format!("key {name:?} has a bad mod_revision {}", kv["mod_revision"])),
    }
}

fn decode(field: &Value) -> Result<String, String> {
    // The gateway omits empty values.
    let text = field.as_str().unwrap_or("");
    let bytes = base64_decode(text).ok_or_else(|| format!("bad base64 {text:?}"))?;
    String::from_utf8(bytes).map_err(|_| "non-UTF-8 value".to_string())
}

/// Step 2: walk the micro-ops in order over the snapshot; a read sees the
/// transaction's own earlier writes.
fn apply(kind: WorkloadKind, mops: &[Mop], snapshot: &Snapshot) -> Result<Applied, String> {
    // Each key's string as the transaction has it so far (None: absent).
    let mut stored: BTreeMap<u64, Option<String>> =
        snapshot.iter().map(|(&key, seen)| (key, seen.stored().map(str::to_string))).collect();
    let mut writes = BTreeMap::new();
    let mut value = Vec::with_capacity(mops.len());
    for &mop in mops {
        match mop {
            Mop::Read { key } => {
                let text = stored.get(&key).expect("a key is read (the snapshot) or written before it is read");
                value.push(json!(["r", key, read_value(kind, text.as_deref())?]));
            }
            Mop::Append { key, element } => {
                let text = stored.get_mut(&key).expect("the snapshot holds every appended key");
                let new = format!("{} {element}", text.as_deref().unwrap_or(""));
                *text = Some(new.clone());
                writes.insert(key, new);
                value.push(json!(["append", key, element]));
            }
            Mop::Write { key, value: written } => {
                stored.insert(key, Some(written.to_string()));
                writes.insert(key, written.to_string());
                value.push(json!(["w", key, written]));
            }
        }
    }
    Ok(Applied { value: Value::Array(value), writes })
}

/// A key's string (None: absent) as a read returns it: a list, or a
/// register's integer or null.
fn read_value(kind: WorkloadKind, text: Option<&str>) -> Result<Value, String> {
    let read = Invocation { f: "read".into(), key: None, value: Value::Null };
    let stored = text.map_or(Value::Null, |text| Value::String(text.to_string()));
    text_values::ok_value(kind, &read, &stored).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: WorkloadKind = WorkloadKind::ListAppend;
    const REGISTER: WorkloadKind = WorkloadKind::RwRegister;

    fn held(text: &str, mod_revision: u64) -> Seen {
        Seen { text: text.to_string(), mod_revision }
    }

    fn range_response(key: u64, value: &str, mod_revision: &str) -> Value {
        let kv = json!({"key": base64_encode(name(key).as_bytes()), "value": base64_encode(value.as_bytes()), "mod_revision": mod_revision});
        json!({"response_range": {"header": {}, "kvs": [kv], "count": "1"}})
    }

    #[test]
    fn micro_ops_are_read_strictly_and_keys_once_each() {
        let mops = micro_ops(LIST, &json!([["append", 3, 7], ["r", 1, null], ["r", 3, null]])).unwrap();
        assert_eq!(mops, [Mop::Append { key: 3, element: 7 }, Mop::Read { key: 1 }, Mop::Read { key: 3 }]);
        assert_eq!(keys_read(&mops), [1, 3]);
        assert!(micro_ops(LIST, &json!([])).is_none(), "an empty transaction");
        assert!(micro_ops(LIST, &json!([["w", 1, 2]])).is_none(), "a register write in list-append");
        assert!(micro_ops(REGISTER, &json!([["append", 1, 2]])).is_none(), "an append in rw-register");
        assert!(micro_ops(WorkloadKind::Bank, &json!([["r", 1, null]])).is_none());
        assert!(micro_ops(LIST, &json!([["append", 1, null]])).is_none());
        assert!(micro_ops(REGISTER, &json!([["w", 1, null]])).is_none());
        assert!(micro_ops(LIST, &json!([["append", -1, 2]])).is_none());
        assert!(micro_ops(LIST, &json!([["r", 1]])).is_none());
        let too_many: Vec<Value> = (0..=MOPS_MAX as u64).map(|key| json!(["r", key, null])).collect();
        assert!(micro_ops(LIST, &Value::Array(too_many)).is_none());
    }

    #[test]
    fn a_register_written_before_it_is_read_is_not_read_from_etcd() {
        let mops = micro_ops(REGISTER, &json!([["w", 1, 5], ["r", 1, null], ["r", 2, null], ["w", 2, 3], ["w", 4, 1]]));
        assert_eq!(keys_read(&mops.unwrap()), [2]);
        assert!(keys_read(&micro_ops(REGISTER, &json!([["w", 1, 5], ["w", 2, 1]])).unwrap()).is_empty());
    }

    #[test]
    fn reads_see_the_snapshot_and_the_transactions_own_earlier_appends() {
        let mops = micro_ops(
            LIST,
            &json!([["r", 3, null], ["append", 3, 7], ["r", 3, null], ["append", 3, 8], ["r", 4, null]]),
        );
        let snapshot = Snapshot::from([(3, held(" 1 5", 9)), (4, held("", 0))]);
        let applied = apply(LIST, &mops.unwrap(), &snapshot).unwrap();
        let value = json!([["r", 3, [1, 5]], ["append", 3, 7], ["r", 3, [1, 5, 7]], ["append", 3, 8], ["r", 4, []]]);
        assert_eq!(applied.value, value);
        assert_eq!(applied.writes, BTreeMap::from([(3, " 1 5 7 8".to_string())]));
        let read_only = apply(LIST, &micro_ops(LIST, &json!([["r", 4, null]])).unwrap(), &snapshot).unwrap();
        assert!(read_only.writes.is_empty());
        let garbage = Snapshot::from([(3, held(" 1 x", 2))]);
        assert!(apply(LIST, &micro_ops(LIST, &json!([["r", 3, null]])).unwrap(), &garbage).is_err());
    }

    #[test]
    fn register_reads_see_the_snapshot_or_null_and_the_transactions_own_writes() {
        let mops = micro_ops(
            REGISTER,
            &json!([
                ["r", 3, null],
                ["w", 3, 7],
                ["r", 3, null],
                ["w", 3, 8],
                ["r", 4, null],
                ["w", 5, 2],
                ["r", 5, null]
            ]),
        );
        let snapshot = Snapshot::from([(3, held("6", 9)), (4, held("", 0))]);
        let applied = apply(REGISTER, &mops.unwrap(), &snapshot).unwrap();
        let value =
            json!([["r", 3, 6], ["w", 3, 7], ["r", 3, 7], ["w", 3, 8], ["r", 4, null], ["w", 5, 2], ["r", 5, 2]]);
        assert_eq!(applied.value, value);
        assert_eq!(applied.writes, BTreeMap::from([(3, "8".to_string()), (5, "2".to_string())]));
        let garbage = Snapshot::from([(3, held(" 1", 2))]);
        assert!(apply(REGISTER, &micro_ops(REGISTER, &json!([["r", 3, null]])).unwrap(), &garbage).is_err());
    }

    #[test]
    fn the_read_is_one_txn_of_linearizable_ranges_without_compares() {
        let request = read_request(&[1, 3]);
        let range = |key: &str| json!({"request_range": {"key": base64_encode(key.as_bytes()), "serializable": false}});
        assert_eq!(request, json!({"compare": [], "success": [range("1"), range("3")]}));
    }

    #[test]
    fn the_commit_compares_every_read_key_and_puts_each_written_one() {
        let snapshot = Snapshot::from([(1, held("", 0)), (3, held(" 2", 14))]);
        let writes = BTreeMap::from([(3, " 2 7".to_string()), (5, "4".to_string())]);
        let request = commit_request(&snapshot, &writes);
        let (one, three, five) = (base64_encode(b"1"), base64_encode(b"3"), base64_encode(b"5"));
        let compare = json!([
            {"key": one, "target": "MOD", "result": "EQUAL", "mod_revision": "0"},
            {"key": three, "target": "MOD", "result": "EQUAL", "mod_revision": "14"},
        ]);
        assert_eq!(request["compare"], compare, "5, written blind, is not compared");
        let puts = json!([
            {"request_put": {"key": three, "value": base64_encode(b" 2 7")}},
            {"request_put": {"key": five, "value": base64_encode(b"4")}},
        ]);
        assert_eq!(request["success"], puts);
        assert_eq!(request["failure"], json!([range("1"), range("3")]));
        let blind = commit_request(&Snapshot::new(), &BTreeMap::from([(5, "4".to_string())]));
        assert_eq!(blind["compare"], json!([]), "blind writes alone always commit");
    }

    #[test]
    fn range_responses_become_a_snapshot_with_absent_keys_at_revision_zero() {
        let reply = json!({"succeeded": true, "responses": [{"response_range": {"header": {}}}, range_response(3, " 4", "12")]});
        let expected = Snapshot::from([(1, held("", 0)), (3, held(" 4", 12))]);
        assert_eq!(read_snapshot(&[1, 3], &reply).unwrap(), expected);
        assert_eq!(expected[&1].stored(), None);
        assert_eq!(expected[&3].stored(), Some(" 4"));
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
