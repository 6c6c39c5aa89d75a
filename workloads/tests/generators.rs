//! Generators against a simulated clock: pure, seeded, deterministic.
use std::collections::{BTreeMap, BTreeSet};

use faultline_checkers::ModelKind;
use faultline_workloads::*;

fn config(kind: WorkloadKind) -> WorkloadConfig {
    WorkloadConfig { kind, keys_active: 3, ops_per_key_max: 10, transactions: None }
}

/// Runs a generator on a fake clock that advances `step_ns` per call, for
/// at most `calls_max` calls; returns (time_ns, invocation) pairs.
fn simulate(generator: &mut dyn Generator, step_ns: u64, calls_max: u64) -> Vec<(u64, Invocation)> {
    let mut out = Vec::new();
    for call in 0..calls_max {
        let ctx = Context { time_ns: call * step_ns, process: call % 4 };
        match generator.next(&ctx) {
            Next::Invoke(invocation) => out.push((ctx.time_ns, invocation)),
            Next::Pending => {}
            Next::Done => break,
        }
    }
    out
}

#[test]
fn same_seed_same_operations_other_seed_other_operations() {
    for kind in WorkloadKind::ALL {
        let a = simulate(&mut config(kind).generator(7), 1, 200);
        let b = simulate(&mut config(kind).generator(7), 1, 200);
        let c = simulate(&mut config(kind).generator(8), 1, 200);
        assert_eq!(a.len(), 200);
        assert_eq!(a, b, "{kind}: same seed must give the same ops");
        assert_ne!(a, c, "{kind}: another seed should give other ops");
    }
}

#[test]
fn keys_rotate_after_ops_per_key_max() {
    let ops = simulate(&mut config(WorkloadKind::Kv).generator(1), 1, 300);
    let mut per_key: BTreeMap<String, u64> = BTreeMap::new();
    for (_, invocation) in &ops {
        *per_key.entry(invocation.key.clone().unwrap()).or_default() += 1;
    }
    assert!(per_key.values().all(|count| *count <= 10), "{per_key:?}");
    assert!(per_key.len() >= 30, "300 ops over keys of 10 ops need ≥30 keys, got {}", per_key.len());
    assert!(per_key.keys().all(|key| key.starts_with("kv-")));
}

#[test]
fn functions_and_values_match_each_workload() {
    for kind in WorkloadKind::ALL {
        let ops = simulate(&mut config(kind).generator(3), 1, 500);
        let functions: BTreeSet<&str> = ops.iter().map(|(_, op)| op.f.as_str()).collect();
        let expected: BTreeSet<&str> = match kind {
            WorkloadKind::Register => ["read", "write"].into(),
            WorkloadKind::CasRegister => ["read", "write", "cas"].into(),
            WorkloadKind::Kv => ["get", "put", "append"].into(),
            WorkloadKind::Set => ["read", "add"].into(),
            WorkloadKind::Append => ["read", "append"].into(),
            WorkloadKind::ListAppend | WorkloadKind::RwRegister => ["txn"].into(),
            WorkloadKind::Bank => ["read", "transfer"].into(),
        };
        assert_eq!(functions, expected, "{kind}");
        if kind.is_transactional() {
            continue;
        }
        for (_, op) in &ops {
            match op.f.as_str() {
                "read" | "get" => assert!(op.value.is_null()),
                "put" | "append" if kind == WorkloadKind::Kv => assert!(op.value.is_string()),
                "write" => assert!(op.value.as_u64().is_some_and(|v| v < 5)),
                "cas" => assert_eq!(op.value.as_array().map(Vec::len), Some(2)),
                _ => assert!(op.value.as_u64().is_some()),
            }
        }
    }
}

