//! The records of the directory-operation journal and their text form.
//!
//! One record per line: `new SEQ PATH`, `remove SEQ PATH`, `rename SEQ
//! FROM TO`, `replace SEQ FROM TO` (a rename over an entry that existed)
//! and `done SEQ` (that operation is durable, or never happened: it is
//! not to be undone). Paths are relative to the backing root; every byte
//! outside printable ASCII, a space and `%` are written `%XX`, so a line
//! holds any file name. A last line without its newline is a record torn
//! by a crash of the machine itself (a killed daemon loses no write), and
//! is dropped: its operation was never applied, as the journal is written
//! first.
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What one directory operation changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new entry (create, mkdir, mknod, symlink).
    New { path: PathBuf },
    /// An entry removed (unlink, rmdir); it waits in the trash as `SEQ`.
    Remove { path: PathBuf },
    /// `from` renamed to `to`; `replaced`: `to` named an entry before,
    /// which waits in the trash as `SEQ`.
    Rename { from: PathBuf, to: PathBuf, replaced: bool },
}

/// One journaled operation; `seq` numbers them within one journal and
/// names their entry in the trash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub seq: u64,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Op(Op),
    Done(u64),
}

/// The record's line, newline included.
pub fn encode(record: &Record) -> Vec<u8> {
    let mut line = Vec::new();
    let mut word = |word: &[u8]| {
        if !line.is_empty() {
            line.push(b' ');
        }
        line.extend_from_slice(word);
    };
    match record {
        Record::Done(seq) => {
            word(b"done");
            word(seq.to_string().as_bytes());
        }
        Record::Op(Op { seq, change }) => {
            let (kind, paths): (&[u8], [Option<&Path>; 2]) = match change {
                Change::New { path } => (b"new", [Some(path), None]),
                Change::Remove { path } => (b"remove", [Some(path), None]),
                Change::Rename { from, to, replaced: false } => (b"rename", [Some(from), Some(to)]),
                Change::Rename { from, to, replaced: true } => (b"replace", [Some(from), Some(to)]),
            };
            word(kind);
            word(seq.to_string().as_bytes());
            for path in paths.into_iter().flatten() {
                word(&escape(path.as_os_str().as_bytes()));
            }
        }
    }
    line.push(b'\n');
    line
}

/// Every complete record of a journal, in order; Err names the first bad
/// line (counted from 1) and why.
pub fn parse(bytes: &[u8]) -> Result<Vec<Record>, (u64, String)> {
    // Everything before the last newline; a line after it is torn.
    let Some(last) = bytes.iter().rposition(|b| *b == b'\n') else { return Ok(Vec::new()) };
    let mut records = Vec::new();
    for (index, line) in bytes[..last].split(|b| *b == b'\n').enumerate() {
        records.push(decode(line).map_err(|reason| (index as u64 + 1, reason))?);
    }
    Ok(records)
}

fn decode(line: &[u8]) -> Result<Record, String> {
    let words: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    let seq = |word: Option<&&[u8]>| -> Result<u64, String> {
        let word = word.ok_or("no sequence number")?;
        std::str::from_utf8(word).ok().and_then(|s| s.parse().ok()).ok_or_else(|| "a bad sequence number".to_string())
    };
    let path = |index: usize| -> Result<PathBuf, String> {
        let word = words.get(index).ok_or("a path missing")?;
        let bytes = unescape(word)?;
        if bytes.is_empty() {
            return Err("an empty path".into());
        }
        Ok(PathBuf::from(OsStr::from_bytes(&bytes)))
    };
    let (record, arity) = match words[0] {
        b"done" => (Record::Done(seq(words.get(1))?), 2),
        b"new" => (Record::Op(Op { seq: seq(words.get(1))?, change: Change::New { path: path(2)? } }), 3),
        b"remove" => (Record::Op(Op { seq: seq(words.get(1))?, change: Change::Remove { path: path(2)? } }), 3),
        kind @ (b"rename" | b"replace") => {
            let change = Change::Rename { from: path(2)?, to: path(3)?, replaced: kind == b"replace" };
            (Record::Op(Op { seq: seq(words.get(1))?, change }), 4)
        }
        _ => return Err(format!("an unknown record {:?}", String::from_utf8_lossy(words[0]))),
    };
    if words.len() != arity {
        return Err(format!("{} words, not {arity}", words.len()));
    }
    Ok(record)
}

fn escape(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for byte in bytes {
        if byte.is_ascii_graphic() && *byte != b'%' {
            out.push(*byte);
        } else {
            out.extend_from_slice(format!("%{byte:02X}").as_bytes());
        }
    }
    out
}

fn unescape(word: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(word.len());
    let mut index = 0;
    while index < word.len() {
        if word[index] != b'%' {
            out.push(word[index]);
            index += 1;
            continue;
        }
        let hex = word.get(index + 1..index + 3).and_then(|h| std::str::from_utf8(h).ok());
        let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or("a bad %XX escape")?;
        out.push(byte);
        index += 3;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_any_file_name() {
        let odd = PathBuf::from(OsStr::from_bytes(b"dir with space/new\nline %41 \xff"));
        let records = vec![
            Record::Op(Op { seq: 0, change: Change::New { path: odd.clone() } }),
            Record::Op(Op { seq: 1, change: Change::Remove { path: "a/b".into() } }),
            Record::Op(Op { seq: 2, change: Change::Rename { from: odd, to: "c".into(), replaced: false } }),
            Record::Op(Op { seq: 3, change: Change::Rename { from: "c".into(), to: "d".into(), replaced: true } }),
            Record::Done(2),
        ];
        let text: Vec<u8> = records.iter().flat_map(encode).collect();
        assert_eq!(text.iter().filter(|b| **b == b'\n').count(), records.len(), "one line per record");
        assert_eq!(parse(&text).unwrap(), records);
        // A torn last line is dropped; a bad complete line is an error.
        let mut torn = text.clone();
        torn.extend_from_slice(b"new 4 half");
        assert_eq!(parse(&torn).unwrap(), records);
        assert_eq!(parse(b"").unwrap(), vec![]);
        assert_eq!(parse(b"new 1 a\nmove 2 a\n").unwrap_err().0, 2);
        assert!(parse(b"new 1 %G1\n").unwrap_err().1.contains("escape"));
        assert!(parse(b"rename 1 a\n").is_err());
        assert!(parse(b"done 1 2\n").is_err());
        assert!(parse(b"\n").is_err(), "an empty line is no record");
    }
}
