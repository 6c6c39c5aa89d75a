//! Elle's rw-register: transactions of writes (`[w k v]`, values unique per
//! key) and reads (`[r k v]`, `nil` before any write).
//!
//! A register's read does not show its history, as a list does, so the
//! version order is only partly known. What is known, as in Elle without
//! its optional per-key linearizability assumptions:
//! - `nil` comes before every written value;
//! - writes follow reads: a committed transaction that read `v1` from a key
//!   (before writing it) and then wrote `v2` put `v2` right after `v1`;
//! - under a model that orders transactions by real time (strict
//!   serializable, strong snapshot isolation), a write that completed
//!   before another was invoked comes before it (Elle's
//!   `:linearizable-keys?`). Any history such a model allows orders its
//!   writes so, so a cycle this finds is one the model rules out.
//!
//! Edges: `wr` from a value's writer to each transaction that read it,
//! `ww` between the writers of `v1` and `v2` when `v2` follows `v1`, and `rw`
//! from each reader of `v1` to the writer of every value known to follow
//! it (for `nil`, every writer of the key). The anomalies no graph is
//! needed for are found first: garbage reads, aborted and intermediate
//! reads, and transactions that disagree with themselves.
use rustc_hash::FxHashMap;

use super::graph::Graph;
use super::{Anomaly, AnomalyKind, EdgeKind, Mop, Txn, TxnOutcome};

/// What the reads and writes of a history say.
#[derive(Default)]
struct Facts {
    /// (key, value) → the transaction that wrote it.
    writer: FxHashMap<(u64, u64), usize>,
    /// (transaction, key) → its last write to the key: the only value of
    /// it others may see.
    last_write: FxHashMap<(usize, u64), u64>,
    /// Committed reads of a value the transaction had not written itself
    /// first: (reader, key, value; None for nil).
    external_reads: Vec<(usize, u64, Option<u64>)>,
    /// (key, value before or None for nil) → the values known to come
    /// right after it (writes following a read).
    follows: FxHashMap<(u64, Option<u64>), Vec<u64>>,
}

fn anomaly(kind: AnomalyKind, txns: Vec<u64>, explanation: String) -> Anomaly {
    Anomaly { kind, txns, cycle: Vec::new(), explanation }
}

/// The anomalies found without a graph, and the graph to search for cycles.
pub(super) fn infer(txns: &[Txn], realtime_keys: bool) -> (Vec<Anomaly>, Graph<'_>) {
    let mut facts = facts(txns);
    if realtime_keys {
        order_writes_by_real_time(txns, &mut facts);
    }
    let mut anomalies = Vec::new();
    for &(reader, key, value) in &facts.external_reads {
        if let Some(value) = value {
            read_anomalies(txns, &facts, reader, key, value, &mut anomalies);
        }
    }
    for txn in txns.iter().filter(|txn| txn.outcome == TxnOutcome::Ok) {
        internal(txn, &mut anomalies);
    }
    let mut graph = Graph::new(txns, true);
    add_data_edges(&mut graph, txns, &facts);
    graph.add_session_edges();
    (anomalies, graph)
}

fn facts(txns: &[Txn]) -> Facts {
    let mut facts = Facts::default();
    for (index, txn) in txns.iter().enumerate() {
        // Key → the value this transaction last saw of it (its own write
        // or an external read), so writes following it can be ordered.
        let mut seen: FxHashMap<u64, Option<u64>> = FxHashMap::default();
        let committed = txn.outcome == TxnOutcome::Ok;
        for mop in &txn.mops {
            match *mop {
                Mop::Write { key, value } => {
                    facts.writer.insert((key, value), index);
                    facts.last_write.insert((index, key), value);
                    if let (true, Some(&before)) = (committed, seen.get(&key)) {
                        facts.follows.entry((key, before)).or_default().push(value);
                    }
                    seen.insert(key, Some(value));
                }
                Mop::ReadRegister { key, value: Some(value) } if committed && !seen.contains_key(&key) => {
                    facts.external_reads.push((index, key, value));
                    seen.insert(key, value);
                }
                _ => {}
            }
        }
    }
    facts
}

