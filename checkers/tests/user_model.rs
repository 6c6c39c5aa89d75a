//! A model defined outside the crate, as a user would: a counter with `inc`,
//! `dec` and `read`, none of them built-in function names, checked through
//! the public API per key.
use faultline_checkers::{
    check_history_with, CheckConfig, Event, EventType, Func, Model, Op, Outcome, Process, Val, Verdict,
};

/// One integer counter per key, starting at 0.
struct Counter {
    inc: Func,
    dec: Func,
}

impl Counter {
    fn new() -> Counter {
        // Interned once here, so `step` compares two-byte values, not strings.
        Counter { inc: Func::parse("inc"), dec: Func::parse("dec") }
    }
}

impl Model for Counter {
    type State = i64;

    fn name(&self) -> &'static str {
        "counter"
    }

    fn init(&self) -> i64 {
        0
    }

    fn step(&self, count: &i64, op: &Op) -> Option<i64> {
        match op.f {
            f if f == self.inc => Some(count + 1),
            f if f == self.dec => Some(count - 1),
            Func::Read if op.outcome != Outcome::Ok => Some(*count),
            Func::Read => (op.output == Val::Int(*count)).then_some(*count),
            _ => None,
        }
    }

    fn validate(&self, op: &Op) -> Result<(), String> {
        match op.f {
            f if f == self.inc || f == self.dec => Ok(()),
            Func::Read if op.outcome != Outcome::Ok || matches!(op.output, Val::Int(_)) => Ok(()),
            Func::Read => Err(format!("read must return an integer, got {}", op.output)),
            other => Err(format!("function {other} is not part of the counter model")),
        }
    }

    fn is_read_only(&self, op: &Op) -> bool {
        op.f == Func::Read
    }

    fn describe_state(&self, count: &i64) -> String {
        format!("count {count}")
    }
}

/// `(process, type, f, key, value, time_ns)`
type Line = (u64, EventType, &'static str, &'static str, Option<i64>, u64);

fn events(lines: &[Line]) -> Vec<Event> {
    lines
        .iter()
        .map(|&(process, kind, f, key, value, time_ns)| Event {
            process: Process::Client(process),
            kind,
            f: f.to_string(),
            key: Some(key.to_string()),
            value: value.map_or(serde_json::Value::Null, serde_json::Value::from),
            time_ns,
            node: None,
            error: None,
        })
        .collect()
}

const INVOKE: EventType = EventType::Invoke;
const OK: EventType = EventType::Ok;
const INFO: EventType = EventType::Info;

/// Key "a": concurrent incs, a read that sees only one of them, a dec, and
/// an inc of unknown outcome that may or may not have happened.
const KEY_A: [Line; 12] = [
    (0, INVOKE, "inc", "a", None, 0),
    (1, INVOKE, "inc", "a", None, 5),
    (0, OK, "inc", "a", None, 10),
    (2, INVOKE, "read", "a", None, 12),
    (1, OK, "inc", "a", None, 15),
    (2, OK, "read", "a", Some(1), 20),
    (0, INVOKE, "dec", "a", None, 30),
    (0, OK, "dec", "a", None, 40),
    (5, INVOKE, "inc", "a", None, 45),
    (5, INFO, "inc", "a", None, 46),
    (1, INVOKE, "read", "a", None, 50),
    (1, OK, "read", "a", Some(1), 60),
];

fn config() -> CheckConfig {
    CheckConfig { threads: 2, ..CheckConfig::default() }
}

#[test]
fn a_linearizable_history_is_valid_per_key() {
    let mut lines = KEY_A.to_vec();
    lines.extend_from_slice(&[
        (3, INVOKE, "inc", "b", None, 0),
        (3, OK, "inc", "b", None, 5),
        (3, INVOKE, "read", "b", None, 10),
        (3, OK, "read", "b", Some(1), 15),
    ]);
    let result = check_history_with(&Counter::new(), &events(&lines), &config()).expect("checks");
    assert_eq!(result.verdict, Verdict::Valid, "{result:#?}");
    assert_eq!(result.model.name(), "counter");
    assert_eq!(result.keys.len(), 2);
    assert!(result.keys.iter().all(|k| k.verdict == Verdict::Valid));
}

#[test]
fn a_non_linearizable_history_is_invalid_with_a_counterexample() {
    let mut lines = KEY_A.to_vec();
    // Key "b": +1 +1 -1 in sequence, then a read of 2. Only telling `dec`
    // from `inc` makes this invalid.
    lines.extend_from_slice(&[
        (3, INVOKE, "inc", "b", None, 0),
        (3, OK, "inc", "b", None, 5),
        (3, INVOKE, "inc", "b", None, 10),
        (3, OK, "inc", "b", None, 15),
        (3, INVOKE, "dec", "b", None, 20),
        (3, OK, "dec", "b", None, 25),
        (4, INVOKE, "read", "b", None, 30),
        (4, OK, "read", "b", Some(2), 35),
    ]);
    let config = CheckConfig { stop_at_first_invalid: false, ..config() };
    let result = check_history_with(&Counter::new(), &events(&lines), &config).expect("checks");
    assert_eq!(result.verdict, Verdict::Invalid, "{result:#?}");
    let a = result.keys.iter().find(|k| k.key == "a").expect("key a");
    assert_eq!(a.verdict, Verdict::Valid);
    let b = result.keys.iter().find(|k| k.key == "b").expect("key b");
    assert_eq!(b.verdict, Verdict::Invalid);
    let counterexample = b.counterexample.as_ref().expect("an invalid key has a counterexample");
    assert_eq!(counterexample.key, "b");
    assert_eq!(counterexample.state, "count 1");
    assert_eq!(counterexample.prefix_len, 3);
    let prefix: Vec<&str> = counterexample.prefix_tail.iter().map(|op| op.text.as_str()).collect();
    assert!(prefix[0].starts_with("p3 inc"), "{prefix:?}");
    assert!(prefix[2].starts_with("p3 dec"), "{prefix:?}");
    assert!(counterexample.stuck_op.text.starts_with("p4 read nil -> ok 2"), "{:?}", counterexample.stuck_op);
}

#[test]
fn a_function_the_model_does_not_know_is_an_error_naming_it() {
    let lines = [(0, INVOKE, "reset", "a", None, 0), (0, OK, "reset", "a", None, 1)];
    let error = check_history_with(&Counter::new(), &events(&lines), &config()).expect_err("reset is unknown");
    let message = error.to_string();
    assert!(message.contains("reset") && message.contains("counter"), "{message}");
}
