//! Durability ("set-full"): for every write of a unique element, did later
//! reads see it?
//!
//! Writes: `add x` (set), `append x` with an integer (list-append) and
//! `put v` with a string (kv); reads: `read` (array of integers) and `get`
//! (string). Per key, each element ends in one class:
//! - `ok`: acknowledged, and every read that began after the acknowledgement
//!   saw it;
//! - `recovered`: its write was `info` (or never completed) and reads saw it;
//! - `lost`: known to exist (acknowledged, or seen by a read), then the last
//!   read that began after that point did not contain it;
//! - `stale`: missing from some read that began after it was known, but seen
//!   again by a later one (each such read counts as one stale read);
//! - `never_read`: acknowledged but no read began after that (a read that
//!   failed is no read: it did not happen). Nothing confirms it, nor shows it
//!   lost: the key's durability is `unknown`, never `valid`;
//! - `indeterminate`: `info` and never seen (it may not have happened);
//! - `unexpected`: a read returned an element nobody wrote, or one whose write
//!   `fail`ed (definitely did not happen).
//!
//! A `put` overwrites, so for `put` only `ok`/`recovered` (seen at least once),
//! `never_read` and `unexpected` apply. Checking costs O(elements × reads)
//! per key: meant for the final-read workloads, not for million-op histories.
use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::history::Event;
use crate::op::{Op, OpHistory};
use crate::read::history_from_events;
use crate::value::{Func, Outcome, Val};
use crate::verdict::Verdict;
use crate::ReadError;

/// Examples kept per class.
pub const EXAMPLES_MAX: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct DurabilityConfig {
    /// Whether a stale read (an element missing, then back) is invalid.
    /// True for linearizable systems; false for eventually consistent ones.
    pub stale_is_invalid: bool,
}

impl Default for DurabilityConfig {
    fn default() -> Self {
        DurabilityConfig { stale_is_invalid: true }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub acknowledged: u64,
    pub ok: u64,
    pub recovered: u64,
    pub lost: u64,
    pub stale: u64,
    pub stale_reads: u64,
    pub never_read: u64,
    pub indeterminate: u64,
    pub unexpected: u64,
    pub reads: u64,
    /// Writes of unknown outcome (`info`) that a read saw, so they count as
    /// written: with the acknowledged ones, what `lost` and `stale` are of.
    #[serde(default)]
    pub seen_indeterminate: u64,
}

/// A key with acknowledged writes that no later read confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unconfirmed {
    pub key: String,
    pub acknowledged: u64,
    pub never_read: u64,
}

