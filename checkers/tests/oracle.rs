//! Property test: on random small histories (≤ 12 operations, several
//! processes, with `info` and `fail`), our checker's verdict equals that of
//! stateright's `LinearizabilityTester`, used as an exact oracle.
//!
//! Histories come from a simulated register: each operation takes effect
//! at a random point while pending (or never), results are sometimes
//! corrupted, so both verdicts occur often. The same history is fed to both
//! checkers: as faultline events (`fail` = did not happen) and as Jepsen log
//! lines (`:fail :cas` = the compare failed).
use proptest::prelude::*;
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

use faultline_checkers::read::read_bytes;
use faultline_checkers::{check_history, check_op_history, CheckConfig, Event, EventType, ModelKind, Process, Verdict};

const OPS_MAX: usize = 12;
const VALUES: i64 = 3;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Read,
    Write(i64),
    Cas(i64, i64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ret {
    Read(Option<i64>),
    Write,
    CasOk,
    CasFail,
}

/// The sequential spec for the oracle (stateright ships a plain register).
#[derive(Clone, Debug, Default, PartialEq)]
struct CasRegister(Option<i64>);

impl SequentialSpec for CasRegister {
    type Op = Op;
    type Ret = Ret;
    fn invoke(&mut self, op: &Op) -> Ret {
        match *op {
            Op::Read => Ret::Read(self.0),
            Op::Write(v) => {
                self.0 = Some(v);
                Ret::Write
            }
            Op::Cas(from, to) if self.0 == Some(from) => {
                self.0 = Some(to);
                Ret::CasOk
            }
            Op::Cas(..) => Ret::CasFail,
        }
    }
}

/// One line of a generated history.
#[derive(Clone, Debug)]
enum Line {
    Invoke(u64, Op),
    /// ok, or (for a cas whose compare failed) fail-that-happened.
    Done(u64, Op, Ret),
    /// fail = the operation did not happen.
    NotDone(u64, Op),
    Info(u64, Op),
}

#[derive(Clone, Copy)]
enum Slot {
    Idle,
    Pending(Op, Option<Ret>),
    Retired,
}

/// Interprets random bytes as a run of a simulated, sometimes lying register.
/// With `with_cas` false, only reads and writes: a plain register.
fn simulate(process_count: u64, actions: &[(u8, u8, u8, u8)], with_did_not_happen: bool, with_cas: bool) -> Vec<Line> {
    let mut slots = vec![Slot::Idle; process_count as usize];
    let mut register = CasRegister::default();
    let mut lines = Vec::new();
    let mut invoked = 0;
    for &(kind, process, a, b) in actions {
        let p = u64::from(process) % process_count;
        let slot = &mut slots[p as usize];
        match *slot {
            Slot::Retired => {}
            Slot::Idle if invoked < OPS_MAX => {
                let (x, y) = (i64::from(b) % VALUES, i64::from(b / 3) % VALUES);
                let op = match a % if with_cas { 3 } else { 2 } {
                    0 => Op::Read,
                    1 => Op::Write(x),
                    _ => Op::Cas(x, y),
                };
                invoked += 1;
                lines.push(Line::Invoke(p, op));
                *slot = Slot::Pending(op, None);
            }
            Slot::Idle => {}
            Slot::Pending(op, None) => match kind % 8 {
                0 => {
                    lines.push(Line::Info(p, op));
                    *slot = Slot::Retired;
                }
                1 if with_did_not_happen && !matches!(op, Op::Read) => {
                    lines.push(Line::NotDone(p, op));
                    *slot = Slot::Idle;
                }
                _ => *slot = Slot::Pending(op, Some(register.invoke(&op))),
            },
            Slot::Pending(op, Some(ret)) => {
                if kind % 6 == 0 {
                    lines.push(Line::Info(p, op));
                    *slot = Slot::Retired;
                    continue;
                }
                let ret = if kind % 5 == 1 { corrupt(ret, a) } else { ret };
                lines.push(if ret == Ret::CasFail && with_did_not_happen {
                    Line::NotDone(p, op)
                } else {
                    Line::Done(p, op, ret)
                });
                *slot = Slot::Idle;
            }
        }
    }
    lines
}

fn corrupt(ret: Ret, a: u8) -> Ret {
    match ret {
        Ret::Read(Some(_)) if a % 2 == 0 => Ret::Read(None),
        Ret::Read(v) => Ret::Read(Some((v.unwrap_or(0) + 1 + i64::from(a)) % VALUES)),
        Ret::CasOk => Ret::CasFail,
        Ret::CasFail => Ret::CasOk,
        Ret::Write => Ret::Write,
    }
}

/// The oracle's verdict: operations that did not happen are left out;
/// info operations stay in flight.
fn oracle(lines: &[Line]) -> bool {
    let dropped: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| match line {
            Line::NotDone(p, _) => lines[..i].iter().rposition(|l| matches!(l, Line::Invoke(q, _) if q == p)),
            _ => None,
        })
        .collect();
    let mut tester = LinearizabilityTester::new(CasRegister::default());
    for (i, line) in lines.iter().enumerate() {
        let fed = match *line {
            Line::Invoke(p, op) if !dropped.contains(&i) => tester.on_invoke(p, op).map(|_| ()),
            Line::Done(p, _, ret) => tester.on_return(p, ret).map(|_| ()),
            _ => Ok(()),
        };
        fed.expect("generated histories are well formed");
    }
    tester.is_consistent()
}