#[test]
fn unique_values_are_unique() {
    for kind in [WorkloadKind::Kv, WorkloadKind::Set, WorkloadKind::Append] {
        let ops = simulate(&mut config(kind).generator(5), 1, 1000);
        let written: Vec<String> = ops
            .iter()
            .filter(|(_, op)| op.f != "read" && op.f != "get")
            .map(|(_, op)| op.value.to_string())
            .collect();
        let distinct: BTreeSet<&String> = written.iter().collect();
        assert!(written.len() > 400, "{kind}: {}", written.len());
        assert_eq!(distinct.len(), written.len(), "{kind}");
    }
}

#[test]
fn stagger_holds_the_rate_on_a_simulated_clock() {
    // 1 op per 10 ms on average, clock in 1 ms steps for 10 s: about 1000 ops.
    let mut generator = stagger(9, 10_000_000, config(WorkloadKind::Register).generator(9));
    let ops = simulate(&mut generator, 1_000_000, 10_000);
    assert!((900..=1100).contains(&ops.len()), "got {} ops", ops.len());
    let mut again = stagger(9, 10_000_000, config(WorkloadKind::Register).generator(9));
    assert_eq!(ops, simulate(&mut again, 1_000_000, 10_000), "stagger is deterministic");
}

#[test]
fn stagger_returns_pending_between_slots() {
    let mut generator = stagger(1, 1_000_000_000, config(WorkloadKind::Register).generator(1));
    let mut pending = 0;
    let mut invoked = 0;
    for time_ns in [0, 1, 2, 3] {
        match generator.next(&Context { time_ns, process: 0 }) {
            Next::Pending => pending += 1,
            Next::Invoke(_) => invoked += 1,
            Next::Done => panic!("stagger over an infinite generator is never done"),
        }
    }
    assert_eq!(invoked, 1);
    assert_eq!(pending, 3);
}

#[test]
fn time_limit_ends_at_the_deadline() {
    let mut generator = time_limit(50, config(WorkloadKind::Register).generator(1));
    let ops = simulate(&mut generator, 1, 1000);
    assert_eq!(ops.len(), 50);
    assert!(ops.iter().all(|(time_ns, _)| *time_ns < 50));
    assert_eq!(generator.next(&Context { time_ns: 50, process: 0 }), Next::Done);
}

#[test]
fn limit_counts_operations() {
    let mut generator = limit(7, config(WorkloadKind::Set).generator(1));
    assert_eq!(simulate(&mut generator, 1, 100).len(), 7);
    assert_eq!(generator.next(&Context { time_ns: 0, process: 0 }), Next::Done);
}

#[test]
fn phases_run_in_order_and_mix_drains_every_arm() {
    let first = final_reads(WorkloadKind::Set, &["a".to_string(), "b".to_string()]);
    let second = final_reads(WorkloadKind::Kv, &["c".to_string()]);
    let mut generator = phases(vec![Box::new(each(first)), Box::new(each(second))]);
    let keys: Vec<String> = simulate(&mut generator, 1, 10)
        .into_iter()
        .map(|(_, op)| op.key.unwrap())
        .collect();
    assert_eq!(keys, ["a", "b", "c"]);

    let arms: Vec<(u32, Box<dyn Generator>)> = vec![
        (1, Box::new(limit(20, config(WorkloadKind::Register).generator(1)))),
        (3, Box::new(limit(20, config(WorkloadKind::Set).generator(2)))),
    ];
    let ops = simulate(&mut mix(4, arms), 1, 1000);
    assert_eq!(ops.len(), 40, "mix hands out every op of every arm, then is done");
    let early_sets = ops[..20].iter().filter(|(_, op)| op.key.as_deref().unwrap().starts_with("set")).count();
    assert!(early_sets > 10, "weight 3 arm should dominate early, got {early_sets}/20");
}

