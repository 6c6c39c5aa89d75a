//! The memory budget counts the heap part of model states: a search whose
//! states grow large (lists, sets) stops with `unknown` once past the
//! budget, instead of running on. kv states share the history's appended
//! values, so appends do not grow them.
use faultline_checkers::{check_history, CheckConfig, Event, EventType, ModelKind, Process, Verdict};
use serde_json::Value;

/// Sequential writes of `elements` to one key, then one read of `read`:
/// linearizable, and the search stores one ever-larger state per write.
fn history(write_f: &str, elements: Vec<Value>, read_f: &str, read: Value) -> Vec<Event> {
    let event = |kind, f: &str, value, time_ns| Event {
        process: Process::Client(0),
        kind,
        f: f.to_string(),
        key: Some("k".to_string()),
        value,
        time_ns,
        node: None,
        error: None,
    };
    let end_ns = 10 * elements.len() as u64;
    let mut events = Vec::new();
    for (i, element) in elements.into_iter().enumerate() {
        let time_ns = 10 * i as u64;
        events.push(event(EventType::Invoke, write_f, element.clone(), time_ns));
        events.push(event(EventType::Ok, write_f, element, time_ns + 5));
    }
    events.push(event(EventType::Invoke, read_f, Value::Null, end_ns));
    events.push(event(EventType::Ok, read_f, read, end_ns + 5));
    events
}

/// 64 appends of 4 KiB: as whole strings the states would total 8 MiB; the
/// history is 256 KiB.
fn kv_history() -> Vec<Event> {
    let chunks: Vec<String> = (0..64).map(|i| format!("{i:04096}")).collect();
    let whole = chunks.concat();
    history("append", chunks.into_iter().map(Value::from).collect(), "get", whole.into())
}

/// 1024 integers added one at a time: the states total 4 MiB, while the
/// search's fixed-size entries stay near 150 KiB, so only counting the
/// states' heap parts reaches a 1 MiB budget. The search takes about 1024
/// steps, fewer than between two periodic budget checks.
fn ints_history(model: ModelKind) -> Vec<Event> {
    let count: u64 = 1024;
    let write_f = if model == ModelKind::Set { "add" } else { "append" };
    let elements = (0..count).map(Value::from).collect();
    history(write_f, elements, "read", (0..count).collect::<Vec<u64>>().into())
}

fn config(model: ModelKind, memory_budget_mb: u64) -> CheckConfig {
    CheckConfig { model: Some(model), memory_budget_mb, threads: 1, ..CheckConfig::default() }
}

fn assert_valid_with_room_unknown_without(events: &[Event], model: ModelKind) {
    let result = check_history(events, &config(model, 1024)).expect("checks");
    assert_eq!(result.verdict, Verdict::Valid, "{model:?}: with room, the history is valid");
    let write_count = result.keys[0].op_count - 1;

    let result = check_history(events, &config(model, 1)).expect("checks");
    assert_eq!(result.verdict, Verdict::Unknown, "{model:?}: {result:#?}");
    let key = &result.keys[0];
    let reason = key.reason.as_deref().expect("an unknown key has a reason");
    assert!(reason.contains("memory budget"), "{model:?}: {reason}");
    // It stopped once past 1 MiB, well before the end of the history.
    assert!(key.configurations < write_count * 3 / 4, "{model:?}: {} configurations", key.configurations);
}

#[test]
fn kv_states_share_the_appended_values_and_fit_a_small_budget() {
    // Copied into whole strings they took 8 MiB and this was `unknown`.
    let result = check_history(&kv_history(), &config(ModelKind::Kv, 1)).expect("checks");
    assert_eq!(result.verdict, Verdict::Valid, "{result:#?}");
    let mut wrong = kv_history();
    let last = wrong.last_mut().expect("a read");
    last.value = Value::from("0".repeat(64 * 4096));
    let result = check_history(&wrong, &config(ModelKind::Kv, 1)).expect("checks");
    assert_eq!(result.verdict, Verdict::Invalid, "{result:#?}");
}

#[test]
fn list_append_states_count_against_the_memory_budget() {
    assert_valid_with_room_unknown_without(&ints_history(ModelKind::ListAppend), ModelKind::ListAppend);
}

#[test]
fn set_states_count_against_the_memory_budget() {
    assert_valid_with_room_unknown_without(&ints_history(ModelKind::Set), ModelKind::Set);
}
