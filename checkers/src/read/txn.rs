//! Transaction histories: list-append transactions, as Elle checks them,
//! read from faultline JSONL, Jepsen EDN (every shape [`read_path`]
//! reads) or Jepsen log lines, into the [`Txn`]s of
//! [`crate::txn::check_list_append`].
//!
//! Jepsen writes a transaction as
//! `{:process 0, :type :invoke, :f :txn, :value [[:append 1 2] [:r 1 nil]]}`
//! and its completion with the reads filled in, `[:r 1 [1 2]]`. Each EDN
//! operation becomes the [`Event`] faultline would have written (keywords
//! become strings, vectors, lists and sets become arrays) and goes through
//! [`TxnHistoryBuilder`], so every format obeys the same rules. Jepsen's
//! `:fail` of a transaction means it aborted, which is faultline's `fail`.
//!
//! [`read_path`]: super::read_path
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;

use serde_json::{Map, Number, Value};

use super::edn::{describe, parse, Edn};
use super::edn_ops::{describe_option, kind_of_map, map_get, read_ops, EdnForms};
use super::jepsen_log::{fields, find_marker, MARKER};
use super::{detect, read_rest_utf8, utf8, Format, JsonlEvents, CHUNK_BYTES};
use crate::error::ReadError;
use crate::history::{Event, Process};
use crate::txn::{Txn, TxnHistoryBuilder, TxnKind};

/// Events [`is_txn_history`] looks at for a client operation.
const OPS_LOOKED_AT_MAX: usize = 1000;

/// Reads the transactions of `kind` in `path`, whatever its format.
pub fn read_txn_path(path: &Path, kind: TxnKind) -> Result<(Format, Vec<Txn>), ReadError> {
    let mut file = File::open(path)?;
    let mut head = Vec::new();
    (&mut file).take(CHUNK_BYTES as u64).read_to_end(&mut head)?;
    let format = detect(&head)?;
    let txns = match format {
        // Streamed: a JSONL history is never held whole.
        Format::Jsonl => read_jsonl(BufReader::new(Cursor::new(head).chain(file)), kind, Events::All)?,
        Format::Edn => read_edn(&read_rest_utf8(head, &mut file)?, kind)?,
        Format::JepsenLog => read_log(&read_rest_utf8(head, &mut file)?, kind)?,
    };
    Ok((format, txns))
}

/// Reads the transactions of `kind` in a history held in memory.
pub fn read_txn_bytes(bytes: &[u8], kind: TxnKind) -> Result<(Format, Vec<Txn>), ReadError> {
    let format = detect(bytes)?;
    let txns = match format {
        Format::Jsonl => read_jsonl(bytes, kind, Events::All)?,
        Format::Edn => read_edn(utf8(bytes)?, kind)?,
        Format::JepsenLog => read_log(utf8(bytes)?, kind)?,
    };
    Ok((format, txns))
}

/// True when the first client operation of the file is a transaction (`f`
/// "txn" in JSONL, `:f :txn` in EDN and log lines), so `faultline check`
/// can choose the checker. `head` is the file's start (e.g. its first
/// [`CHUNK_BYTES`]); a last line or form cut short is not looked at.
pub fn is_txn_history(head: &[u8]) -> bool {
    let first_f = match detect(head) {
        Ok(Format::Jsonl) => JsonlEvents::new(head)
            .take(OPS_LOOKED_AT_MAX)
            .map_while(Result::ok)
            .find(|(_, event)| event.process != Process::Nemesis)
            .map(|(_, event)| event.f),
        Ok(Format::Edn) => EdnForms::new(utf8_prefix(head))
            .take(OPS_LOOKED_AT_MAX)
            .map_while(Result::ok)
            .find_map(|op| client_f(&op.map)),
        Ok(Format::JepsenLog) => utf8_prefix(head)
            .lines()
            .filter_map(|text_line| find_marker(text_line).map(|at| &text_line[at + MARKER.len()..]))
            .take(OPS_LOOKED_AT_MAX)
            .map_while(|rest| fields(rest).ok())
            .find_map(|(process, _, f, _)| process.map(|_| f.to_string())),
        Err(_) => None,
    };
    first_f.as_deref() == Some(crate::TXN_F)
}

