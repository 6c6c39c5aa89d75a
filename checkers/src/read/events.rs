//! One pass over a faultline JSONL history, an event at a time, for callers
//! that feed each event to several consumers (the checks and a report's
//! timeline) instead of reading the file once per consumer.
//!
//! [`JsonlEvents`] yields `(line, Event)` from any [`BufRead`];
//! [`EventHistoryBuilder`] turns events pushed one at a time into the
//! [`OpHistory`] the checkers take. [`read_path`](super::read_path) stays the
//! faster way to check a file alone: it parses on several threads and never
//! builds an [`Event`].
use std::borrow::Cow;
use std::io::{BufRead, Read};

use super::jsonl::json_error_message;
use super::lines::{is_blank, line_too_long, LINE_BYTES_MAX};
use super::raw::json_to_val;
use crate::error::ReadError;
use crate::history::{Event, Header, Process};
use crate::op::{FailMeaning, HistoryBuilder, OpHistory, Record};
use crate::value::Func;

/// The events of a faultline JSONL history, read one line at a time:
/// `(line, event)` with `line` 1-based; blank lines are skipped but counted.
///
/// Errors are [`ReadError::Io`] or [`ReadError::BadLine`], worded as
/// [`read_path`](super::read_path) words them (`line 7: not a history
/// event: missing field time_ns (column 52)`): a line that is not an
/// [`Event`], a line longer than [`LINE_BYTES_MAX`] bytes, more than
/// `u32::MAX` lines. Lines must match [`Event`] exactly, so `node` and
/// `error` must be strings, which `read_path` (it ignores both) does not
/// check. The first error ends the iteration: the lines after a bad one are
/// not read.
///
/// Memory is one line: the buffer grows to the longest line read, and never
/// past [`LINE_BYTES_MAX`] + 1 bytes.
pub struct JsonlEvents<R> {
    reader: R,
    /// The current line's bytes, newline included; reused between lines.
    buffer: Vec<u8>,
    /// Lines consumed so far, blank ones included.
    line_count: u32,
    /// Set at the end of input and after an error.
    finished: bool,
    header: Option<Header>,
}

/// What one line held.
enum LineRead {
    End,
    Blank,
    Event(u32, Event),
}

impl<R: BufRead> JsonlEvents<R> {
    pub fn new(reader: R) -> Self {
        JsonlEvents { reader, buffer: Vec::new(), line_count: 0, finished: false, header: None }
    }

    /// The history's [`Header`], once its first line has been read (None
    /// for a history without one).
    pub fn header(&self) -> Option<Header> {
        self.header.clone()
    }

    fn read_line(&mut self) -> Result<LineRead, ReadError> {
        self.buffer.clear();
        // One byte past the bound tells a line of exactly LINE_BYTES_MAX
        // bytes and its newline from a longer one.
        let limit_bytes = LINE_BYTES_MAX as u64 + 1;
        // `Read::take` on `&mut R`, so the reader is borrowed, not moved.
        let read_bytes = Read::take(&mut self.reader, limit_bytes).read_until(b'\n', &mut self.buffer)?;
        if read_bytes == 0 {
            return Ok(LineRead::End);
        }
        let line = self.line_count.checked_add(1).ok_or_else(|| ReadError::BadLine {
            line: u32::MAX,
            message: "more than u32::MAX lines".to_string(),
        })?;
        self.line_count = line;
        let text = self.buffer.strip_suffix(b"\n").unwrap_or(&self.buffer);
        if text.len() > LINE_BYTES_MAX {
            return Err(line_too_long(line));
        }
        if is_blank(text) {
            return Ok(LineRead::Blank);
        }
        if line == 1 {
            if let Some(header) = Header::parse(text) {
                self.header = Some(header);
                return Ok(LineRead::Blank);
            }
        }
        let event: Event = serde_json::from_slice(text).map_err(|err| ReadError::BadLine {
            line,
            message: json_error_message(&err),
        })?;
        Ok(LineRead::Event(line, event))
    }
}

impl<R: BufRead> Iterator for JsonlEvents<R> {
    type Item = Result<(u32, Event), ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        // Bounded by the input: each round consumes one line.
        while !self.finished {
            match self.read_line() {
                Ok(LineRead::Event(line, event)) => return Some(Ok((line, event))),
                Ok(LineRead::Blank) => {}
                Ok(LineRead::End) => self.finished = true,
                Err(err) => {
                    self.finished = true;
                    return Some(Err(err));
                }
            }
        }
        None
    }
}

impl<R: BufRead> std::iter::FusedIterator for JsonlEvents<R> {}

/// Builds an [`OpHistory`] from events pushed one at a time, in history
/// order, pairing each completion with its process's pending invoke exactly
/// as [`read_path`](super::read_path) does (a faultline `fail` is dropped:
/// it did not happen). The line numbers pushed are the ones errors and
/// operations report.
///
/// After an error the history is incomplete; stop pushing and report it.
#[derive(Default)]
pub struct EventHistoryBuilder {
    builder: HistoryBuilder,
}

impl EventHistoryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one event read from `line`. Errors are
    /// [`ReadError::Pairing`]: a completion without a pending invoke, a
    /// second invoke while one is pending, a completion of another function
    /// or earlier than its invoke.
    pub fn push(&mut self, line: u32, event: &Event) -> Result<(), ReadError> {
        self.builder.push(Record {
            process: match event.process {
                Process::Client(id) => Some(id),
                Process::Nemesis => None,
            },
            kind: event.kind,
            f: Func::parse(&event.f),
            key: event.key.as_deref().map(Cow::Borrowed),
            value: json_to_val(&event.value),
            time_ns: event.time_ns,
            line,
            fail_means: FailMeaning::DidNotHappen,
        })
    }

    /// The history; invokes still pending become operations of unknown
    /// outcome.
    pub fn finish(self) -> OpHistory {
        self.builder.finish_history()
    }
}

/// Builds the op history of in-memory events (no file involved). `line` in
/// reports is the event's index + 1.
pub fn history_from_events(events: &[Event]) -> Result<OpHistory, ReadError> {
    let mut builder = EventHistoryBuilder::new();
    for (index, event) in events.iter().enumerate() {
        let line = u32::try_from(index + 1).map_err(|_| ReadError::BadLine {
            line: u32::MAX,
            message: "more than u32::MAX events".to_string(),
        })?;
        builder.push(line, event)?;
    }
    Ok(builder.finish())
}