fn value_json(op: Op) -> serde_json::Value {
    match op {
        Op::Read => serde_json::Value::Null,
        Op::Write(v) => v.into(),
        Op::Cas(from, to) => serde_json::json!([from, to]),
    }
}

fn f_name(op: Op) -> &'static str {
    match op {
        Op::Read => "read",
        Op::Write(_) => "write",
        Op::Cas(..) => "cas",
    }
}

fn events(lines: &[Line]) -> Vec<Event> {
    let event = |i: usize, p: u64, kind, op: Op, value| Event {
        process: Process::Client(p),
        kind,
        f: f_name(op).to_string(),
        key: None,
        value,
        time_ns: i as u64 * 10,
        node: None,
        error: None,
    };
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| match *line {
            Line::Invoke(p, op) => event(i, p, EventType::Invoke, op, value_json(op)),
            Line::Done(p, op, Ret::Read(v)) => event(i, p, EventType::Ok, op, v.map_or(serde_json::Value::Null, Into::into)),
            Line::Done(p, op, _) => event(i, p, EventType::Ok, op, value_json(op)),
            Line::NotDone(p, op) => event(i, p, EventType::Fail, op, value_json(op)),
            Line::Info(p, op) => event(i, p, EventType::Info, op, value_json(op)),
        })
        .collect()
}

fn jepsen_value(op: Op) -> String {
    match op {
        Op::Read => "nil".to_string(),
        Op::Write(v) => v.to_string(),
        Op::Cas(from, to) => format!("[{from} {to}]"),
    }
}

fn jepsen_log(lines: &[Line]) -> String {
    let mut text = String::from("INFO  jepsen.core - a generated history\n");
    for line in lines {
        let (p, kind, op, value) = match *line {
            Line::Invoke(p, op) => (p, "invoke", op, jepsen_value(op)),
            Line::Done(p, op, Ret::Read(v)) => (p, "ok", op, v.map_or("nil".to_string(), |v| v.to_string())),
            Line::Done(p, op, Ret::CasFail) => (p, "fail", op, jepsen_value(op)),
            Line::Done(p, op, _) => (p, "ok", op, jepsen_value(op)),
            Line::NotDone(..) => unreachable!("jepsen histories are generated without did-not-happen failures"),
            Line::Info(p, op) => (p, "info", op, ":timed-out".to_string()),
        };
        text.push_str(&format!("INFO  jepsen.util - {p}\t:{kind}\t:{}\t{value}\n", f_name(op)));
    }
    text
}