#[test]
fn workload_names_round_trip_and_name_their_checker() {
    for kind in WorkloadKind::ALL {
        assert_eq!(kind.name().parse::<WorkloadKind>().unwrap(), kind);
    }
    assert!("bogus".parse::<WorkloadKind>().is_err());
    assert_eq!(WorkloadKind::Kv.checker(), CheckerNeed::Linearizable { model: ModelKind::Kv, durability: false });
    assert_eq!(WorkloadKind::Set.checker(), CheckerNeed::Linearizable { model: ModelKind::Set, durability: true });
    assert!(matches!(WorkloadKind::Append.checker(), CheckerNeed::Linearizable { model: ModelKind::ListAppend, .. }));
    assert_eq!(WorkloadKind::ListAppend.checker(), CheckerNeed::Transactions(faultline_checkers::txn::TxnKind::ListAppend));
    assert_eq!(WorkloadKind::RwRegister.checker(), CheckerNeed::Transactions(faultline_checkers::txn::TxnKind::RwRegister));
    assert_eq!(final_reads(WorkloadKind::Kv, &["k".to_string()])[0].f, "get");
    let reads = final_reads(WorkloadKind::ListAppend, &["4".to_string(), "kv-1".to_string()]);
    assert_eq!(reads, vec![transactions::read_txn(4)], "a non-integer key has no transactional read");
}

/// Elle's generators: 1..=4 micro-ops on a few active keys, writes
/// (appends or register writes) unique per key and counted from 1, a key
/// retired after its bound of writes.
#[test]
fn transactions_are_well_formed() {
    for (kind, write_f) in [(WorkloadKind::ListAppend, "append"), (WorkloadKind::RwRegister, "w")] {
        transactions_are_well_formed_for(kind, write_f);
    }
}

fn transactions_are_well_formed_for(kind: WorkloadKind, write_f: &str) {
    let ops = simulate(&mut config(kind).generator(9), 1, 2000);
    let mut appended: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut lengths = BTreeSet::new();
    for (_, op) in &ops {
        assert_eq!((op.f.as_str(), op.key.as_ref()), ("txn", None));
        let mops = op.value.as_array().unwrap();
        lengths.insert(mops.len());
        for mop in mops {
            let key = mop[1].as_u64().unwrap();
            match mop[0].as_str().unwrap() {
                "r" => assert!(mop[2].is_null()),
                f if f == write_f => appended.entry(key).or_default().push(mop[2].as_u64().unwrap()),
                other => panic!("{kind}: unexpected micro-op {other}"),
            }
        }
    }
    assert_eq!(lengths, (1..=transactions::TXN_MOPS_MAX).collect());
    for (key, values) in &appended {
        let expected: Vec<u64> = (1..=values.len() as u64).collect();
        assert_eq!(values, &expected, "{kind} key {key}: values count up from 1, unique");
        assert!(values.len() <= 10, "{kind} key {key} outlived its bound");
    }
    assert!(appended.len() > 100, "keys retire: {} keys", appended.len());
}

/// kv with a list-append share: about the share's operations are
/// transactions, the rest kv operations on prefixed keys; the same seed
/// draws the same mix, and both checkers are named.
#[test]
fn a_transaction_share_mixes_transactions_into_a_single_key_workload() {
    let share = TransactionShare { kind: WorkloadKind::ListAppend, per_mille: 200 };
    let mixed = WorkloadConfig { transactions: Some(share), ..config(WorkloadKind::Kv) };
    let ops = simulate(&mut mixed.generator(3), 1, 10_000);
    assert_eq!(ops, simulate(&mut mixed.generator(3), 1, 10_000), "the same seed, the same mix");
    let txns = ops.iter().filter(|(_, op)| op.f == "txn").count();
    assert!((1_700..=2_300).contains(&txns), "about 200 per mille are transactions: {txns} of {}", ops.len());
    for (_, op) in ops.iter().filter(|(_, op)| op.f != "txn") {
        assert!(matches!(op.f.as_str(), "get" | "put" | "append"), "a kv operation: {op:?}");
        assert!(op.key.as_deref().is_some_and(|key| key.starts_with("kv-")), "kv keys are prefixed: {op:?}");
    }
    assert_eq!(mixed.checkers(), vec![WorkloadKind::Kv.checker(), WorkloadKind::ListAppend.checker()]);
    assert_eq!(config(WorkloadKind::Kv).checkers(), vec![WorkloadKind::Kv.checker()]);
}