/// One element in one class, for a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub key: String,
    pub element: String,
    /// Line of the write's invocation (0 if nobody wrote it).
    pub write_line: u32,
    /// Line of the read that shows the problem (0 if none).
    pub read_line: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Examples {
    pub lost: Vec<Example>,
    pub stale: Vec<Example>,
    pub unexpected: Vec<Example>,
    pub recovered: Vec<Example>,
    pub never_read: Vec<Example>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurabilityResult {
    pub verdict: Verdict,
    pub counts: Counts,
    pub examples: Examples,
    /// Keys whose acknowledged writes no read confirmed (the first
    /// [`UNCONFIRMED_KEYS_MAX`]), with `unconfirmed_key_count` in all.
    #[serde(default)]
    pub unconfirmed: Vec<Unconfirmed>,
    #[serde(default)]
    pub unconfirmed_key_count: u64,
}

/// Unconfirmed keys listed by name; the rest are counted.
pub const UNCONFIRMED_KEYS_MAX: usize = 20;

/// Checks an in-memory history.
pub fn check_durability(events: &[Event], config: &DurabilityConfig) -> Result<DurabilityResult, ReadError> {
    Ok(check_op_durability(&history_from_events(events)?, config))
}

/// Checks a parsed history.
pub fn check_op_durability(history: &OpHistory, config: &DurabilityConfig) -> DurabilityResult {
    let mut counts = Counts::default();
    let mut examples = Examples::default();
    let (mut unconfirmed, mut unconfirmed_key_count) = (Vec::new(), 0);
    for (key, ops) in history.keys.iter().zip(&history.ops_by_key) {
        let before = counts.clone();
        check_key(key, ops, &mut counts, &mut examples);
        let never_read = counts.never_read - before.never_read;
        if never_read > 0 {
            unconfirmed_key_count += 1;
            if unconfirmed.len() < UNCONFIRMED_KEYS_MAX {
                let acknowledged = counts.acknowledged - before.acknowledged;
                unconfirmed.push(Unconfirmed { key: key.clone(), acknowledged, never_read });
            }
        }
    }
    let bad = counts.lost > 0 || counts.unexpected > 0 || (config.stale_is_invalid && counts.stale > 0);
    let verified = counts.ok + counts.recovered + counts.lost + counts.stale;
    let verdict = if bad {
        Verdict::Invalid
    } else if counts.never_read > 0 || verified == 0 {
        // An acknowledged write no read confirmed is not shown kept, nor
        // lost; and with nothing read back at all, nothing is shown.
        Verdict::Unknown
    } else {
        Verdict::Valid
    };
    DurabilityResult { verdict, counts, examples, unconfirmed, unconfirmed_key_count }
}

struct Read {
    call_ns: u64,
    return_ns: u64,
    line: u32,
    seen: HashSet<Val>,
}

fn elements(op: &Op) -> Option<HashSet<Val>> {
    match (op.f, &op.output) {
        (Func::Read, Val::Ints(xs)) => Some(xs.iter().map(|x| Val::Int(*x)).collect()),
        (Func::Read, Val::Nil) => Some(HashSet::new()),
        (Func::Get, Val::Str(s)) if s.is_empty() => Some(HashSet::new()),
        (Func::Get, Val::Str(_)) => Some(HashSet::from([op.output.clone()])),
        (Func::Get, Val::Nil) => Some(HashSet::new()),
        _ => None,
    }
}

fn is_write(op: &Op) -> bool {
    matches!((op.f, &op.input), (Func::Add | Func::Append, Val::Int(_)) | (Func::Put, Val::Str(_)))
}

fn push_example(list: &mut Vec<Example>, example: Example) {
    if list.len() < EXAMPLES_MAX {
        list.push(example);
    }
}

fn check_key(key: &str, ops: &[Op], counts: &mut Counts, examples: &mut Examples) {
    let mut reads: Vec<Read> = ops
        .iter()
        .filter(|op| op.outcome == Outcome::Ok)
        .filter_map(|op| {
            elements(op).map(|seen| Read { call_ns: op.call_ns, return_ns: op.return_ns, line: op.line, seen })
        })
        .collect();
    reads.sort_by_key(|r| r.call_ns);
    counts.reads += reads.len() as u64;
    let writes: HashMap<&Val, &Op> = ops.iter().filter(|op| is_write(op)).map(|op| (&op.input, op)).collect();
    let example = |element: &Val, write_line: u32, read_line: u32| Example {
        key: key.to_string(),
        element: element.to_string(),
        write_line,
        read_line,
    };
    for read in &reads {
        for element in read.seen.iter().filter(|e| !writes.contains_key(e)) {
            counts.unexpected += 1;
            push_example(&mut examples.unexpected, example(element, 0, read.line));
        }
    }
    for (element, write) in &writes {
        classify(element, write, &reads, counts, examples, &example);
    }
}

fn classify(
    element: &Val,
    write: &Op,
    reads: &[Read],
    counts: &mut Counts,
    examples: &mut Examples,
    example: &dyn Fn(&Val, u32, u32) -> Example,
) {
    let first_seen = reads.iter().filter(|r| r.seen.contains(element)).min_by_key(|r| r.return_ns);
    if write.outcome == Outcome::Ok {
        counts.acknowledged += 1;
    }
    // Only a `fail` of our own JSONL is dropped before this point; a write
    // with `Outcome::Failed` does not exist, so seen-but-failed cannot occur.
    let known_ns = match (write.outcome, first_seen) {
        (Outcome::Ok, _) => write.return_ns,
        (_, Some(read)) => {
            counts.seen_indeterminate += 1;
            read.return_ns
        }
        (_, None) => {
            counts.indeterminate += 1;
            return;
        }
    };
    let after: Vec<&Read> = reads.iter().filter(|r| r.call_ns > known_ns).collect();
    let missing: Vec<&&Read> = after.iter().filter(|r| !r.seen.contains(element)).collect();
    let overwritable = write.f == Func::Put;
    let recovered = write.outcome != Outcome::Ok;
    if overwritable || missing.is_empty() {
        if first_seen.is_none() {
            counts.never_read += 1;
            push_example(&mut examples.never_read, example(element, write.line, 0));
        } else if recovered {
            counts.recovered += 1;
            push_example(&mut examples.recovered, example(element, write.line, first_seen.map_or(0, |r| r.line)));
        } else {
            counts.ok += 1;
        }
        return;
    }
    let last_lacks = after.last().is_some_and(|r| !r.seen.contains(element));
    if last_lacks {
        counts.lost += 1;
        push_example(&mut examples.lost, example(element, write.line, missing[0].line));
    } else {
        counts.stale += 1;
        counts.stale_reads += missing.len() as u64;
        push_example(&mut examples.stale, example(element, write.line, missing[0].line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EventType, Process};

    fn event(process: u64, kind: EventType, f: &str, value: serde_json::Value, time_ns: u64) -> Event {
        Event { process: Process::Client(process), kind, f: f.to_string(), key: None, value, time_ns, node: None, error: None }
    }

    fn add(events: &mut Vec<Event>, process: u64, x: i64, end: EventType, at: u64) {
        events.push(event(process, EventType::Invoke, "add", x.into(), at));
        events.push(event(process, end, "add", x.into(), at + 1));
    }

    fn read(events: &mut Vec<Event>, process: u64, seen: &[i64], at: u64) {
        events.push(event(process, EventType::Invoke, "read", serde_json::Value::Null, at));
        events.push(event(process, EventType::Ok, "read", serde_json::json!(seen), at + 1));
    }

    fn check(events: &[Event]) -> DurabilityResult {
        check_durability(events, &DurabilityConfig::default()).unwrap()
    }

    #[test]
    fn every_acknowledged_element_seen_is_valid() {
        let mut events = Vec::new();
        add(&mut events, 0, 1, EventType::Ok, 10);
        add(&mut events, 1, 2, EventType::Ok, 20);
        read(&mut events, 2, &[1, 2], 30);
        let result = check(&events);
        assert_eq!(result.verdict, Verdict::Valid);
        assert_eq!(result.counts.ok, 2);
        assert_eq!(result.counts.acknowledged, 2);
    }

    #[test]
    fn an_acknowledged_element_missing_from_the_final_read_is_lost() {
        let mut events = Vec::new();
        add(&mut events, 0, 1, EventType::Ok, 10);
        add(&mut events, 1, 2, EventType::Ok, 20);
        read(&mut events, 2, &[1, 2], 30);
        read(&mut events, 2, &[1], 40);
        let result = check(&events);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(result.counts.lost, 1);
        assert_eq!(result.examples.lost[0].element, "2");
        assert_eq!(result.examples.lost[0].read_line, 7);
    }

    #[test]
    fn missing_then_back_is_stale() {
        let mut events = Vec::new();
        add(&mut events, 0, 1, EventType::Ok, 10);
        read(&mut events, 2, &[], 30);
        read(&mut events, 2, &[1], 40);
        let result = check(&events);
        assert_eq!(result.counts.stale, 1);
        assert_eq!(result.counts.stale_reads, 1);
        assert_eq!(result.verdict, Verdict::Invalid);
        let lenient = check_durability(&events, &DurabilityConfig { stale_is_invalid: false }).unwrap();
        assert_eq!(lenient.verdict, Verdict::Valid);
    }

    #[test]
    fn info_writes_seen_are_recovered_and_unseen_are_indeterminate() {
        let mut events = Vec::new();
        add(&mut events, 0, 1, EventType::Info, 10);
        add(&mut events, 1, 2, EventType::Info, 20);
        add(&mut events, 3, 3, EventType::Ok, 25);
        read(&mut events, 2, &[1, 3], 30);
        let result = check(&events);
        assert_eq!(result.verdict, Verdict::Valid);
        assert_eq!(result.counts.recovered, 1);
        assert_eq!(result.counts.indeterminate, 1);
        assert_eq!(result.examples.recovered[0].element, "1");
    }

    #[test]
    fn reading_what_nobody_wrote_or_a_failed_write_is_unexpected() {
        let mut events = Vec::new();
        add(&mut events, 0, 1, EventType::Fail, 10);
        read(&mut events, 2, &[1, 9], 30);
        let result = check(&events);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(result.counts.unexpected, 2);
    }

    #[test]
    fn acknowledged_writes_no_read_confirmed_make_their_key_unknown() {
        let mut events = Vec::new();
        add(&mut events, 0, 1, EventType::Ok, 10);
        read(&mut events, 2, &[1], 20);
        add(&mut events, 1, 2, EventType::Ok, 30);
        // The final read of the key failed: it did not happen.
        events.push(event(2, EventType::Invoke, "read", serde_json::Value::Null, 40));
        events.push(event(2, EventType::Fail, "read", serde_json::Value::Null, 41));
        let result = check(&events);
        assert_eq!(result.verdict, Verdict::Unknown, "not valid: element 2 was never confirmed");
        assert_eq!((result.counts.ok, result.counts.never_read), (1, 1));
        assert_eq!(result.unconfirmed, [Unconfirmed { key: String::new(), acknowledged: 2, never_read: 1 }]);
    }

    #[test]
    fn seen_indeterminate_writes_are_counted_apart_from_the_acknowledged() {
        let mut events = Vec::new();
        add(&mut events, 0, 1, EventType::Info, 10);
        add(&mut events, 1, 2, EventType::Ok, 20);
        read(&mut events, 2, &[1, 2], 30);
        read(&mut events, 2, &[], 40);
        let result = check(&events);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!((result.counts.lost, result.counts.acknowledged, result.counts.seen_indeterminate), (2, 1, 1));
    }

    #[test]
    fn no_write_and_no_read_is_unknown() {
        assert_eq!(check(&[]).verdict, Verdict::Unknown);
    }

    #[test]
    fn nothing_read_back_is_unknown() {
        let mut events = Vec::new();
        add(&mut events, 0, 1, EventType::Ok, 10);
        let result = check(&events);
        assert_eq!(result.verdict, Verdict::Unknown);
        assert_eq!(result.counts.never_read, 1);
    }

    #[test]
    fn kv_puts_seen_are_ok_and_unknown_values_unexpected() {
        let mut events = vec![
            event(0, EventType::Invoke, "put", "a".into(), 1),
            event(0, EventType::Ok, "put", "a".into(), 2),
            event(1, EventType::Invoke, "get", serde_json::Value::Null, 3),
            event(1, EventType::Ok, "get", "a".into(), 4),
        ];
        assert_eq!(check(&events).verdict, Verdict::Valid);
        events.push(event(1, EventType::Invoke, "get", serde_json::Value::Null, 5));
        events.push(event(1, EventType::Ok, "get", "zz".into(), 6));
        let result = check(&events);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(result.counts.unexpected, 1);
    }
}
