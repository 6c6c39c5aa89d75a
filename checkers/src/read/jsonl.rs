//! faultline's own JSON Lines histories (see [`crate::history`]), read by
//! the chunked line reader ([`super::lines`]): the fast scanner first, then
//! serde_json for the lines it leaves.
use std::io::Read;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::lines::{is_blank, read_lines, LineError, LineFormat};
use super::raw::{RawProcess, RawVal, Text};
use crate::error::ReadError;
use crate::history::{EventType, Header};
use crate::op::{FailMeaning, OpHistory, Record};
use crate::value::Func;


/// One line, borrowing its strings. Same fields as [`crate::history::Event`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent<'a> {
    process: RawProcess,
    #[serde(rename = "type")]
    kind: EventType,
    #[serde(borrow)]
    f: Text<'a>,
    #[serde(borrow, default)]
    key: Option<Text<'a>>,
    #[serde(default)]
    value: RawVal,
    time_ns: u64,
    #[serde(default)]
    node: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

/// Parses a line that the fast scanner left: serde_json accepts the same
/// lines as it and more, and words the errors.
fn parse_line_slow(text: &[u8], line: u32) -> Result<Record<'_>, ReadError> {
    let raw: RawEvent = serde_json::from_slice(text).map_err(|err| ReadError::BadLine {
        line,
        message: json_error_message(&err),
    })?;
    let _ = (raw.node, raw.error);
    Ok(Record {
        process: raw.process.0,
        kind: raw.kind,
        f: Func::parse(&raw.f.0),
        key: raw.key.map(|k| k.0),
        value: raw.value.0,
        time_ns: raw.time_ns,
        line,
        fail_means: FailMeaning::DidNotHappen,
    })
}

/// serde_json's message with its "at line 1 column N" (always line 1: one
/// line is parsed at a time) turned into "(column N)".
pub(super) fn json_error_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let message = text.rfind(" at line ").map_or(text.as_str(), |at| &text[..at]);
    format!("{message} (column {})", err.column())
}

/// faultline's JSON lines.
struct Jsonl;

impl LineFormat for Jsonl {
    fn parse_line<'t>(&self, rest: &'t [u8], line: u32) -> Result<(Option<Record<'t>>, usize), LineError> {
        if let Some((record, len)) = super::fast::parse_line_fast_prefix(rest, line) {
            return Ok((Some(record), len));
        }
        let len = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let text = &rest[..len];
        if is_blank(text) {
            return Ok((None, len));
        }
        parse_line_slow(text, line).map(|record| (Some(record), len)).map_err(LineError::Bad)
    }
}

/// Reads a JSONL history from `reader`, starting with bytes already read.
pub fn read_jsonl(mut prefix: Vec<u8>, reader: &mut impl Read, threads: usize) -> Result<OpHistory, ReadError> {
    blank_header(&mut prefix);
    read_lines(&Jsonl, prefix, reader, threads).map_err(|error| match error {
        LineError::Bad(error) => error,
        // Every JSONL line is one event or an error.
        LineError::NotOneALine => ReadError::UnknownFormat,
    })
}

/// A header on the first line becomes blanks, which every reader skips, so
/// line numbers stay those of the file.
fn blank_header(buffer: &mut [u8]) {
    let end = buffer.iter().position(|b| *b == b'\n').unwrap_or(buffer.len());
    if Header::parse(&buffer[..end]).is_some() {
        buffer[..end].fill(b' ');
    }
}

