//! The chunked reader behind every one-event-a-line format (faultline's
//! JSONL, Jepsen's EDN maps one a line).
//!
//! Parsing is the bulk of checking a large history, so lines are read in
//! fixed-size chunks, each chunk split between threads, and each thread
//! parses its lines and pairs their events itself ([`PiecePairing`]): a
//! record is paired while it is still in cache, and only the pieces'
//! edges are joined on one thread.
use std::io::Read;

use crate::error::ReadError;
use crate::op::{HistoryBuilder, OpHistory, PiecePairing, Record};

/// Bytes read per chunk: bounds the memory that parsing holds.
pub const CHUNK_BYTES: usize = 8 << 20;
/// Longest line accepted; a longer one is an error, not an unbounded buffer.
pub const LINE_BYTES_MAX: usize = 64 << 20;

/// Why a line gave no record.
pub enum LineError {
    Bad(ReadError),
    /// The line is not one whole event: the file is not one event a line
    /// (an EDN map spread over lines), and must be read another way.
    NotOneALine,
}

/// One format's lines.
pub trait LineFormat: Sync {
    /// The record of the line `rest` starts with (None for a blank or
    /// comment line) and the line's length without its `\n`.
    fn parse_line<'t>(&self, rest: &'t [u8], line: u32) -> Result<(Option<Record<'t>>, usize), LineError>;
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
    parse_error: Option<LineError>,
}

/// Parses and pairs complete lines; `first_line` is the 1-based number of
/// the first. Pairing right after parsing keeps each record in cache and
/// spreads the pairing over the threads.
fn pair_lines<'t>(format: &impl LineFormat, text: &'t [u8], first_line: u32) -> Piece<'t> {
    let mut pairing = PiecePairing::new();
    let mut at = 0;
    let mut line = first_line;
    // Bounded by the text: each round moves past one line end.
    while at < text.len() {
        match format.parse_line(&text[at..], line) {
            Ok((record, len)) => {
                if let Some(record) = record {
                    pairing.push(record);
                }
                at += len + 1;
            }
            Err(error) => return Piece { pairing, parse_error: Some(error) },
        }
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
fn read_block(format: &impl LineFormat, builder: &mut HistoryBuilder, text: &[u8], first_line: u32, threads: usize) -> Result<u32, LineError> {
    // Below this, a thread costs more than it saves.
    const PARALLEL_BYTES_MIN: usize = 256 << 10;
    let parts = if text.len() < PARALLEL_BYTES_MIN { 1 } else { threads.max(1) };
    let (pieces, line_ends) = split_at_lines(text, parts);
    let pieces = std::thread::scope(|scope| {
        let handles: Vec<_> = pieces
            .iter()
            .skip(1)
            .map(|(piece, offset)| scope.spawn(move || pair_lines(format, piece, first_line + offset)))
            .collect();
        let mut out = vec![pair_lines(format, pieces[0].0, first_line)];
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
        builder.merge_piece(pairing).map_err(LineError::Bad)?;
    }
    Ok(line_ends)
}

/// Reads a history of one event a line from `reader`, starting with bytes
/// already read.
pub fn read_lines(format: &impl LineFormat, mut buffer: Vec<u8>, reader: &mut impl Read, threads: usize) -> Result<OpHistory, LineError> {
    let mut builder = HistoryBuilder::new();
    let mut next_line: u32 = 1;
    loop {
        let filled = fill(&mut buffer, reader).map_err(LineError::Bad)?;
        let at_end = filled == 0;
        let complete = if at_end {
            buffer.len()
        } else {
            match buffer.iter().rposition(|b| *b == b'\n') {
                Some(at) => at + 1,
                None if buffer.len() > LINE_BYTES_MAX => return Err(LineError::Bad(line_too_long(next_line))),
                None => continue,
            }
        };
        next_line += read_block(format, &mut builder, &buffer[..complete], next_line, threads)?;
        buffer.drain(..complete);
        if at_end {
            return Ok(builder.finish_history());
        }
    }
}

/// Appends up to [`CHUNK_BYTES`] to `buffer`; returns how many were read.
fn fill(buffer: &mut Vec<u8>, reader: &mut impl Read) -> Result<usize, ReadError> {
    Ok(reader.take(CHUNK_BYTES as u64).read_to_end(buffer)?)
}
