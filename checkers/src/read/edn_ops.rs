//! Jepsen's EDN histories: operation maps,
//! `{:process 0, :type :invoke, :f :append, :key "4", :value "x 0 1 y"}`,
//! in either of the shapes Jepsen and Knossos write:
//! - one map per line (Jepsen's `history.edn`): read line by line, the
//!   fast path;
//! - anything else: a vector `[...]` or list `(...)` of maps, or maps one
//!   after another, spread over lines or several to a line, with comments
//!   and discards between them. Read form by form; each operation is named
//!   by the line its map opens on.
//!
//! A file that starts like the first shape but is not (a map spans lines)
//! is read again as the second, so the first shape costs nothing extra.
use std::borrow::Cow;

use super::edn::{describe, parse, to_val, Edn, Parser};
use crate::error::ReadError;
use crate::history::EventType;
use crate::op::{FailMeaning, HistoryBuilder, OpHistory, Record};
use crate::value::{Func, Val};

/// One operation map and where it is in the file.
pub(super) struct EdnOp {
    /// 1-based line the map opens on.
    pub line: u32,
    /// Its place in the history, strictly increasing: the line in a file
    /// of one map per line, the map's 1-based ordinal otherwise.
    pub position: u64,
    pub map: Vec<(Edn, Edn)>,
}

pub fn event_type(name: &str) -> Option<EventType> {
    match name {
        "invoke" => Some(EventType::Invoke),
        "ok" => Some(EventType::Ok),
        "fail" => Some(EventType::Fail),
        "info" => Some(EventType::Info),
        _ => None,
    }
}

/// Jepsen's etcd meaning of `:fail`, as the Porcupine corpus assumes: a
/// failed cas happened (its compare failed), a failed read is unknown, any
/// other failure did not happen.
pub fn jepsen_fail_meaning(f: Func) -> FailMeaning {
    match f {
        Func::Cas => FailMeaning::Happened,
        Func::Read | Func::Get => FailMeaning::Unknown,
        _ => FailMeaning::DidNotHappen,
    }
}

pub(super) fn map_get<'m>(map: &'m [(Edn, Edn)], name: &str) -> Option<&'m Edn> {
    map.iter().find(|(k, _)| matches!(k, Edn::Keyword(k) if k == name)).map(|(_, v)| v)
}

/// `:type`, which every operation has.
pub(super) fn kind_of_map(map: &[(Edn, Edn)]) -> Result<EventType, String> {
    match map_get(map, "type") {
        Some(Edn::Keyword(k)) => event_type(k).ok_or_else(|| format!("unknown :type :{k}")),
        other => Err(format!(":type must be a keyword, got {}", describe_option(other))),
    }
}

pub(super) fn describe_option(edn: Option<&Edn>) -> String {
    edn.map_or_else(|| "nothing".to_string(), describe)
}

pub(super) fn record_of_map(map: &[(Edn, Edn)], line: u32, time_ns: u64) -> Result<Record<'static>, String> {
    let process = match map_get(map, "process") {
        Some(Edn::Int(p)) if *p >= 0 => Some(*p as u64),
        Some(Edn::Keyword(k)) if k == "nemesis" => None,
        other => return Err(format!(":process must be a number or :nemesis, got {}", describe_option(other))),
    };
    let kind = kind_of_map(map)?;
    let f = match map_get(map, "f") {
        Some(Edn::Keyword(k)) | Some(Edn::Str(k)) => Func::parse(k),
        other => return Err(format!(":f must be a keyword, got {}", describe_option(other))),
    };
    let key = match map_get(map, "key") {
        None | Some(Edn::Nil) => None,
        Some(Edn::Str(s)) => Some(Cow::Owned(s.clone())),
        Some(Edn::Int(i)) => Some(Cow::Owned(i.to_string())),
        Some(Edn::Keyword(k)) => Some(Cow::Owned(k.clone())),
        Some(other) => return Err(format!(":key must be a string or number, got {}", describe(other))),
    };
    Ok(Record {
        process,
        kind,
        f,
        key,
        value: map_get(map, "value").map_or(Val::Nil, to_val),
        time_ns,
        line,
        fail_means: jepsen_fail_meaning(f),
    })
}

/// Reads an EDN history. Time is the order of the operations (see
/// [`EdnOp::position`]); `:time` is not used.
pub fn read_edn(text: &str) -> Result<OpHistory, ReadError> {
    let builder = read_ops(text, HistoryBuilder::new, |builder, op| {
        let record = record_of_map(&op.map, op.line, op.position).map_err(|message| ReadError::BadLine { line: op.line, message })?;
        builder.push(record)
    })?;
    Ok(builder.finish_history())
}

/// Pushes every operation map of `text` into a sink made by `new_sink`, in
/// history order; see the module docs for the shapes read.
pub(super) fn read_ops<S>(
    text: &str,
    new_sink: impl Fn() -> S,
    mut push: impl FnMut(&mut S, EdnOp) -> Result<(), ReadError>,
) -> Result<S, ReadError> {
    if first_significant(text.as_bytes()) == Some(b'{') {
        let mut sink = new_sink();
        if read_lines(text, &mut sink, &mut push)? {
            return Ok(sink);
        }
    }
    // A fresh sink: what the line path pushed is read again.
    let mut sink = new_sink();
    for op in EdnForms::new(text) {
        push(&mut sink, op?)?;
    }
    Ok(sink)
}