fn completion(process: u64, kind: faultline_checkers::EventType) -> faultline_checkers::Event {
    faultline_checkers::Event {
        process: faultline_checkers::Process::Client(process),
        kind,
        f: "read".to_string(),
        key: None,
        value: serde_json::Value::Null,
        time_ns: 0,
        node: None,
        error: None,
    }
}

#[test]
fn final_reads_retry_failures_up_to_the_bound_and_wait_for_outstanding() {
    use faultline_checkers::EventType;
    let keys = vec!["a".to_string(), "b".to_string()];
    let mut reads = FinalReads::new(WorkloadKind::Set, &keys, 2);
    let ctx = |process| Context { time_ns: 0, process };
    let Next::Invoke(first) = reads.next(&ctx(1)) else { panic!("expected a read") };
    assert_eq!(first.key.as_deref(), Some("a"));
    assert_eq!(reads.next(&ctx(1)), Next::Pending, "one read per process at a time");
    let Next::Invoke(second) = reads.next(&ctx(2)) else { panic!("expected a read") };
    assert_eq!(second.key.as_deref(), Some("b"));
    assert_eq!(reads.next(&ctx(3)), Next::Pending, "reads outstanding: not done yet");
    reads.update(&completion(1, EventType::Info));
    reads.update(&completion(2, EventType::Ok));
    let Next::Invoke(retry) = reads.next(&ctx(3)) else { panic!("expected the retry") };
    assert_eq!(retry.key.as_deref(), Some("a"));
    reads.update(&completion(3, EventType::Fail));
    assert_eq!(reads.next(&ctx(4)), Next::Done, "two attempts used up");
}

/// With transactions mixed in, a bare integer key is the transactions'
/// and gets a read-only transaction; a prefixed key the workload's read.
#[test]
fn final_reads_of_a_mixed_workload_read_each_key_its_own_way() {
    let keys = vec!["kv-0".to_string(), "3".to_string()];
    let mut reads = FinalReads::new(WorkloadKind::Kv, &keys, 1).with_transactions(Some(WorkloadKind::ListAppend));
    let ctx = |process| Context { time_ns: 0, process };
    let Next::Invoke(get) = reads.next(&ctx(1)) else { panic!("expected a read") };
    let Next::Invoke(txn) = reads.next(&ctx(2)) else { panic!("expected a read") };
    assert_eq!((get.f.as_str(), get.key.as_deref()), ("get", Some("kv-0")));
    assert_eq!(txn, transactions::read_txn(3));
    let mut alone = FinalReads::new(WorkloadKind::Kv, &keys, 1);
    let Next::Invoke(_) = alone.next(&ctx(1)) else { panic!("expected a read") };
    let Next::Invoke(get) = alone.next(&ctx(2)) else { panic!("expected a read") };
    assert_eq!((get.f.as_str(), get.key.as_deref()), ("get", Some("3")), "without a share, every key is kv's");
}

/// Transfers between two distinct accounts of 1 to 5; reads name every account.
#[test]
fn bank_operations_are_well_formed() {
    let config = WorkloadConfig { kind: WorkloadKind::Bank, keys_active: 4, ops_per_key_max: 10, transactions: None };
    let ops = simulate(&mut config.generator(4), 1, 1000);
    let mut amounts = BTreeSet::new();
    for (_, op) in &ops {
        assert_eq!(op.key, None);
        match op.f.as_str() {
            "read" => assert_eq!(bank::read_accounts(&op.value), Some(vec![0, 1, 2, 3])),
            _ => {
                let (from, to, amount) = bank::transfer_of(&op.value).unwrap();
                assert!(from != to && from < 4 && to < 4, "{}", op.value);
                amounts.insert(amount);
            }
        }
    }
    assert_eq!(amounts, (1..=bank::TRANSFER_AMOUNT_MAX).collect());
    assert_eq!(bank::total(4), 40);
}