/// Which kind of transactions a history that [`is_txn_history`] holds:
/// rw-register when its start writes registers (`["w", …]`, `[:w …]`)
/// and appends to no list, else list-append. A start that only reads
/// cannot tell; `faultline check --model` then decides.
pub fn txn_kind(head: &[u8]) -> TxnKind {
    let text = utf8_prefix(head);
    let has = |markers: &[&str]| markers.iter().any(|marker| text.contains(marker));
    if has(&["[\"w\",", "[:w "]) && !has(&["[\"append\",", "[:append "]) {
        TxnKind::RwRegister
    } else {
        TxnKind::ListAppend
    }
}

/// The longest UTF-8 start of `head`: a chunk may end inside a character.
fn utf8_prefix(head: &[u8]) -> &str {
    match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(err) => std::str::from_utf8(&head[..err.valid_up_to()]).unwrap_or_default(),
    }
}

/// `:f` of a client operation's map; None for the nemesis.
fn client_f(map: &[(Edn, Edn)]) -> Option<String> {
    match (map_get(map, "process"), map_get(map, "f")) {
        (Some(Edn::Int(_)), Some(Edn::Keyword(f) | Edn::Str(f))) => Some(f.clone()),
        _ => None,
    }
}

/// Reads the transactions of `kind` in a faultline JSONL history that mixes
/// them with single-key operations (a run with `workload.transactions`):
/// only `f: "txn"` events are read, the rest being another checker's.
pub fn read_txns_beside_ops(path: &Path, kind: TxnKind) -> Result<Vec<Txn>, ReadError> {
    read_jsonl(BufReader::new(File::open(path)?), kind, Events::TxnsOnly)
}

/// Which events of a JSONL history go to the transaction builder.
#[derive(Clone, Copy, PartialEq)]
enum Events {
    /// Every one: a client event that is not a transaction is reported.
    All,
    /// Only `f: "txn"`: the rest are a single-key checker's.
    TxnsOnly,
}

fn read_jsonl(reader: impl BufRead, kind: TxnKind, events: Events) -> Result<Vec<Txn>, ReadError> {
    let mut builder = TxnHistoryBuilder::new(kind);
    for item in JsonlEvents::new(reader) {
        let (line, event) = item?;
        if events == Events::All || event.f == crate::TXN_F {
            builder.push(line, &event)?;
        }
    }
    Ok(builder.finish())
}

fn read_edn(text: &str, kind: TxnKind) -> Result<Vec<Txn>, ReadError> {
    let builder = read_ops(text, || TxnHistoryBuilder::new(kind), |builder, op| {
        let event = event_of_map(&op.map).map_err(|message| ReadError::BadLine { line: op.line, message })?;
        builder.push(op.line, &event)
    })?;
    Ok(builder.finish())
}

/// Jepsen log lines have no time: it is the line order, as
/// [`read_path`](super::read_path) reads them.
fn read_log(text: &str, kind: TxnKind) -> Result<Vec<Txn>, ReadError> {
    let mut builder = TxnHistoryBuilder::new(kind);
    for (i, text_line) in text.lines().enumerate() {
        let line = i as u32 + 1;
        let Some(at) = find_marker(text_line) else { continue };
        let event = log_event(&text_line[at + MARKER.len()..], line).map_err(|message| ReadError::BadLine { line, message })?;
        builder.push(line, &event)?;
    }
    Ok(builder.finish())
}

