//! Each key's version order, from the reads of committed transactions,
//! and the anomalies seen without a graph: aborted, intermediate, garbage
//! and duplicate reads, incompatible orders, internal inconsistency.
use rustc_hash::{FxHashMap, FxHashSet};

use super::{Anomaly, AnomalyKind, Mop, Txn, TxnOutcome};

pub(super) struct Orders {
    /// Key → its version order: the longest committed read (every other
    /// read of the key is a prefix of it, or an anomaly says otherwise).
    pub order: FxHashMap<u64, Vec<u64>>,
    /// (key, value) → the index in the history of the transaction that
    /// appended it.
    pub writer: FxHashMap<(u64, u64), usize>,
    pub anomalies: Vec<Anomaly>,
}

fn anomaly(kind: AnomalyKind, txns: Vec<u64>, explanation: String) -> Anomaly {
    Anomaly { kind, txns, cycle: Vec::new(), explanation }
}

/// The committed reads that returned a list: (transaction index, key, list).
fn reads(txns: &[Txn]) -> impl Iterator<Item = (usize, u64, &Vec<u64>)> {
    txns.iter().enumerate().filter(|(_, txn)| txn.outcome == TxnOutcome::Ok).flat_map(|(index, txn)| {
        txn.mops.iter().filter_map(move |mop| match mop {
            Mop::Read { key, list: Some(list) } => Some((index, *key, list)),
            _ => None,
        })
    })
}

pub(super) fn infer(txns: &[Txn]) -> Orders {
    let mut writer = FxHashMap::default();
    // (transaction, key) → its last append to the key.
    let mut last_append = FxHashMap::default();
    for (index, txn) in txns.iter().enumerate() {
        for mop in &txn.mops {
            if let Mop::Append { key, value } = mop {
                writer.insert((*key, *value), index);
                last_append.insert((index, *key), *value);
            }
        }
    }
    let mut anomalies = Vec::new();
    for (index, key, list) in reads(txns) {
        let reader = txns[index].id;
        read_anomalies(txns, &writer, &last_append, (index, reader), key, list, &mut anomalies);
    }
    let mut order: FxHashMap<u64, Vec<u64>> = FxHashMap::default();
    let mut longest_by: FxHashMap<u64, u64> = FxHashMap::default();
    for (index, key, list) in reads(txns) {
        let longest = order.entry(key).or_default();
        if list.len() > longest.len() {
            *longest = list.clone();
            longest_by.insert(key, txns[index].id);
        }
    }
    for (index, key, list) in reads(txns) {
        let longest = &order[&key];
        if !longest.starts_with(list) {
            let other = longest_by[&key];
            anomalies.push(anomaly(
                AnomalyKind::IncompatibleOrder,
                vec![txns[index].id, other],
                format!("T{} read key {key} as {list:?} and T{other} as {longest:?}: neither is a prefix of the other", txns[index].id),
            ));
        }
    }
    for txn in txns.iter().filter(|txn| txn.outcome == TxnOutcome::Ok) {
        internal(txn, &mut anomalies);
    }
    dirty_updates(txns, &order, &writer, &mut anomalies);
    Orders { order, writer, anomalies }
}