/// The oracle's answer, as the checker must give it: a history the oracle
/// accepts without one returned read or cas shows nothing, so `unknown`.
fn verdict_of(valid: bool, lines: &[Line]) -> Verdict {
    let evidence = lines.iter().any(|line| matches!(line, Line::Done(_, Op::Read | Op::Cas(..), _)));
    match (valid, evidence) {
        (false, _) => Verdict::Invalid,
        (true, true) => Verdict::Valid,
        (true, false) => Verdict::Unknown,
    }
}

fn config() -> CheckConfig {
    CheckConfig { model: Some(ModelKind::CasRegister), threads: 1, require_evidence: true, ..CheckConfig::default() }
}

fn actions() -> impl Strategy<Value = (u64, Vec<(u8, u8, u8, u8)>)> {
    (2u64..=4, proptest::collection::vec(any::<(u8, u8, u8, u8)>(), 0..48))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn faultline_events_agree_with_stateright((process_count, actions) in actions()) {
        let lines = simulate(process_count, &actions, true, true);
        let result = check_history(&events(&lines), &config()).expect("checks");
        prop_assert_eq!(result.verdict, verdict_of(oracle(&lines), &lines), "history: {:?}", lines);
    }

    /// The register model leaves out crashed writes no read shows
    /// (`Model::never_seen`); with only three values, reads often show
    /// several writes of one value.
    #[test]
    fn register_histories_agree_with_stateright((process_count, actions) in actions()) {
        let lines = simulate(process_count, &actions, true, false);
        let config = CheckConfig { model: Some(ModelKind::Register), ..config() };
        let result = check_history(&events(&lines), &config).expect("checks");
        prop_assert_eq!(result.verdict, verdict_of(oracle(&lines), &lines), "history: {:?}", lines);
    }

    #[test]
    fn jepsen_logs_agree_with_stateright((process_count, actions) in actions()) {
        let lines = simulate(process_count, &actions, false, true);
        // A log without a single event line has no recognisable format.
        prop_assume!(!lines.is_empty());
        let (_, history) = read_bytes(jepsen_log(&lines).as_bytes(), 1).expect("reads");
        let result = check_op_history(&history, &config()).expect("checks");
        prop_assert_eq!(result.verdict, verdict_of(oracle(&lines), &lines), "history: {:?}", lines);
    }
}

/// Guards the generator: a property that only ever sees one verdict would
/// prove little.
#[test]
fn the_generator_produces_both_verdicts_and_info() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let (mut valid, mut invalid, mut with_info) = (0, 0, 0);
    for _ in 0..500 {
        let (process_count, actions) = actions().new_tree(&mut runner).expect("tree").current();
        let lines = simulate(process_count, &actions, true, true);
        if oracle(&lines) { valid += 1 } else { invalid += 1 }
        if lines.iter().any(|l| matches!(l, Line::Info(..))) { with_info += 1 }
    }
    assert!(valid > 100, "valid {valid}");
    assert!(invalid > 50, "invalid {invalid}");
    assert!(with_info > 100, "with info {with_info}");
}

/// Guards the register property: crashed writes that no read shows (the
/// ones the register model leaves out) must occur, in both verdicts.
#[test]
fn the_register_generator_has_crashed_writes_no_read_shows() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[9; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let (mut valid, mut invalid) = (0, 0);
    for _ in 0..500 {
        let (process_count, actions) = actions().new_tree(&mut runner).expect("tree").current();
        let lines = simulate(process_count, &actions, true, false);
        let read = |v: i64| lines.iter().any(|l| matches!(l, Line::Done(_, Op::Read, Ret::Read(Some(r))) if *r == v));
        let unseen = lines.iter().any(|l| matches!(l, Line::Info(_, Op::Write(v)) if !read(*v)));
        match (unseen, oracle(&lines)) {
            (true, true) => valid += 1,
            (true, false) => invalid += 1,
            (false, _) => {}
        }
    }
    assert!(valid > 30, "valid with an unseen crashed write: {valid}");
    assert!(invalid > 10, "invalid with an unseen crashed write: {invalid}");
}
