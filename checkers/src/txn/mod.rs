//! Transactions checked as Elle checks them: from a history of list-append
//! transactions, infer each key's version order from the reads (every read
//! of a key is a prefix of one order), build the dependency graph between
//! committed transactions (write-write, write-read, read-write), and name
//! each anomaly with the transactions involved: cycles (G0, G1c, G-single,
//! G2-item) and the anomalies no cycle is needed for (aborted and
//! intermediate reads, garbage and duplicate elements, incompatible orders,
//! a transaction that does not see its own appends).
//!
//! Elle's rw-register transactions (writes of unique values, reads of
//! registers) are checked the same way from what their reads and
//! writes-follow-reads order say ([`check_rw_register_under`]).
//!
//! Pure: a slice of [`Txn`] in, a [`TxnReport`] out;
//! [`TxnHistoryBuilder`] makes the slice from history events.
mod graph;
mod history;
mod model;
mod order;
mod rw_register;
mod session;

use serde::{Deserialize, Serialize};

pub use history::{TxnHistoryBuilder, TXN_MOPS_MAX};
pub use model::{ConsistencyModel, UnknownConsistencyModel};

use crate::verdict::Verdict;

/// Which kind of transactions a history holds: what its micro-operations
/// mean, and how its version orders are inferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxnKind {
    /// Elle's list-append: appends to lists and reads of whole lists.
    ListAppend,
    /// Elle's rw-register: writes of unique values and reads of registers.
    RwRegister,
}

impl TxnKind {
    pub fn name(self) -> &'static str {
        match self {
            TxnKind::ListAppend => "list-append",
            TxnKind::RwRegister => "rw-register",
        }
    }
}

/// One micro-operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mop {
    /// `[append k v]`: values are unique per key.
    Append { key: u64, value: u64 },
    /// `[r k list]`: the whole list, None when the read did not complete.
    Read { key: u64, list: Option<Vec<u64>> },
    /// `[w k v]` on a register: values are unique per key.
    Write { key: u64, value: u64 },
    /// `[r k v]` on a register: `None` when the read did not complete,
    /// `Some(None)` when it found no value (nil).
    ReadRegister { key: u64, value: Option<Option<u64>> },
}

impl Mop {
    /// The key it reads or writes.
    pub fn key(&self) -> u64 {
        match self {
            Mop::Append { key, .. } | Mop::Read { key, .. } | Mop::Write { key, .. } | Mop::ReadRegister { key, .. } => *key,
        }
    }
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TxnOutcome {
    /// Committed: its reads and appends happened.
    Ok,
    /// Aborted: nothing it did may be seen.
    Fail,
    /// Unknown: its appends may or may not have happened.
    Info,
}

/// One transaction as the history records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Txn {
    /// Its position in the history (an index or a line), how anomalies
    /// name it: `T<id>`.
    pub id: u64,
    pub process: u64,
    pub outcome: TxnOutcome,
    pub mops: Vec<Mop>,
    /// When it was invoked and when it completed (`RETURN_NEVER_NS` for
    /// one that never did), in the history's nanoseconds.
    pub call_ns: u64,
    pub return_ns: u64,
}