fn read_anomalies(
    txns: &[Txn],
    writer: &FxHashMap<(u64, u64), usize>,
    last_append: &FxHashMap<(usize, u64), u64>,
    (index, reader): (usize, u64),
    key: u64,
    list: &[u64],
    anomalies: &mut Vec<Anomaly>,
) {
    let mut seen = FxHashSet::default();
    for value in list {
        if !seen.insert(*value) {
            anomalies.push(anomaly(
                AnomalyKind::DuplicateElements,
                vec![reader],
                format!("T{reader} read key {key} as {list:?}, with {value} twice"),
            ));
            break;
        }
    }
    for value in list {
        match writer.get(&(key, *value)) {
            None => anomalies.push(anomaly(
                AnomalyKind::GarbageRead,
                vec![reader],
                format!("T{reader} read {value} in key {key}, which no transaction appended"),
            )),
            Some(&w) if txns[w].outcome == TxnOutcome::Fail => anomalies.push(anomaly(
                AnomalyKind::G1a,
                vec![txns[w].id, reader],
                format!("T{reader} read {value} in key {key}, appended by T{}, which aborted", txns[w].id),
            )),
            Some(_) => {}
        }
    }
    let Some(last) = list.last() else { return };
    let Some(&w) = writer.get(&(key, *last)) else { return };
    if w != index && last_append.get(&(w, key)).is_some_and(|final_value| final_value != last) {
        let final_value = last_append[&(w, key)];
        anomalies.push(anomaly(
            AnomalyKind::G1b,
            vec![txns[w].id, reader],
            format!(
                "T{reader} read key {key} ending with {last}, an intermediate append of T{} (whose last append to it was {final_value})",
                txns[w].id
            ),
        ));
    }
}

/// Appends of transactions that did not abort, right after an aborted
/// one's in a key's order; one per key.
fn dirty_updates(txns: &[Txn], order: &FxHashMap<u64, Vec<u64>>, writer: &FxHashMap<(u64, u64), usize>, anomalies: &mut Vec<Anomaly>) {
    let mut keys: Vec<&u64> = order.keys().collect();
    keys.sort_unstable();
    for key in keys {
        let found = order[key].windows(2).find_map(|pair| {
            let (a, b) = (*writer.get(&(*key, pair[0]))?, *writer.get(&(*key, pair[1]))?);
            (txns[a].outcome == TxnOutcome::Fail && txns[b].outcome != TxnOutcome::Fail).then_some((a, b, pair))
        });
        if let Some((a, b, pair)) = found {
            let (aborted, later) = (txns[a].id, txns[b].id);
            let why = format!("T{later} appended {} to key {key} right after {}, appended by T{aborted}, which aborted", pair[1], pair[0]);
            anomalies.push(anomaly(AnomalyKind::DirtyUpdate, vec![aborted, later], why));
        }
    }
}

/// A transaction must see its own appends, and a key it read must not
/// change under it but for its own appends.
fn internal(txn: &Txn, anomalies: &mut Vec<Anomaly>) {
    // Key → (the state it knows, if it read the key; its appends since).
    let mut known: FxHashMap<u64, (Option<Vec<u64>>, Vec<u64>)> = FxHashMap::default();
    for (at, mop) in txn.mops.iter().enumerate() {
        if let Mop::Read { key, list: Some(list) } = mop {
            let later = txn.mops[at + 1..].iter().find_map(|later| match later {
                Mop::Append { key: k, value } if k == key && list.contains(value) => Some(*value),
                _ => None,
            });
            if let Some(value) = later {
                anomalies.push(anomaly(
                    AnomalyKind::Internal,
                    vec![txn.id],
                    format!("T{} read key {key} as {list:?}, with {value}, which it appends only later (a future read)", txn.id),
                ));
            }
        }
        match mop {
            Mop::Append { key, value } => {
                let (state, own) = known.entry(*key).or_default();
                match state {
                    Some(state) => state.push(*value),
                    None => own.push(*value),
                }
            }
            Mop::Read { key, list: Some(list) } => {
                let (state, own) = known.entry(*key).or_default();
                let consistent = match state {
                    Some(expected) => expected == list,
                    None => list.ends_with(own),
                };
                if !consistent {
                    let expected = match state {
                        Some(expected) => format!("{expected:?}"),
                        None => format!("a list ending with {own:?}"),
                    };
                    anomalies.push(anomaly(
                        AnomalyKind::Internal,
                        vec![txn.id],
                        format!("T{} read key {key} as {list:?} where its own earlier steps imply {expected}", txn.id),
                    ));
                }
                *state = Some(list.clone());
                own.clear();
            }
            Mop::Read { list: None, .. } | Mop::Write { .. } | Mop::ReadRegister { .. } => {}
        }
    }
}
