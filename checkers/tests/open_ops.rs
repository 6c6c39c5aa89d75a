//! Operations with an unknown outcome that never return ("open": a client
//! timed out or crashed) may take effect at any point after their call, or
//! never. The search may leave them out, and does not explore again a
//! configuration that has linearized one more of them than a stored one in
//! the same state; verdicts stay exact.
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
        let (verdict, configurations) = check(&history(&[3, 7, 12]), model);
        assert_eq!(verdict, Verdict::Valid);
        // 1343 with the pruning, 2399 without (measured): every subset of
        // the 12 open writes would be 4096.
        assert!(configurations < 2_000, "{model:?}: {configurations} configurations");
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
fn an_open_cas_that_cannot_succeed_is_left_out() {
    // write 1 ok; cas 5 -> 6 times out (5 is never the value); read 1 ok.
    let events = vec![
        event(0, EventType::Invoke, "write", 1.into(), 0),
        event(0, EventType::Ok, "write", 1.into(), 1),
        event(1, EventType::Invoke, "cas", serde_json::json!([5, 6]), 2),
        event(1, EventType::Info, "cas", serde_json::json!([5, 6]), 3),
        event(0, EventType::Invoke, "read", Value::Null, 4),
        event(0, EventType::Ok, "read", 1.into(), 5),
    ];
    assert_eq!(check(&events, ModelKind::CasRegister).0, Verdict::Valid);
}