/// A kind of anomaly, by Adya's and Elle's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AnomalyKind {
    /// A cycle of write-write edges.
    #[serde(rename = "G0")]
    G0,
    /// A cycle of write-write and write-read edges.
    #[serde(rename = "G1c")]
    G1c,
    /// A cycle with exactly one read-write (anti-dependency) edge.
    #[serde(rename = "G-single")]
    GSingle,
    /// A cycle with two or more read-write edges.
    #[serde(rename = "G2-item")]
    G2Item,
    /// These cycles again, closed only through process order (a process's
    /// transactions in the order it ran them) ...
    #[serde(rename = "G0-process")]
    G0Process,
    #[serde(rename = "G1c-process")]
    G1cProcess,
    #[serde(rename = "G-single-process")]
    GSingleProcess,
    #[serde(rename = "G2-item-process")]
    G2ItemProcess,
    /// ... or only through real-time order (one transaction completed
    /// before the other was invoked).
    #[serde(rename = "G0-realtime")]
    G0Realtime,
    #[serde(rename = "G1c-realtime")]
    G1cRealtime,
    #[serde(rename = "G-single-realtime")]
    GSingleRealtime,
    #[serde(rename = "G2-item-realtime")]
    G2ItemRealtime,
    /// A committed read saw an append of an aborted transaction.
    #[serde(rename = "G1a")]
    G1a,
    /// A committed transaction's append follows an aborted one's in a
    /// key's order: it was made on top of a write that never happened.
    #[serde(rename = "dirty-update")]
    DirtyUpdate,
    /// A committed read saw a transaction's append that was not its last
    /// to that key.
    #[serde(rename = "G1b")]
    G1b,
    /// Two reads of a key that are not prefixes of one order.
    #[serde(rename = "incompatible-order")]
    IncompatibleOrder,
    /// An element read twice in one list.
    #[serde(rename = "duplicate-elements")]
    DuplicateElements,
    /// An element no transaction appended.
    #[serde(rename = "garbage-read")]
    GarbageRead,
    /// A transaction that did not see its own appends, or saw a key change
    /// between two of its reads.
    #[serde(rename = "internal")]
    Internal,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 19] = [
        AnomalyKind::G0,
        AnomalyKind::G1c,
        AnomalyKind::GSingle,
        AnomalyKind::G2Item,
        AnomalyKind::G0Process,
        AnomalyKind::G1cProcess,
        AnomalyKind::GSingleProcess,
        AnomalyKind::G2ItemProcess,
        AnomalyKind::G0Realtime,
        AnomalyKind::G1cRealtime,
        AnomalyKind::GSingleRealtime,
        AnomalyKind::G2ItemRealtime,
        AnomalyKind::G1a,
        AnomalyKind::DirtyUpdate,
        AnomalyKind::G1b,
        AnomalyKind::IncompatibleOrder,
        AnomalyKind::DuplicateElements,
        AnomalyKind::GarbageRead,
        AnomalyKind::Internal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::G0 => "G0",
            AnomalyKind::G1c => "G1c",
            AnomalyKind::GSingle => "G-single",
            AnomalyKind::G2Item => "G2-item",
            AnomalyKind::G0Process => "G0-process",
            AnomalyKind::G1cProcess => "G1c-process",
            AnomalyKind::GSingleProcess => "G-single-process",
            AnomalyKind::G2ItemProcess => "G2-item-process",
            AnomalyKind::G0Realtime => "G0-realtime",
            AnomalyKind::G1cRealtime => "G1c-realtime",
            AnomalyKind::GSingleRealtime => "G-single-realtime",
            AnomalyKind::G2ItemRealtime => "G2-item-realtime",
            AnomalyKind::G1a => "G1a",
            AnomalyKind::DirtyUpdate => "dirty-update",
            AnomalyKind::G1b => "G1b",
            AnomalyKind::IncompatibleOrder => "incompatible-order",
            AnomalyKind::DuplicateElements => "duplicate-elements",
            AnomalyKind::GarbageRead => "garbage-read",
            AnomalyKind::Internal => "internal",
        }
    }

    /// The plain cycle kind of a process or real-time variant.
    pub fn plain(self) -> AnomalyKind {
        match self {
            AnomalyKind::G0Process | AnomalyKind::G0Realtime => AnomalyKind::G0,
            AnomalyKind::G1cProcess | AnomalyKind::G1cRealtime => AnomalyKind::G1c,
            AnomalyKind::GSingleProcess | AnomalyKind::GSingleRealtime => AnomalyKind::GSingle,
            AnomalyKind::G2ItemProcess | AnomalyKind::G2ItemRealtime => AnomalyKind::G2Item,
            other => other,
        }
    }
}