/// The fast path: Ok(false) as soon as a line is not one whole map.
fn read_lines<S>(
    text: &str,
    sink: &mut S,
    push: &mut impl FnMut(&mut S, EdnOp) -> Result<(), ReadError>,
) -> Result<bool, ReadError> {
    for (i, text_line) in text.lines().enumerate() {
        let line = i as u32 + 1;
        let start = text_line.trim_start();
        if start.is_empty() || start.starts_with(';') {
            continue;
        }
        let Ok(Edn::Map(map)) = parse(text_line) else {
            return Ok(false);
        };
        push(sink, EdnOp { line, position: u64::from(line), map })?;
    }
    Ok(true)
}

/// The first byte that is not whitespace, a comma or a comment.
fn first_significant(text: &[u8]) -> Option<u8> {
    let mut parser = Parser::new(text);
    parser.skip_ignored(0).ok()?;
    text.get(parser.at).copied()
}

/// Whether `head` starts like an EDN history other than one map per line:
/// `[` or `(` then `{` or `#`; `{` then `:` across lines or after comments;
/// a tagged map `#jepsen.history.Op{`.
pub(super) fn looks_like_edn(head: &[u8]) -> bool {
    let mut parser = Parser::new(head);
    let next_after = |parser: &mut Parser, skip_bytes: usize| {
        parser.at += skip_bytes;
        parser.skip_ignored(0).ok().and_then(|()| head.get(parser.at).copied())
    };
    match next_after(&mut parser, 0) {
        Some(b'{') => next_after(&mut parser, 1) == Some(b':'),
        Some(b'[') | Some(b'(') => matches!(next_after(&mut parser, 1), Some(b'{') | Some(b'#')),
        Some(b'#') if head.get(parser.at + 1).is_some_and(u8::is_ascii_alphabetic) => {
            parser.at += 1;
            parser.word();
            next_after(&mut parser, 0) == Some(b'{')
        }
        _ => false,
    }
}

/// Counts lines up to a byte, resuming where the last count stopped.
struct LineCounter {
    at: usize,
    line: u32,
}

impl LineCounter {
    fn line_at(&mut self, text: &[u8], to: usize) -> u32 {
        if to < self.at {
            // Only errors about an earlier byte (an unclosed vector) go back.
            *self = LineCounter { at: 0, line: 1 };
        }
        let newlines = text[self.at..to].iter().filter(|b| **b == b'\n').count();
        self.line = self.line.saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX));
        self.at = to;
        self.line
    }
}

/// The operation maps of a file, form by form: `(line, map)` in order.
pub(super) struct EdnForms<'a> {
    parser: Parser<'a>,
    lines: LineCounter,
    /// The closing byte of the vector or list around the maps, and where
    /// it opened; None for maps at the top level.
    wrapper: Option<(u8, usize)>,
    started: bool,
    finished: bool,
    ordinal: u64,
}

impl<'a> EdnForms<'a> {
    pub fn new(text: &'a str) -> Self {
        let lines = LineCounter { at: 0, line: 1 };
        EdnForms { parser: Parser::new(text.as_bytes()), lines, wrapper: None, started: false, finished: false, ordinal: 0 }
    }

    fn bad_at(&mut self, at: usize, message: String) -> ReadError {
        ReadError::BadLine { line: self.lines.line_at(self.parser.text, at), message }
    }

    fn skip_ignored(&mut self, depth: u32) -> Result<(), ReadError> {
        self.parser.skip_ignored(depth).map_err(|err| self.bad_at(err.at, err.message))
    }

    /// Steps into a vector or list that holds the whole history.
    fn start(&mut self) -> Result<(), ReadError> {
        self.started = true;
        self.skip_ignored(0)?;
        let close = match self.parser.text.get(self.parser.at) {
            Some(b'[') => b']',
            Some(b'(') => b')',
            _ => return Ok(()),
        };
        self.wrapper = Some((close, self.parser.at));
        self.parser.at += 1;
        Ok(())
    }

    fn next_op(&mut self) -> Result<Option<EdnOp>, ReadError> {
        if !self.started {
            self.start()?;
        }
        self.skip_ignored(1)?;
        let (text, at) = (self.parser.text, self.parser.at);
        match (text.get(at), self.wrapper) {
            (None, None) => Ok(None),
            (None, Some((close, open_at))) => {
                let message = format!("the history's {:?} is never closed by {:?}", text[open_at] as char, close as char);
                Err(self.bad_at(open_at, message))
            }
            (Some(b), Some((close, _))) if *b == close => self.end(),
            (Some(_), _) => self.op(at),
        }
    }

    /// After the wrapper's closing byte only comments may follow.
    fn end(&mut self) -> Result<Option<EdnOp>, ReadError> {
        self.parser.at += 1;
        self.skip_ignored(0)?;
        match self.parser.at < self.parser.text.len() {
            true => Err(self.bad_at(self.parser.at, "text after the end of the history".to_string())),
            false => Ok(None),
        }
    }

    fn op(&mut self, at: usize) -> Result<Option<EdnOp>, ReadError> {
        let line = self.lines.line_at(self.parser.text, at);
        let value = self.parser.value(1).map_err(|err| self.bad_at(err.at, err.message))?;
        let Edn::Map(map) = value else {
            return Err(ReadError::BadLine { line, message: format!("expected an operation map, got {}", describe(&value)) });
        };
        self.ordinal += 1;
        Ok(Some(EdnOp { line, position: self.ordinal, map }))
    }
}

impl Iterator for EdnForms<'_> {
    type Item = Result<EdnOp, ReadError>;

    /// Bounded by the input: each call consumes a form or ends.
    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let item = self.next_op().transpose();
        self.finished = !matches!(item, Some(Ok(_)));
        item
    }
}
