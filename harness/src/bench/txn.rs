//! `faultline bench txn`: figures for the list-append transaction checker
//! (`faultline_checkers::txn`) on generated histories: serializable by
//! construction (transactions run one at a time over a pool of active keys
//! that retire after a bounded number of appends, as Elle's generator
//! does), and the same with planted read skews (sure G-single cycles). Prints generation and
//! check time, transactions per second and peak memory; a clean history
//! that is not valid, or a planted one that is not invalid, exits 3:
//! figures for a wrong checker are not figures. Built with `--features
//! bench-adya`, each history is also checked by the `adya` crate and its
//! figures printed on the same line (see `txn_adya.rs`); verdicts that
//! disagree also exit 3.
use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;

use faultline_checkers::txn::{check_list_append, Mop, Txn, TxnOutcome};
use faultline_checkers::Verdict;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::check::{peak_memory_mib, reset_peak_memory};

/// With `--features bench-adya`: the same histories checked by the `adya`
/// crate, side by side.
#[cfg(feature = "bench-adya")]
mod adya_side;

#[derive(clap::Args)]
pub struct TxnBenchArgs {
    /// Transactions per generated history (repeatable: each size is run).
    #[arg(long = "txns", default_values_t = [100_000u64, 1_000_000])]
    pub txns: Vec<u64>,
    /// Processes the transactions are spread over (repeatable).
    #[arg(long = "processes", default_values_t = [10u64, 50])]
    pub processes: Vec<u64>,
    /// Keys in use at once.
    #[arg(long, default_value_t = 20)]
    pub keys_active: u64,
    /// Appends to a key before it retires for a fresh one.
    #[arg(long, default_value_t = 16)]
    pub appends_per_key_max: u64,
    /// Read skews planted in the second history of each size.
    #[arg(long, default_value_t = 3)]
    pub planted: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Largest history generated, to keep the bench bounded.
const TXNS_MAX: u64 = 20_000_000;
/// Micro-operations per transaction: 1 to this many.
const MOPS_MAX: u64 = 4;

pub fn run(args: TxnBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.txns.iter().all(|n| (1..=TXNS_MAX).contains(n)), "--txns must be 1..={TXNS_MAX}");
    anyhow::ensure!(args.processes.iter().all(|p| *p >= 1), "--processes must be at least 1");
    anyhow::ensure!(args.keys_active >= 1 && args.appends_per_key_max >= 1, "--keys-active and --appends-per-key-max must be at least 1");
    println!("faultline bench txn: list-append histories, {} active keys, {} appends per key", args.keys_active, args.appends_per_key_max);
    let mut wrong = false;
    for &txns in &args.txns {
        for &processes in &args.processes {
            for planted in [0, args.planted] {
                wrong |= !one(&args, txns, processes, planted);
            }
        }
    }
    Ok(if wrong { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

/// Generate, check and print one history; false when the verdict is wrong.
fn one(args: &TxnBenchArgs, txns: u64, processes: u64, planted: u64) -> bool {
    reset_peak_memory();
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ txns ^ (processes << 32));
    let mut history = generate(&mut rng, txns, processes, args.keys_active, args.appends_per_key_max);
    let planted = plant_stale_reads(&mut rng, &mut history, planted);
    let generated = started.elapsed();
    let started = Instant::now();
    let report = check_list_append(&history);
    let checked = started.elapsed();
    let peak = peak_memory_mib().map_or("n/a".to_string(), |mib| format!("{mib:.0} MiB"));
    let expected = if planted == 0 { Verdict::Valid } else { Verdict::Invalid };
    let kinds: Vec<&str> = report.anomalies.iter().map(|a| a.kind.name()).collect();
    #[allow(unused_mut)]
    let mut line = format!(
        "  {txns:>9} txns, {processes:>2} processes, {planted} planted: {} ({} anomalies{}), generate {:.2} s, check {:.2} s = {:.0} txns/s, {} edges, peak {peak}",
        report.verdict.name(),
        report.anomalies.len(),
        if kinds.is_empty() { String::new() } else { format!(": {}", summarize(&kinds)) },
        generated.as_secs_f64(),
        checked.as_secs_f64(),
        txns as f64 / checked.as_secs_f64(),
        report.edges,
    );
    #[cfg(feature = "bench-adya")]
    let agree = {
        let (adya, agrees) = adya_side::side_by_side(history, report.verdict, checked);
        line.push_str(&adya);
        agrees
    };
    #[cfg(not(feature = "bench-adya"))]
    let agree = true;
    println!("{line}");
    if report.verdict != expected {
        println!("    WRONG: expected {}", expected.name());
        return false;
    }
    agree
}

fn summarize(kinds: &[&str]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for kind in kinds {
        match counts.iter_mut().find(|(k, _)| k == kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((kind, 1)),
        }
    }
    counts.iter().map(|(kind, n)| format!("{n} {kind}")).collect::<Vec<_>>().join(", ")
}

/// Transactions run one at a time: serializable by construction.
fn generate(rng: &mut ChaCha8Rng, txns: u64, processes: u64, keys_active: u64, appends_max: u64) -> Vec<Txn> {
    let mut active: Vec<u64> = (0..keys_active).collect();
    let mut next_key = keys_active;
    let mut lists: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut history = Vec::with_capacity(txns as usize);
    for id in 0..txns {
        let mut mops = Vec::new();
        for _ in 0..rng.random_range(1..=MOPS_MAX) {
            let slot = rng.random_range(0..active.len());
            let key = active[slot];
            let list = lists.entry(key).or_default();
            if rng.random_bool(0.5) {
                let value = list.len() as u64 + 1;
                list.push(value);
                mops.push(Mop::Append { key, value });
                if list.len() as u64 >= appends_max {
                    lists.remove(&key);
                    active[slot] = next_key;
                    next_key += 1;
                }
            } else {
                mops.push(Mop::Read { key, list: Some(list.clone()) });
            }
        }
        history.push(Txn { id, process: id % processes, outcome: TxnOutcome::Ok, mops, call_ns: 0, return_ns: 0 });
    }
    history
}

/// Plant `count` read skews (G-single), each a sure anomaly: a
/// transaction R that read key k before W's append gets one more read, of
/// another key that W appended to, that includes W's append. Then R
/// precedes W (it missed W's append to k) and follows it (it saw W's
/// append to the other key). Returns how many it planted.
fn plant_stale_reads(rng: &mut ChaCha8Rng, history: &mut [Txn], count: u64) -> u64 {
    if count == 0 || history.is_empty() {
        return 0;
    }
    // The true order of each key (transactions ran in history order), and
    // each append's writer.
    let mut order: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut writer: HashMap<(u64, u64), usize> = HashMap::new();
    for (index, txn) in history.iter().enumerate() {
        for mop in &txn.mops {
            if let Mop::Append { key, value } = mop {
                order.entry(*key).or_default().push(*value);
                writer.insert((*key, *value), index);
            }
        }
    }
    let mut planted = 0;
    // Bounded: a history with few candidates plants fewer.
    for _ in 0..count * 1_000 {
        if planted == count {
            break;
        }
        let reader = rng.random_range(0..history.len());
        if let Some(read) = skew_for(&history[reader], reader, history, &order, &writer) {
            history[reader].mops.push(read);
            planted += 1;
        }
    }
    planted
}

/// The read to add to `txn` (at `index`) for a read skew, if it has one.
fn skew_for(txn: &Txn, index: usize, history: &[Txn], order: &HashMap<u64, Vec<u64>>, writer: &HashMap<(u64, u64), usize>) -> Option<Mop> {
    let touched: Vec<u64> = txn.mops.iter().map(Mop::key).collect();
    for mop in &txn.mops {
        let Mop::Read { key, list: Some(list) } = mop else { continue };
        let Some(next) = order.get(key).and_then(|values| values.get(list.len())) else { continue };
        let w = writer[&(*key, *next)];
        if w == index {
            continue;
        }
        for other in &history[w].mops {
            let Mop::Append { key: k2, value: v2 } = other else { continue };
            if touched.contains(k2) {
                continue;
            }
            let values = &order[k2];
            let at = values.iter().position(|v| v == v2)?;
            return Some(Mop::Read { key: *k2, list: Some(values[..=at].to_vec()) });
        }
    }
    None
}
