//! Readers: faultline JSONL, Jepsen log lines and Jepsen EDN maps, with the
//! format detected from the file's first lines.
mod edn;
mod jepsen_log;
mod jsonl;
mod raw;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::error::ReadError;
use crate::op::OpHistory;

pub use edn::{parse as parse_edn, Edn};
pub use jsonl::{history_from_events, CHUNK_BYTES};

/// Lines looked at to recognise a Jepsen log.
const DETECT_LINES_MAX: usize = 1000;

/// The history formats `faultline check` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Jsonl,
    JepsenLog,
    Edn,
}

/// Detects the format from the start of a file.
pub fn detect(head: &[u8]) -> Result<Format, ReadError> {
    let mut lines = head.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    let first = lines.next().ok_or(ReadError::Empty)?;
    let first = first.trim_ascii_start();
    if first.starts_with(b"{") {
        let after = first[1..].trim_ascii_start();
        if after.starts_with(b"\"") {
            return Ok(Format::Jsonl);
        }
        if after.starts_with(b":") {
            return Ok(Format::Edn);
        }
    }
    let marker = jepsen_log::MARKER.as_bytes();
    let has_marker = |line: &[u8]| line.windows(marker.len()).any(|w| w == marker);
    if std::iter::once(first).chain(lines).take(DETECT_LINES_MAX).any(has_marker) {
        return Ok(Format::JepsenLog);
    }
    Err(ReadError::UnknownFormat)
}

/// Reads the history in `path`, whatever its format.
pub fn read_path(path: &Path, threads: usize) -> Result<(Format, OpHistory), ReadError> {
    let mut file = File::open(path)?;
    let mut head = Vec::new();
    (&mut file).take(CHUNK_BYTES as u64).read_to_end(&mut head)?;
    let format = detect(&head)?;
    let history = match format {
        Format::Jsonl => jsonl::read_jsonl(head, &mut file, threads)?,
        Format::JepsenLog => jepsen_log::read_jepsen_log(&read_rest_utf8(head, &mut file)?)?,
        Format::Edn => edn::read_edn(&read_rest_utf8(head, &mut file)?)?,
    };
    Ok((format, history))
}

/// Reads a history held in memory.
pub fn read_bytes(bytes: &[u8], threads: usize) -> Result<(Format, OpHistory), ReadError> {
    let format = detect(bytes)?;
    let history = match format {
        Format::Jsonl => jsonl::read_jsonl(bytes.to_vec(), &mut std::io::empty(), threads)?,
        Format::JepsenLog => jepsen_log::read_jepsen_log(utf8(bytes)?)?,
        Format::Edn => edn::read_edn(utf8(bytes)?)?,
    };
    Ok((format, history))
}

fn utf8(bytes: &[u8]) -> Result<&str, ReadError> {
    std::str::from_utf8(bytes).map_err(|err| {
        let line = bytes[..err.valid_up_to()].iter().filter(|b| **b == b'\n').count() as u32 + 1;
        ReadError::BadLine { line, message: "not UTF-8 text".to_string() }
    })
}

fn read_rest_utf8(mut head: Vec<u8>, file: &mut File) -> Result<String, ReadError> {
    file.read_to_end(&mut head)?;
    utf8(&head)?;
    String::from_utf8(head).map_err(|_| ReadError::BadLine { line: 1, message: "not UTF-8 text".to_string() })
}