/// Adds to `follows` the real-time order of each key's visible writes of
/// committed transactions (transitively reduced).
fn order_writes_by_real_time(txns: &[Txn], facts: &mut Facts) {
    let mut writes_of: FxHashMap<u64, Vec<(usize, u64)>> = FxHashMap::default();
    for (&(index, key), &value) in &facts.last_write {
        if txns[index].outcome == TxnOutcome::Ok {
            writes_of.entry(key).or_default().push((index, value));
        }
    }
    for (key, mut writes) in writes_of {
        writes.sort_unstable();
        let times = writes.iter().enumerate().map(|(at, (index, _))| (at, txns[*index].call_ns, Some(txns[*index].return_ns)));
        for (before, after) in super::session::realtime_order(times) {
            let follows = facts.follows.entry((key, Some(writes[before].1))).or_default();
            if !follows.contains(&writes[after].1) {
                follows.push(writes[after].1);
            }
        }
    }
}

fn read_anomalies(txns: &[Txn], facts: &Facts, reader: usize, key: u64, value: u64, anomalies: &mut Vec<Anomaly>) {
    let reader_id = txns[reader].id;
    let Some(&w) = facts.writer.get(&(key, value)) else {
        let why = format!("T{reader_id} read {value} from key {key}, which no transaction wrote");
        return anomalies.push(anomaly(AnomalyKind::GarbageRead, vec![reader_id], why));
    };
    let writer_id = txns[w].id;
    if txns[w].outcome == TxnOutcome::Fail {
        let why = format!("T{reader_id} read {value} from key {key}, written by T{writer_id}, which aborted");
        anomalies.push(anomaly(AnomalyKind::G1a, vec![writer_id, reader_id], why));
    } else if facts.last_write.get(&(w, key)).is_some_and(|last| *last != value) {
        let last = facts.last_write[&(w, key)];
        let why = format!("T{reader_id} read {value} from key {key}, an intermediate write of T{writer_id} (whose last write to it was {last})");
        anomalies.push(anomaly(AnomalyKind::G1b, vec![writer_id, reader_id], why));
    }
}

/// A transaction must read back its own last write, and a value it read
/// must not change under it.
fn internal(txn: &Txn, anomalies: &mut Vec<Anomaly>) {
    let mut known: FxHashMap<u64, Option<u64>> = FxHashMap::default();
    for mop in &txn.mops {
        match *mop {
            Mop::Write { key, value } => {
                known.insert(key, Some(value));
            }
            Mop::ReadRegister { key, value: Some(value) } => {
                if let Some(&expected) = known.get(&key) {
                    if expected != value {
                        let show = |value: Option<u64>| value.map_or("nil".to_string(), |v| v.to_string());
                        let why = format!(
                            "T{} read {} from key {key} where its own earlier steps imply {}",
                            txn.id,
                            show(value),
                            show(expected)
                        );
                        anomalies.push(anomaly(AnomalyKind::Internal, vec![txn.id], why));
                    }
                }
                known.insert(key, value);
            }
            _ => {}
        }
    }
}

