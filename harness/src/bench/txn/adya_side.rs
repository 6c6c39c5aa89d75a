//! `faultline bench txn` built with `--features bench-adya`: each generated
//! history is also checked by the `adya` crate (a Rust take on Elle), and
//! its figures are printed beside ours with the ratio of check times.
//!
//! The history goes to adya as the JSON lines it reads (Elle's format): for
//! each transaction, in history order, an `invoke` (reads `null`) and then
//! its `ok`. Writing the text and parsing it into adya's `History` are timed
//! apart from its check, as our check is timed apart from generation.
//!
//! Model: adya's `strict-serializable`, the one our `check_list_append`
//! checks. adya takes real-time order from the order of the lines, so these
//! one-at-a-time histories give it a chain of real-time edges in history
//! order, where ours (all times zero) has none but has process-order edges;
//! the serial order the generator used agrees with both, so a clean history
//! is valid and a planted read skew is a cycle either way.
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use adya::{check, History, Opts, Valid, Workload};
use faultline_checkers::txn::{Mop, Txn, TxnOutcome};
use faultline_checkers::Verdict;

use super::super::check::{peak_memory_mib, reset_peak_memory};

/// The adya model closest to ours (strict serializable).
const MODEL: &str = "strict-serializable";

/// Check `history` with adya. Takes the history so that it is freed before
/// adya's check: the peak memory then counts adya's history, not ours.
/// Returns the text to append to the history's line, and whether the two
/// verdicts agree.
pub(super) fn side_by_side(history: Vec<Txn>, ours: Verdict, our_check: Duration) -> (String, bool) {
    let txns = history.len() as f64;
    let started = Instant::now();
    let text = to_jsonl(&history);
    let serialized = started.elapsed();
    drop(history);
    let started = Instant::now();
    let parsed = History::from_json(&text);
    let loaded = started.elapsed();
    let mib = text.len() as f64 / (1024.0 * 1024.0);
    drop(text);
    let h = match parsed {
        Ok(h) => h,
        Err(e) => return (format!(" | adya: could not read the history: {e}"), false),
    };
    release_free_memory();
    reset_peak_memory();
    let started = Instant::now();
    let report = check(&h, Workload::ListAppend, &Opts { models: vec![MODEL.into()], ..Opts::default() });
    let checked = started.elapsed();
    let peak = peak_memory_mib().map_or("n/a".to_string(), |mib| format!("{mib:.0} MiB"));
    let verdict = match report.valid {
        Valid::True => "valid",
        Valid::False => "invalid",
        Valid::Unknown => "unknown",
    };
    let types = if report.anomaly_types.is_empty() { String::new() } else { format!(": {}", report.anomaly_types.join(", ")) };
    let mut line = format!(
        " | adya {MODEL}: {verdict}{types}, write {mib:.0} MiB {:.2} s + parse {:.2} s, check {:.2} s = {:.0} txns/s, peak {peak} | faultline/adya check time {:.2}",
        serialized.as_secs_f64(),
        loaded.as_secs_f64(),
        checked.as_secs_f64(),
        txns / checked.as_secs_f64(),
        our_check.as_secs_f64() / checked.as_secs_f64(),
    );
    let valid = report.valid;
    drop((report, h));
    release_free_memory();
    let agree = matches!((ours, valid), (Verdict::Valid, Valid::True) | (Verdict::Invalid, Valid::False));
    if !agree {
        let _ = write!(line, "\n    DISAGREE: faultline says {}, adya says {verdict}", ours.name());
    }
    (line, agree)
}

/// Hand freed heap pages back to the system, so that the next peak-memory
/// figure (ours for the next history, or adya's) starts from what is live,
/// not from what the other checker freed and glibc kept.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim only releases free memory; it takes
        // no pointers and may be called at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// The history as adya's JSON lines: an invoke and its completion for each
/// transaction, in history order.
fn to_jsonl(history: &[Txn]) -> String {
    let mut out = String::with_capacity(history.len() * 160);
    for txn in history {
        let _ = write!(out, r#"{{"type":"invoke","process":{},"value":["#, txn.process);
        mops(&mut out, &txn.mops, false);
        let kind = match txn.outcome {
            TxnOutcome::Ok => "ok",
            TxnOutcome::Fail => "fail",
            TxnOutcome::Info => "info",
        };
        let _ = write!(out, "]}}\n{{\"type\":\"{kind}\",\"process\":{},\"value\":[", txn.process);
        mops(&mut out, &txn.mops, txn.outcome == TxnOutcome::Ok);
        out.push_str("]}\n");
    }
    out
}

/// Micro-operations as `["append",k,v]` and `["r",k,[..]]`; reads are
/// `null` unless `completed`.
fn mops(out: &mut String, mops: &[Mop], completed: bool) {
    for (at, mop) in mops.iter().enumerate() {
        if at > 0 {
            out.push(',');
        }
        let _ = match mop {
            Mop::Append { key, value } => write!(out, r#"["append",{key},{value}]"#),
            Mop::Write { key, value } => write!(out, r#"["w",{key},{value}]"#),
            Mop::Read { key, list } => {
                let _ = write!(out, r#"["r",{key},"#);
                match list.as_ref().filter(|_| completed) {
                    Some(list) => {
                        out.push('[');
                        for (i, v) in list.iter().enumerate() {
                            let _ = write!(out, "{}{v}", if i > 0 { "," } else { "" });
                        }
                        out.push_str("]]");
                    }
                    None => out.push_str("null]"),
                }
                Ok(())
            }
            Mop::ReadRegister { key, value } => match value.filter(|_| completed).flatten() {
                Some(v) => write!(out, r#"["r",{key},{v}]"#),
                None => write!(out, r#"["r",{key},null]"#),
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_is_what_adya_reads() {
        let txn = |id: u64, mops: Vec<Mop>| Txn { id, process: id % 2, outcome: TxnOutcome::Ok, mops, call_ns: 0, return_ns: 0 };
        let history = vec![
            txn(0, vec![Mop::Append { key: 1, value: 1 }]),
            txn(1, vec![Mop::Read { key: 1, list: Some(vec![1]) }, Mop::Append { key: 2, value: 1 }]),
        ];
        let text = to_jsonl(&history);
        assert!(text.starts_with("{\"type\":\"invoke\",\"process\":0,\"value\":[[\"append\",1,1]]}\n"), "{text}");
        assert!(text.contains("[[\"r\",1,[1]],[\"append\",2,1]]"), "{text}");
        let h = History::from_json(&text).unwrap();
        assert_eq!(h.ops.len(), 4);
        let report = check(&h, Workload::ListAppend, &Opts { models: vec![MODEL.into()], ..Opts::default() });
        assert_eq!(report.valid, Valid::True);
    }
}
