//! Operations with an unknown outcome that never return ("open": a client
//! timed out or crashed) may take effect at any point after their call, or
//! never. The search may leave them out, and never takes one that would
//! leave the state as it is; verdicts stay exact.
use faultline_checkers::{check_history, CheckConfig, Event, EventType, ModelKind, Process, Verdict};
use serde_json::Value;

const OPEN_WRITES: i64 = 12;

fn event(process: u64, kind: EventType, f: &str, value: Value, time_ns: u64) -> Event {
    Event {
        process: Process::Client(process),
        kind,
        f: f.to_string(),
        key: Some("k".to_string()),
        value,
        time_ns,
        node: None,
        error: None,
    }
}

/// `OPEN_WRITES` writes of 1..=20 that all time out, then one client that
/// reads `reads` in turn.
fn history(reads: &[i64]) -> Vec<Event> {
    let mut events = Vec::new();
    for v in 1..=OPEN_WRITES {
        let process = v as u64;
        events.push(event(process, EventType::Invoke, "write", v.into(), v as u64));
        events.push(event(process, EventType::Info, "write", v.into(), 50 + v as u64));
    }
    for (i, &v) in reads.iter().enumerate() {
        let at = 100 + 10 * i as u64;
        events.push(event(0, EventType::Invoke, "read", Value::Null, at));
        events.push(event(0, EventType::Ok, "read", v.into(), at + 5));
    }
    events
}

fn check(events: &[Event], model: ModelKind) -> (Verdict, u64) {
    let config = CheckConfig { model: Some(model), ..CheckConfig::default() };
    let result = check_history(events, &config).expect("well-formed history");
    (result.verdict, result.keys.iter().map(|k| k.configurations).sum())
}

#[test]
fn reads_of_some_timed_out_writes_are_valid() {
    for model in [ModelKind::Register, ModelKind::CasRegister] {
        assert_eq!(check(&history(&[3, 7, 12]), model).0, Verdict::Valid, "{model:?}");
    }
}

#[test]
fn a_value_read_twice_around_another_is_still_invalid() {
    for model in [ModelKind::Register, ModelKind::CasRegister] {
        let (verdict, _) = check(&history(&[3, 7, 3]), model);
        assert_eq!(verdict, Verdict::Invalid, "{model:?}: write 3 takes effect once");
    }
}

#[test]
fn open_cas_operations_that_change_nothing_are_never_tried() {
    // write 1 ok; 20 cas 5 -> 6 time out (5 is never the value); reads of
    // 1, 1 and then 7, which nobody wrote. Taking any of the cas ops would
    // leave the state as it was, so proving the history invalid does not
    // need to try their 2^20 subsets.
    let mut events = vec![
        event(0, EventType::Invoke, "write", 1.into(), 0),
        event(0, EventType::Ok, "write", 1.into(), 1),
    ];
    for process in 1..=20 {
        events.push(event(process, EventType::Invoke, "cas", serde_json::json!([5, 6]), 1 + process));
        events.push(event(process, EventType::Info, "cas", serde_json::json!([5, 6]), 30 + process));
    }
    for (i, seen) in [1, 1, 7].into_iter().enumerate() {
        let at = 100 + 10 * i as u64;
        events.push(event(0, EventType::Invoke, "read", Value::Null, at));
        events.push(event(0, EventType::Ok, "read", seen.into(), at + 5));
    }
    let (verdict, configurations) = check(&events, ModelKind::CasRegister);
    assert_eq!(verdict, Verdict::Invalid);
    assert!(configurations <= 4, "{configurations} configurations");
}