fn add_data_edges(graph: &mut Graph<'_>, txns: &[Txn], facts: &Facts) {
    // An aborted writer takes part in no edge (G1a names it), nor does a
    // write nobody else can see (G1b names a read of one).
    let visible = |w: usize, key: u64, value: u64| {
        txns[w].outcome != TxnOutcome::Fail && facts.last_write.get(&(w, key)) == Some(&value)
    };
    // Key → every visible write of it: what a nil read precedes.
    let mut writes_of: FxHashMap<u64, Vec<(u64, usize)>> = FxHashMap::default();
    for (&(key, value), &w) in &facts.writer {
        if visible(w, key, value) {
            writes_of.entry(key).or_default().push((value, w));
        }
    }
    writes_of.values_mut().for_each(|writes| writes.sort_unstable());
    for (&(key, before), afters) in &facts.follows {
        let Some(before) = before else { continue };
        let Some(&w1) = facts.writer.get(&(key, before)) else { continue };
        for &after in afters {
            let w2 = facts.writer[&(key, after)];
            if w1 != w2 && visible(w1, key, before) && visible(w2, key, after) {
                graph.add(w1, w2, EdgeKind::Ww, key, after);
            }
        }
    }
    for &(reader, key, value) in &facts.external_reads {
        if let Some(value) = value {
            if let Some(&w) = facts.writer.get(&(key, value)) {
                if w != reader && visible(w, key, value) {
                    graph.add(w, reader, EdgeKind::Wr, key, value);
                }
            }
        }
        let later: Vec<(u64, usize)> = match value {
            None => writes_of.get(&key).cloned().unwrap_or_default(),
            Some(_) => facts.follows.get(&(key, value)).into_iter().flatten().filter_map(|after| Some((*after, *facts.writer.get(&(key, *after))?))).collect(),
        };
        for (after, w) in later {
            if w != reader && visible(w, key, after) {
                graph.add(reader, w, EdgeKind::Rw, key, after);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{check_rw_register_under, ConsistencyModel};
    use super::*;
    use crate::verdict::Verdict;

    fn txn(id: u64, mops: Vec<Mop>) -> Txn {
        Txn { id, process: id, outcome: TxnOutcome::Ok, mops, call_ns: 0, return_ns: 0 }
    }
    fn w(key: u64, value: u64) -> Mop {
        Mop::Write { key, value }
    }
    fn r(key: u64, value: Option<u64>) -> Mop {
        Mop::ReadRegister { key, value: Some(value) }
    }
    #[test]
    fn under_real_time_models_writes_are_ordered_by_real_time() {
        let timed = |id: u64, call_ns: u64, return_ns: u64, mops: Vec<Mop>| Txn { call_ns, return_ns, ..txn(id, mops) };
        // T1 wrote 1, T2 later wrote 2, then T3 read 1 and, after it, T4
        // read 2: fine. But T3 read key 1 as 1 after T2's write completed.
        let stale = [timed(1, 0, 10, vec![w(1, 1)]), timed(2, 20, 30, vec![w(1, 2)]), timed(3, 40, 50, vec![r(1, Some(1))])];
        let strict = check_rw_register_under(&stale, ConsistencyModel::StrictSerializable);
        assert_eq!(strict.verdict, Verdict::Invalid, "{strict:?}");
        assert_eq!(strict.anomalies[0].kind, AnomalyKind::GSingleRealtime);
        assert_eq!(check_rw_register_under(&stale, ConsistencyModel::Serializable).verdict, Verdict::Valid);
    }

    fn kinds(txns: &[Txn]) -> Vec<AnomalyKind> {
        let report = check_rw_register_under(txns, ConsistencyModel::Serializable);
        report.anomalies.iter().map(|a| a.kind).collect()
    }

    #[test]
    fn a_serial_history_is_valid() {
        let txns = [txn(1, vec![r(1, None), w(1, 1)]), txn(2, vec![r(1, Some(1)), w(1, 2), w(2, 1)]), txn(3, vec![r(1, Some(2)), r(2, Some(1))])];
        let report = check_rw_register_under(&txns, ConsistencyModel::StrictSerializable);
        assert_eq!((report.verdict, report.anomalies.len()), (Verdict::Valid, 0), "{report:?}");
        assert!(report.edges >= 3);
    }

    #[test]
    fn a_lost_update_is_g_single_and_a_write_skew_is_g2_item() {
        // Both read nil and wrote over it: each read precedes the other's write.
        // Which write came first is unknown, so both anti-dependencies stand.
        let lost = [txn(1, vec![r(1, None), w(1, 1)]), txn(2, vec![r(1, None), w(1, 2)]), txn(3, vec![r(1, Some(2))])];
        assert_eq!(kinds(&lost), vec![AnomalyKind::G2Item]);
        // T2 overwrote both of T1's values; T3 saw T2's key 1 and T1's key 2.
        let skew = [
            txn(1, vec![w(1, 1), w(2, 1)]),
            txn(2, vec![r(1, Some(1)), w(1, 2), r(2, Some(1)), w(2, 2)]),
            txn(3, vec![r(1, Some(2)), r(2, Some(1))]),
        ];
        assert_eq!(kinds(&skew), vec![AnomalyKind::GSingle]);
        let write_skew = [txn(1, vec![r(1, None), r(2, None), w(1, 1)]), txn(2, vec![r(1, None), r(2, None), w(2, 1)])];
        assert_eq!(kinds(&write_skew), vec![AnomalyKind::G2Item]);
        let explanation = &check_rw_register_under(&write_skew, ConsistencyModel::Serializable).anomalies[0].explanation;
        assert!(explanation.contains("before T2 wrote 1 over it"), "{explanation}");
        assert_eq!(check_rw_register_under(&write_skew, ConsistencyModel::SnapshotIsolation).verdict, Verdict::Valid);
    }

    #[test]
    fn reads_no_graph_is_needed_for() {
        let mut aborted = txn(1, vec![w(1, 1)]);
        aborted.outcome = TxnOutcome::Fail;
        assert_eq!(kinds(&[aborted, txn(2, vec![r(1, Some(1))])]), vec![AnomalyKind::G1a]);
        assert_eq!(kinds(&[txn(1, vec![w(1, 1), w(1, 2)]), txn(2, vec![r(1, Some(1))])]), vec![AnomalyKind::G1b]);
        assert_eq!(kinds(&[txn(2, vec![r(1, Some(9))])]), vec![AnomalyKind::GarbageRead]);
        assert_eq!(kinds(&[txn(1, vec![w(1, 1), r(1, Some(2))]), txn(2, vec![w(1, 2)])]), vec![AnomalyKind::Internal]);
        let unsure = Txn { mops: vec![Mop::ReadRegister { key: 1, value: None }], ..txn(3, vec![]) };
        assert_eq!(check_rw_register_under(&[unsure], ConsistencyModel::Serializable).verdict, Verdict::Unknown);
    }

    /// A random small history: 2-6 transactions of 1-3 micro-operations on
    /// two keys; writes unique per key, each read some written value or nil.
    fn random_history(rng: &mut rand::rngs::StdRng) -> Vec<Txn> {
        use rand::Rng;
        let mut written: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        let shapes: Vec<Vec<(bool, u64)>> = (0..rng.random_range(2..=6))
            .map(|_| (0..rng.random_range(1..=3)).map(|_| (rng.random_bool(0.5), rng.random_range(0..2u64))).collect())
            .collect();
        let mut txns: Vec<Txn> = shapes
            .iter()
            .enumerate()
            .map(|(id, shape)| {
                let mops = shape.iter().map(|&(write, key)| {
                    if write {
                        written[key as usize].push(written[key as usize].len() as u64 + 1);
                        w(key, written[key as usize].len() as u64)
                    } else {
                        Mop::ReadRegister { key, value: None }
                    }
                });
                txn(id as u64 + 1, mops.collect())
            })
            .collect();
        for mop in txns.iter_mut().flat_map(|txn| txn.mops.iter_mut()) {
            if let Mop::ReadRegister { key, value } = mop {
                let choices = &written[*key as usize];
                let pick = rng.random_range(0..=choices.len());
                *value = Some(choices.get(pick).copied());
            }
        }
        txns
    }

    /// No false positive: whatever the checker says serializability rules
    /// out, no serial order explains. And it finds most of what the oracle
    /// rejects (the version order of registers is only partly known, so
    /// not all).
    #[test]
    fn every_anomaly_it_reports_is_one_no_serial_order_explains() {
        use rand::SeedableRng;
        let (mut rejected, mut found) = (0, 0);
        for seed in 0..5_000u64 {
            let txns = random_history(&mut rand::rngs::StdRng::seed_from_u64(seed));
            let report = check_rw_register_under(&txns, ConsistencyModel::Serializable);
            let serializable = super::super::oracle::serializable(&txns);
            if report.verdict == Verdict::Invalid {
                assert!(!serializable, "seed {seed}: false positive {:?} in {txns:?}", report.anomalies);
            }
            if !serializable {
                rejected += 1;
                found += usize::from(report.verdict == Verdict::Invalid);
            }
        }
        eprintln!("rw-register oracle: {found} of {rejected} non-serializable histories found invalid");
        assert!(rejected > 1_000, "the generator makes enough broken histories: {rejected}");
        assert!(found * 10 >= rejected * 8, "found {found} of {rejected} non-serializable histories");
    }

    /// The same under strict serializability, with random real-time
    /// intervals: writes ordered by real time never make a false positive.
    #[test]
    fn under_strict_serializability_every_anomaly_is_real() {
        use rand::{Rng, SeedableRng};
        let (mut rejected, mut found) = (0, 0);
        for seed in 0..5_000u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut txns = random_history(&mut rng);
            for txn in &mut txns {
                txn.call_ns = rng.random_range(0..100);
                txn.return_ns = txn.call_ns + rng.random_range(1..40);
            }
            let report = check_rw_register_under(&txns, ConsistencyModel::StrictSerializable);
            let strict = super::super::oracle::strict_serializable(&txns);
            if report.verdict == Verdict::Invalid {
                assert!(!strict, "seed {seed}: false positive {:?} in {txns:?}", report.anomalies);
            }
            if !strict {
                rejected += 1;
                found += usize::from(report.verdict == Verdict::Invalid);
            }
        }
        eprintln!("rw-register strict oracle: {found} of {rejected} non-strict-serializable histories found invalid");
        assert!(rejected > 1_000, "the generator makes enough broken histories: {rejected}");
        assert!(found * 10 >= rejected * 8, "found {found} of {rejected} non-serializable histories");
    }
}
