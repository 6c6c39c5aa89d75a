use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::oracle;
use super::*;

fn append(key: u64, value: u64) -> Mop {
    Mop::Append { key, value }
}

fn read(key: u64, list: &[u64]) -> Mop {
    Mop::Read { key, list: Some(list.to_vec()) }
}

fn ok(id: u64, mops: Vec<Mop>) -> Txn {
    Txn { id, process: id, outcome: TxnOutcome::Ok, mops, call_ns: 0, return_ns: 0 }
}

fn kinds(txns: &[Txn]) -> Vec<AnomalyKind> {
    let mut kinds: Vec<AnomalyKind> = check_list_append(txns).anomalies.iter().map(|a| a.kind).collect();
    kinds.dedup();
    kinds
}

#[test]
fn a_serial_history_is_valid_with_its_edges() {
    let txns = vec![
        ok(1, vec![append(1, 1), append(2, 1)]),
        ok(2, vec![read(1, &[1]), append(1, 2)]),
        ok(3, vec![read(1, &[1, 2]), read(2, &[1])]),
    ];
    let report = check_list_append(&txns);
    assert_eq!(report.verdict, Verdict::Valid, "{report:?}");
    assert!(report.edges >= 3, "ww 1→2, wr 1→2, wr 2→3: {report:?}");
    assert!(oracle::serializable(&txns));
}

#[test]
fn no_committed_read_is_no_evidence() {
    let report = check_list_append(&[ok(1, vec![append(1, 1)])]);
    assert_eq!(report.verdict, Verdict::Unknown);
}

#[test]
fn g0_two_writers_in_opposite_orders_on_two_keys() {
    let txns = vec![
        ok(1, vec![append(1, 1), append(2, 1)]),
        ok(2, vec![append(1, 2), append(2, 2)]),
        ok(3, vec![read(1, &[1, 2]), read(2, &[2, 1])]),
    ];
    assert!(kinds(&txns).contains(&AnomalyKind::G0), "{:?}", check_list_append(&txns));
    assert!(!oracle::serializable(&txns));
    let g0 = check_list_append(&txns).anomalies.into_iter().find(|a| a.kind == AnomalyKind::G0).unwrap();
    assert_eq!(g0.cycle.len(), 2);
    assert!(g0.explanation.contains("right after") && g0.explanation.ends_with("G0"), "{}", g0.explanation);
}

#[test]
fn g1c_each_reads_the_others_append() {
    let txns = vec![ok(1, vec![append(1, 1), read(2, &[1])]), ok(2, vec![append(2, 1), read(1, &[1])])];
    assert_eq!(kinds(&txns), vec![AnomalyKind::G1c]);
    assert!(!oracle::serializable(&txns));
}

#[test]
fn g_single_read_skew() {
    // T1 reads key 1 before T2's append but key 2 after it.
    let txns = vec![
        ok(1, vec![read(1, &[]), read(2, &[3])]),
        ok(2, vec![append(1, 2), append(2, 3)]),
        ok(3, vec![read(1, &[2])]),
    ];
    let report = check_list_append(&txns);
    assert_eq!(kinds(&txns), vec![AnomalyKind::GSingle], "{report:?}");
    let anomaly = &report.anomalies[0];
    assert_eq!(anomaly.cycle.iter().filter(|step| step.kind == EdgeKind::Rw).count(), 1);
    assert!(anomaly.explanation.contains("T1 read key 1 without 2, which T2 appended"), "{}", anomaly.explanation);
    assert!(!oracle::serializable(&txns));
}

#[test]
fn g2_item_write_skew() {
    let txns = vec![
        ok(1, vec![read(1, &[]), append(2, 1)]),
        ok(2, vec![read(2, &[]), append(1, 2)]),
        ok(3, vec![read(1, &[2]), read(2, &[1])]),
    ];
    assert_eq!(kinds(&txns), vec![AnomalyKind::G2Item], "{:?}", check_list_append(&txns));
    assert!(!oracle::serializable(&txns));
}