fn log_event(rest: &str, line: u32) -> Result<Event, String> {
    let (process, kind, f, value_text) = fields(rest)?;
    let (process, value) = match process {
        // Nemesis values are free text, and the builder skips them.
        None => (Process::Nemesis, Value::Null),
        Some(_) if value_text.is_empty() => return Err("a client operation without a value".to_string()),
        Some(id) => (Process::Client(id), json_of_edn(&parse(value_text)?)),
    };
    let f = f.to_string();
    Ok(Event { process, kind, f, key: None, value, time_ns: u64::from(line), node: None, error: None })
}

/// The [`Event`] of one EDN operation map; `:time` (ns) is its time, 0
/// when absent.
fn event_of_map(map: &[(Edn, Edn)]) -> Result<Event, String> {
    let process = match map_get(map, "process") {
        Some(Edn::Int(id)) => u64::try_from(*id).map(Process::Client).map_err(|_| format!("negative :process {id}"))?,
        Some(Edn::Keyword(_)) => Process::Nemesis,
        other => return Err(format!(":process must be a number or a keyword, got {}", describe_option(other))),
    };
    let kind = kind_of_map(map)?;
    let f = match map_get(map, "f") {
        Some(Edn::Keyword(f) | Edn::Str(f)) => f.clone(),
        other => return Err(format!(":f must be a keyword, got {}", describe_option(other))),
    };
    let time_ns = match map_get(map, "time") {
        None | Some(Edn::Nil) => 0,
        Some(Edn::Int(time)) => u64::try_from(*time).map_err(|_| format!("negative :time {time}"))?,
        Some(other) => return Err(format!(":time must be an integer, got {}", describe(other))),
    };
    let value = match (process, map_get(map, "value")) {
        // Nemesis values can be anything, and the builder skips them.
        (Process::Nemesis, _) | (_, None) => Value::Null,
        (Process::Client(_), Some(value)) => json_of_edn(value),
    };
    let text = |name: &str| map_get(map, name).and_then(text_of);
    Ok(Event { process, kind, f, key: None, value, time_ns, node: text("node"), error: text("error") })
}

fn text_of(edn: &Edn) -> Option<String> {
    match edn {
        Edn::Nil => None,
        Edn::Str(text) | Edn::Keyword(text) | Edn::Symbol(text) => Some(text.clone()),
        other => Some(describe(other)),
    }
}

/// The JSON faultline would have written: keywords and symbols are strings,
/// vectors, lists and sets arrays. Recursion is bounded by the parser's
/// nesting bound.
fn json_of_edn(edn: &Edn) -> Value {
    match edn {
        Edn::Nil => Value::Null,
        Edn::Bool(b) => Value::Bool(*b),
        Edn::Int(i) => Value::from(*i),
        // NaN and infinities have no JSON number: null, which no
        // micro-operation accepts.
        Edn::Float(x) => Number::from_f64(*x).map_or(Value::Null, Value::Number),
        Edn::Str(text) | Edn::Keyword(text) | Edn::Symbol(text) => Value::String(text.clone()),
        Edn::Vector(items) | Edn::Set(items) => Value::Array(items.iter().map(json_of_edn).collect()),
        Edn::Map(pairs) => {
            let key = |edn: &Edn| text_of(edn).unwrap_or_else(|| "nil".to_string());
            Value::Object(pairs.iter().map(|(k, v)| (key(k), json_of_edn(v))).collect::<Map<String, Value>>())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edn_values_become_the_json_faultline_writes() {
        let edn = parse("[[:append 1 2] [:r 1 (1 2)] [:r 2 nil] #{3} 1.5 {:a sym}]").unwrap();
        let want = serde_json::json!([["append", 1, 2], ["r", 1, [1, 2]], ["r", 2, null], [3], 1.5, {"a": "sym"}]);
        assert_eq!(json_of_edn(&edn), want);
    }

    #[test]
    fn a_head_cut_inside_a_character_is_read_up_to_it() {
        assert_eq!(utf8_prefix("ab\u{e9}".as_bytes().split_last().unwrap().1), "ab");
    }
}
