//! faultline's own JSON Lines histories (see [`crate::history`]).
//!
//! Parsing is the bulk of checking a large history, so lines are read in
//! fixed-size chunks, each chunk split between threads, and each thread
//! parses its lines and pairs their events itself ([`PiecePairing`]): a
//! record is paired while it is still in cache, and only the pieces'
//! edges are joined on one thread.
use std::io::Read;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::raw::{RawProcess, RawVal, Text};
use crate::error::ReadError;
use crate::history::{EventType, Header};
use crate::op::{FailMeaning, HistoryBuilder, OpHistory, PiecePairing, Record};
use crate::value::Func;

/// Bytes read per chunk: bounds the memory that parsing holds.
pub const CHUNK_BYTES: usize = 8 << 20;
/// Longest line accepted; a longer one is an error, not an unbounded buffer.
pub const LINE_BYTES_MAX: usize = 64 << 20;

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

pub(super) fn is_blank(text: &[u8]) -> bool {
    text.iter().all(|b| b.is_ascii_whitespace())
}

/// The error for a line longer than [`LINE_BYTES_MAX`].
pub(super) fn line_too_long(line: u32) -> ReadError {
    ReadError::BadLine { line, message: format!("line too long (over {LINE_BYTES_MAX} bytes)") }
}

/// What one thread made of its piece of a block.
struct Piece<'t> {
    pairing: PiecePairing<'t>,
    /// The piece's first bad line: it stops the piece.
    parse_error: Option<ReadError>,
}

/// Parses and pairs complete lines; `first_line` is the 1-based number of
/// the first. Pairing right after parsing keeps each record in cache and
/// spreads the pairing over the threads.
fn pair_lines(text: &[u8], first_line: u32) -> Piece<'_> {
    let mut pairing = PiecePairing::new();
    let mut at = 0;
    let mut line = first_line;
    // Bounded by the text: each round moves past one line end.
    while at < text.len() {
        let rest = &text[at..];
        let (record, len) = match super::fast::parse_line_fast_prefix(rest, line) {
            Some((record, len)) => (Some(record), len),
            None => {
                let len = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
                let text = &rest[..len];
                if is_blank(text) {
                    (None, len)
                } else {
                    match parse_line_slow(text, line) {
                        Ok(record) => (Some(record), len),
                        Err(err) => return Piece { pairing, parse_error: Some(err) },
                    }
                }
            }
        };
        if let Some(record) = record {
            pairing.push(record);
        }
        at += len + 1;
        line += 1;
    }
    Piece { pairing, parse_error: None }
}

/// Splits `text` (whole lines) into `parts` pieces at line ends: each with
/// the number of line ends before it, and the number in all of `text`.
fn split_at_lines(text: &[u8], parts: usize) -> (Vec<(&[u8], u32)>, u32) {
    let mut pieces = Vec::with_capacity(parts);
    let mut rest = text;
    let mut line_offset = 0u32;
    for part in (1..=parts).rev() {
        let target = rest.len() / part;
        let cut = match rest[target..].iter().position(|b| *b == b'\n') {
            Some(at) if part > 1 => target + at + 1,
            _ => rest.len(),
        };
        let (piece, tail) = rest.split_at(cut);
        pieces.push((piece, line_offset));
        line_offset += count_line_ends(piece);
        rest = tail;
    }
    (pieces, line_offset)
}

fn count_line_ends(text: &[u8]) -> u32 {
    // Byte sums over short runs vectorize; a filtered count did not.
    const RUN_BYTES: usize = 128;
    let mut runs = text.chunks_exact(RUN_BYTES);
    let mut count = 0u32;
    for run in &mut runs {
        let in_run: u8 = run.iter().map(|b| u8::from(*b == b'\n')).sum();
        count += u32::from(in_run);
    }
    count + runs.remainder().iter().filter(|b| **b == b'\n').count() as u32
}

/// Parses and pairs a block of whole lines on `threads` threads, then
/// adds it to `builder`; returns the number of line ends in the block.
/// Errors are as if the block were parsed, then pushed event by event:
/// the first bad line if there is one, else the first pairing error.
fn read_block(builder: &mut HistoryBuilder, text: &[u8], first_line: u32, threads: usize) -> Result<u32, ReadError> {
    // Below this, a thread costs more than it saves.
    const PARALLEL_BYTES_MIN: usize = 256 << 10;
    let parts = if text.len() < PARALLEL_BYTES_MIN { 1 } else { threads.max(1) };
    let (pieces, line_ends) = split_at_lines(text, parts);
    let pieces = std::thread::scope(|scope| {
        let handles: Vec<_> = pieces
            .iter()
            .skip(1)
            .map(|(piece, offset)| scope.spawn(move || pair_lines(piece, first_line + offset)))
            .collect();
        let mut out = vec![pair_lines(pieces[0].0, first_line)];
        for handle in handles {
            out.push(handle.join().expect("a parsing thread panicked"));
        }
        out
    });
    let mut pairings = Vec::with_capacity(pieces.len());
    for piece in pieces {
        if let Some(error) = piece.parse_error {
            return Err(error);
        }
        pairings.push(piece.pairing);
    }
    for pairing in pairings {
        builder.merge_piece(pairing)?;
    }
    Ok(line_ends)
}

/// Reads a JSONL history from `reader`, starting with bytes already read.
pub fn read_jsonl(mut prefix: Vec<u8>, reader: &mut impl Read, threads: usize) -> Result<OpHistory, ReadError> {
    let mut builder = HistoryBuilder::new();
    let mut next_line: u32 = 1;
    let mut buffer = std::mem::take(&mut prefix);
    blank_header(&mut buffer);
    loop {
        let filled = fill(&mut buffer, reader)?;
        let at_end = filled == 0;
        let complete = if at_end {
            buffer.len()
        } else {
            match buffer.iter().rposition(|b| *b == b'\n') {
                Some(at) => at + 1,
                None if buffer.len() > LINE_BYTES_MAX => return Err(line_too_long(next_line)),
                None => continue,
            }
        };
        next_line += read_block(&mut builder, &buffer[..complete], next_line, threads)?;
        buffer.drain(..complete);
        if at_end {
            return Ok(builder.finish_history());
        }
    }
}

/// A header on the first line becomes blanks, which every reader skips, so
/// line numbers stay those of the file.
fn blank_header(buffer: &mut [u8]) {
    let end = buffer.iter().position(|b| *b == b'\n').unwrap_or(buffer.len());
    if Header::parse(&buffer[..end]).is_some() {
        buffer[..end].fill(b' ');
    }
}

/// Appends up to [`CHUNK_BYTES`] to `buffer`; returns how many were read.
fn fill(buffer: &mut Vec<u8>, reader: &mut impl Read) -> Result<usize, ReadError> {
    Ok(reader.take(CHUNK_BYTES as u64).read_to_end(buffer)?)
}