#[test]
fn aborted_intermediate_garbage_duplicate_incompatible_and_internal_reads() {
    let failed = Txn { id: 1, process: 1, outcome: TxnOutcome::Fail, mops: vec![append(1, 1)], call_ns: 0, return_ns: 0 };
    assert_eq!(kinds(&[failed, ok(2, vec![read(1, &[1])])]), vec![AnomalyKind::G1a]);
    let twice = ok(1, vec![append(1, 1), append(1, 2)]);
    // T2 saw T1's first append but not its second: G1b, and the cycle
    // T1 → T2 (wr) → T1 (rw) says the same.
    assert!(kinds(&[twice, ok(2, vec![read(1, &[1])])]).contains(&AnomalyKind::G1b));
    assert_eq!(kinds(&[ok(1, vec![read(1, &[9])])]), vec![AnomalyKind::GarbageRead]);
    let dup = vec![ok(1, vec![append(1, 1)]), ok(2, vec![read(1, &[1, 1])])];
    assert!(kinds(&dup).contains(&AnomalyKind::DuplicateElements));
    let split = vec![ok(1, vec![append(1, 1)]), ok(2, vec![append(1, 2)]), ok(3, vec![read(1, &[1])]), ok(4, vec![read(1, &[2])])];
    assert!(kinds(&split).contains(&AnomalyKind::IncompatibleOrder));
    let blind = vec![ok(1, vec![append(1, 1), read(1, &[])])];
    assert_eq!(kinds(&blind), vec![AnomalyKind::Internal]);
    let moved = vec![ok(1, vec![read(1, &[]), read(1, &[2])]), ok(2, vec![append(1, 2)])];
    assert!(kinds(&moved).contains(&AnomalyKind::Internal));
}

/// A history made by running random transactions one at a time: it is
/// serializable by construction.
fn serial_history(rng: &mut StdRng) -> Vec<Txn> {
    let count = rng.random_range(2..=oracle::TXNS_MAX);
    let mut state: std::collections::HashMap<u64, Vec<u64>> = Default::default();
    let mut next_value = 1;
    let mut txns = Vec::new();
    for id in 1..=count as u64 {
        let mut mops = Vec::new();
        for _ in 0..rng.random_range(1..=4) {
            let key = rng.random_range(0..3);
            if rng.random_bool(0.5) {
                state.entry(key).or_default().push(next_value);
                mops.push(append(key, next_value));
                next_value += 1;
            } else {
                mops.push(read(key, state.get(&key).map_or(&[][..], Vec::as_slice)));
            }
        }
        txns.push(ok(id, mops));
    }
    txns
}

/// Change one read to a different prefix of what it saw (or of what it
/// could have seen): often no longer serializable.
fn perturb(rng: &mut StdRng, txns: &mut [Txn]) {
    let reads: Vec<(usize, usize)> = txns
        .iter()
        .enumerate()
        .flat_map(|(t, txn)| txn.mops.iter().enumerate().filter(|(_, m)| matches!(m, Mop::Read { .. })).map(move |(m, _)| (t, m)))
        .collect();
    if reads.is_empty() {
        return;
    }
    let (t, m) = reads[rng.random_range(0..reads.len())];
    let key = match &txns[t].mops[m] {
        Mop::Read { key, .. } => *key,
        _ => return,
    };
    let all: Vec<u64> = txns.iter().flat_map(|txn| txn.mops.iter()).filter_map(|mop| match mop {
        Mop::Append { key: k, value } if *k == key => Some(*value),
        _ => None,
    }).collect();
    let cut = rng.random_range(0..=all.len());
    txns[t].mops[m] = read(key, &all[..cut]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn serial_histories_have_no_anomaly(seed in any::<u64>()) {
        let txns = serial_history(&mut StdRng::seed_from_u64(seed));
        let report = check_list_append(&txns);
        prop_assert!(report.anomalies.is_empty(), "{:?} in {:?}", report.anomalies, txns);
        prop_assert!(oracle::serializable(&txns));
    }

    #[test]
    fn every_anomaly_reported_is_a_history_no_serial_order_explains(seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut txns = serial_history(&mut rng);
        perturb(&mut rng, &mut txns);
        let report = check_list_append(&txns);
        if !report.anomalies.is_empty() {
            prop_assert!(!oracle::serializable(&txns), "false positive {:?} in {:?}", report.anomalies, txns);
        }
    }
}

/// The other direction of the oracle test, on 5,000 seeded histories: every
/// perturbed history that no serial order explains gets an anomaly.
#[test]
fn every_perturbed_history_no_serial_order_explains_gets_an_anomaly() {
    let (mut non_serializable, mut explained) = (0, 0);
    for seed in 0..5_000u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut txns = serial_history(&mut rng);
        perturb(&mut rng, &mut txns);
        if !oracle::serializable(&txns) {
            non_serializable += 1;
            let report = check_list_append(&txns);
            assert!(!report.anomalies.is_empty(), "seed {seed}: nothing found in {txns:?}");
            explained += 1;
        }
    }
    assert!(non_serializable > 1_000, "the perturbation breaks enough histories: {non_serializable}");
    assert_eq!(explained, non_serializable);
}