/// One dependency between two committed transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    /// `from` appended to `key` just before `to` did.
    Ww,
    /// `to` read `key` ending with `from`'s append.
    Wr,
    /// `from` read `key` without `to`'s append, the next one in its order.
    Rw,
    /// `from` and `to` ran on one process, `from` first (`key` and
    /// `value` are 0).
    Process,
    /// `from` completed before `to` was invoked (`key` and `value` are 0).
    Realtime,
}

/// A step of a cycle: `from` precedes `to` because of `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub from: u64,
    pub to: u64,
    pub kind: EdgeKind,
    pub key: u64,
    /// The append the edge is about (the value written or not yet read).
    pub value: u64,
}

/// One anomaly, with the transactions involved and why, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub txns: Vec<u64>,
    /// For a cycle, its edges in order (the last leads back to the first).
    pub cycle: Vec<Step>,
    pub explanation: String,
}

/// What the checker found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnReport {
    /// Invalid with any anomaly `model` forbids; valid with none and at
    /// least one committed transaction that read something (evidence);
    /// unknown otherwise.
    pub verdict: Verdict,
    /// Which transactions these were. Not `kind`: the harness stores the
    /// report inside a check tagged by `kind`.
    pub workload: TxnKind,
    /// The model the verdict is under.
    pub model: ConsistencyModel,
    /// Every anomaly found, the ones `model` allows included.
    pub anomalies: Vec<Anomaly>,
    /// The strongest models the history is still compatible with (none:
    /// not even read committed).
    pub compatible: Vec<ConsistencyModel>,
    pub committed: usize,
    pub edges: usize,
}

/// Check a list-append history against strict serializability.
pub fn check_list_append(txns: &[Txn]) -> TxnReport {
    check_list_append_under(txns, ConsistencyModel::StrictSerializable)
}

/// Check a list-append history against `model`.
pub fn check_list_append_under(txns: &[Txn], model: ConsistencyModel) -> TxnReport {
    let orders = order::infer(txns);
    let mut anomalies = orders.anomalies.clone();
    let graph = graph::Graph::build(txns, &orders);
    anomalies.extend(graph.cycle_anomalies());
    report(TxnKind::ListAppend, txns, model, anomalies, graph.edge_count())
}

/// Check a rw-register history against `model`.
pub fn check_rw_register_under(txns: &[Txn], model: ConsistencyModel) -> TxnReport {
    let (mut anomalies, graph) = rw_register::infer(txns, model.orders_real_time());
    anomalies.extend(graph.cycle_anomalies());
    report(TxnKind::RwRegister, txns, model, anomalies, graph.edge_count())
}

/// Check a history of transactions of `kind` against `model`.
pub fn check_txns(kind: TxnKind, txns: &[Txn], model: ConsistencyModel) -> TxnReport {
    match kind {
        TxnKind::ListAppend => check_list_append_under(txns, model),
        TxnKind::RwRegister => check_rw_register_under(txns, model),
    }
}

fn report(kind: TxnKind, txns: &[Txn], model: ConsistencyModel, mut anomalies: Vec<Anomaly>, edges: usize) -> TxnReport {
    anomalies.sort_by(|a, b| a.kind.cmp(&b.kind).then_with(|| a.txns.cmp(&b.txns)));
    let committed = txns.iter().filter(|txn| txn.outcome == TxnOutcome::Ok).count();
    let read_something = txns.iter().any(|txn| {
        let read = |mop: &Mop| matches!(mop, Mop::Read { list: Some(_), .. } | Mop::ReadRegister { value: Some(_), .. });
        txn.outcome == TxnOutcome::Ok && txn.mops.iter().any(read)
    });
    let forbidden = anomalies.iter().any(|anomaly| model.forbids(anomaly.kind));
    let verdict = match (forbidden, read_something) {
        (true, _) => Verdict::Invalid,
        (false, true) => Verdict::Valid,
        (false, false) => Verdict::Unknown,
    };
    let kinds: Vec<AnomalyKind> = anomalies.iter().map(|anomaly| anomaly.kind).collect();
    let compatible = ConsistencyModel::strongest_compatible(&kinds);
    TxnReport { verdict, workload: kind, model, anomalies, compatible, committed, edges }
}

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;