/// A read that misses a write completed before it began is serializable
/// (order the read first) but not strict serializable: G-single-realtime;
/// on one process it is G-single-process, ruled out by session models.
#[test]
fn stale_reads_are_realtime_or_process_cycles_and_the_model_decides() {
    let timed = |id: u64, process: u64, call_ns: u64, return_ns: u64, mops: Vec<Mop>| Txn {
        id,
        process,
        outcome: TxnOutcome::Ok,
        mops,
        call_ns,
        return_ns,
    };
    let realtime = [timed(1, 1, 0, 10, vec![append(1, 1)]), timed(2, 2, 20, 30, vec![read(1, &[])])];
    assert_eq!(kinds(&realtime), vec![AnomalyKind::GSingleRealtime]);
    assert_eq!(check_list_append_under(&realtime, ConsistencyModel::Serializable).verdict, Verdict::Valid);
    let strict = check_list_append_under(&realtime, ConsistencyModel::StrictSerializable);
    assert_eq!(strict.verdict, Verdict::Invalid);
    assert_eq!(strict.compatible, vec![ConsistencyModel::StrongSessionSerializable]);
    let anomaly = &strict.anomalies[0];
    assert!(anomaly.explanation.contains("T2 was invoked after T1 completed"), "{}", anomaly.explanation);

    let session = [timed(1, 7, 0, 10, vec![append(1, 1)]), timed(2, 7, 20, 30, vec![read(1, &[])])];
    assert_eq!(kinds(&session), vec![AnomalyKind::GSingleProcess]);
    assert_eq!(check_list_append_under(&session, ConsistencyModel::Serializable).verdict, Verdict::Valid);
    let strong = check_list_append_under(&session, ConsistencyModel::StrongSessionSerializable);
    assert_eq!(strong.verdict, Verdict::Invalid);
    assert_eq!(strong.compatible, vec![ConsistencyModel::Serializable]);

    let overlapping = [timed(1, 1, 0, 20, vec![append(1, 1)]), timed(2, 2, 10, 30, vec![read(1, &[])])];
    assert_eq!(check_list_append(&overlapping).verdict, Verdict::Valid, "concurrent: the read may come first");
}

/// Real-time edges never make a false positive: perturbed histories with
/// random intervals, checked as strict serializable, against the oracle
/// that tries every serial order respecting real time.
#[test]
fn under_strict_serializability_every_anomaly_is_real() {
    let (mut rejected, mut found) = (0, 0);
    for seed in 0..5_000u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut txns = serial_history(&mut rng);
        perturb(&mut rng, &mut txns);
        // One process each: a process runs one transaction at a time, which
        // random intervals would not respect.
        for txn in &mut txns {
            txn.call_ns = rng.random_range(0..100);
            txn.return_ns = txn.call_ns + rng.random_range(1..40);
        }
        let report = check_list_append_under(&txns, ConsistencyModel::StrictSerializable);
        let strict = oracle::strict_serializable(&txns);
        if report.verdict == Verdict::Invalid {
            assert!(!strict, "seed {seed}: false positive {:?} in {txns:?}", report.anomalies);
        }
        if !strict {
            rejected += 1;
            found += usize::from(report.verdict == Verdict::Invalid);
        }
    }
    eprintln!("list-append strict oracle: {found} of {rejected} non-strict-serializable histories found invalid");
    assert!(rejected > 1_000, "enough broken histories: {rejected}");
    assert_eq!(found, rejected, "every history no real-time serial order explains is invalid");
}

/// results.json names anomalies as the explanations and the docs do.
#[test]
fn anomaly_kinds_serialize_by_their_names() {
    for kind in AnomalyKind::ALL {
        assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(kind.name()));
        assert_eq!(serde_json::from_value::<AnomalyKind>(serde_json::json!(kind.name())).unwrap(), kind);
    }
}
