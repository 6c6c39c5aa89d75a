//! Jepsen EDN histories of one map a line, for the chunked line reader
//! ([`super::lines`]), and a hand-written scanner for the common shape of a
//! line, `{:process 0, :type :ok, :f :get, :key "4", :value "x 0 1 y"}`:
//! one map of keywords to plain values (non-negative process numbers or
//! `:nemesis`, keywords, integers, `nil`, strings without escapes, vectors
//! of integers). Anything else (escapes, nested maps, floats, tags,
//! comments, duplicate keys, malformed text) is left to the full EDN
//! parser, which accepts exactly these lines and more, and gives the error
//! messages.
//!
//! Measured on a generated 1,000,000-operation kv history (166 MB): the
//! full parser read it at 103 MB/s on one thread; this scanner on the
//! chunked reader's two threads, at 666-741 MB/s, as fast as JSONL.
use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;

use super::edn::{parse, Edn};
use super::edn_ops::{jepsen_fail_meaning, record_of_map};
use super::fast::{event_type, func};
use super::lines::{read_lines, LineError, LineFormat};
use crate::error::ReadError;
use crate::history::EventType;
use crate::op::{OpHistory, Record};
use crate::value::{Func, Val};

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// Bytes that end a token on a line (a `\n` ends the line, and a map open
/// at the end of its line is not this shape).
fn ends_token(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b',' | b'}' | b']')
}

impl<'a> Scanner<'a> {
    /// Skips whitespace and commas (EDN's whitespace), not `\n`.
    fn skip_space(&mut self) {
        while self.at < self.bytes.len() && matches!(self.bytes[self.at], b' ' | b'\t' | b'\r' | b',') {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// True if the token just read is followed by a delimiter.
    fn token_ended(&self) -> bool {
        self.peek().is_some_and(ends_token)
    }

    /// A keyword's name (after `:`): letters, digits, `-`, `_`, `?`, `!`.
    fn keyword(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b':' {
            return None;
        }
        let start = self.at + 1;
        let len = self.bytes[start..].iter().position(|b| !(b.is_ascii_alphanumeric() || matches!(*b, b'-' | b'_' | b'?' | b'!')))?;
        self.at = start + len;
        (len > 0 && self.token_ended()).then(|| &self.bytes[start..start + len])
    }

    /// A string without escapes, as UTF-8 (a newline inside it is a map
    /// spread over lines: not this shape).
    fn plain_string(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let len = self.bytes[start..].iter().position(|b| matches!(*b, b'"' | b'\\' | b'\n'))?;
        if self.bytes[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        std::str::from_utf8(&self.bytes[start..start + len]).ok()
    }

    /// Decimal digits with no leading zero, followed by a delimiter.
    fn digits(&mut self) -> Option<u64> {
        let start = self.at;
        let mut n: u64 = 0;
        while let Some(b @ b'0'..=b'9') = self.peek() {
            n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            self.at += 1;
        }
        let len = self.at - start;
        let leading_zero = len > 1 && self.bytes[start] == b'0';
        (len > 0 && !leading_zero && self.token_ended()).then_some(n)
    }

    fn integer(&mut self) -> Option<i64> {
        if self.peek()? == b'-' {
            self.at += 1;
            return i64::try_from(self.digits()?).ok().map(|n| -n);
        }
        i64::try_from(self.digits()?).ok()
    }

    fn nil(&mut self) -> Option<()> {
        self.bytes[self.at..].starts_with(b"nil").then(|| self.at += 3)?;
        self.token_ended().then_some(())
    }

    fn value(&mut self) -> Option<Val> {
        match self.peek()? {
            b'n' => self.nil().map(|()| Val::Nil),
            b'"' => self.plain_string().map(|s| Val::Str(Arc::from(s))),
            b'[' => self.int_vector(),
            _ => self.integer().map(Val::Int),
        }
    }

    fn int_vector(&mut self) -> Option<Val> {
        self.at += 1;
        let mut ints = Vec::new();
        // Bounded by the line: each round consumes an integer or ends.
        loop {
            self.skip_space();
            if self.peek()? == b']' {
                self.at += 1;
                return self.token_ended().then(|| Val::Ints(Arc::from(ints)));
            }
            ints.push(self.integer()?);
        }
    }

    /// Skips the value of a key nobody reads (`:time`, `:index`, ...).
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b':' => self.keyword().map(|_| ()),
            _ => self.value().map(|_| ()),
        }
    }
}

#[derive(Default)]
struct Fields<'a> {
    process: Option<Option<u64>>,
    kind: Option<EventType>,
    f: Option<Func>,
    key: Option<Option<Cow<'a, str>>>,
    value: Option<Val>,
}

/// Reads one entry's value into `fields`; `None` on anything unusual.
fn entry<'a>(scanner: &mut Scanner<'a>, name: &[u8], fields: &mut Fields<'a>) -> Option<()> {
    match name {
        b"process" if fields.process.is_none() => {
            let process = match scanner.peek()? {
                b':' => (scanner.keyword()? == b"nemesis").then_some(None)?,
                _ => Some(scanner.digits()?),
            };
            fields.process = Some(process);
        }
        b"type" if fields.kind.is_none() => fields.kind = Some(event_type(scanner.keyword()?)?),
        b"f" if fields.f.is_none() => fields.f = Some(func(scanner.keyword()?)?),
        b"key" if fields.key.is_none() => {
            let key = match scanner.peek()? {
                b'n' => scanner.nil().map(|()| None)?,
                b'"' => Some(Cow::Borrowed(scanner.plain_string()?)),
                _ => Some(Cow::Owned(scanner.integer()?.to_string())),
            };
            fields.key = Some(key);
        }
        b"value" if fields.value.is_none() => fields.value = Some(scanner.value()?),
        b"process" | b"type" | b"f" | b"key" | b"value" => return None,
        _ => scanner.skip_value()?,
    }
    Some(())
}

/// The record of the line `bytes` starts with, if it has the common shape,
/// and the line's length (without its `\n`); `None`: parse it fully. The
/// line's number is also its time: EDN histories are in time order.
pub fn parse_line_prefix(bytes: &[u8], line: u32) -> Option<(Record<'_>, usize)> {
    let mut scanner = Scanner { bytes, at: 0 };
    let mut fields = Fields::default();
    scanner.skip_space();
    if scanner.peek()? != b'{' {
        return None;
    }
    scanner.at += 1;
    // Bounded by the line: each round consumes an entry or ends.
    loop {
        scanner.skip_space();
        if scanner.peek()? == b'}' {
            break;
        }
        let name = scanner.keyword()?;
        scanner.skip_space();
        entry(&mut scanner, name, &mut fields)?;
    }
    scanner.at += 1;
    scanner.skip_space();
    if !matches!(scanner.peek(), None | Some(b'\n')) {
        return None;
    }
    let f = fields.f?;
    let record = Record {
        process: fields.process?,
        kind: fields.kind?,
        f,
        key: fields.key.flatten(),
        value: fields.value.unwrap_or(Val::Nil),
        time_ns: u64::from(line),
        line,
        fail_means: jepsen_fail_meaning(f),
    };
    Some((record, scanner.at))
}

/// EDN maps one a line, for the chunked line reader: the fast scanner
/// first, then the full parser for the lines it leaves.
struct EdnLines;

impl LineFormat for EdnLines {
    fn parse_line<'t>(&self, rest: &'t [u8], line: u32) -> Result<(Option<Record<'t>>, usize), LineError> {
        if let Some((record, len)) = parse_line_prefix(rest, line) {
            return Ok((Some(record), len));
        }
        let len = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let Ok(text) = std::str::from_utf8(&rest[..len]) else {
            return Err(LineError::Bad(ReadError::BadLine { line, message: "not UTF-8 text".to_string() }));
        };
        let start = text.trim_start();
        if start.is_empty() || start.starts_with(';') {
            return Ok((None, len));
        }
        let Ok(Edn::Map(map)) = parse(text) else {
            return Err(LineError::NotOneALine);
        };
        let record = record_of_map(&map, line, u64::from(line)).map_err(|message| LineError::Bad(ReadError::BadLine { line, message }))?;
        Ok((Some(record), len))
    }
}

/// Reads an EDN history of one map a line from `reader`, starting with
/// bytes already read, on `threads` threads; `None` if the file is not one
/// map a line (read it whole with [`read_edn`] then).
pub fn read_edn_lines(head: Vec<u8>, reader: &mut impl Read, threads: usize) -> Result<Option<OpHistory>, ReadError> {
    match read_lines(&EdnLines, head, reader, threads) {
        Ok(history) => Ok(Some(history)),
        Err(LineError::NotOneALine) => Ok(None),
        Err(LineError::Bad(error)) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(bytes: &[u8]) -> Option<Record<'_>> {
        let (record, len) = parse_line_prefix(bytes, 7)?;
        (len == bytes.len()).then_some(record)
    }

    #[test]
    fn the_common_shape_is_parsed() {
        let record = parse_line(br#"{:process 3, :type :ok, :f :cas, :key "k1", :value [-1 2], :time 5400, :index 9}"#).unwrap();
        assert_eq!(record.process, Some(3));
        assert_eq!(record.kind, EventType::Ok);
        assert_eq!(record.f, Func::Cas);
        assert_eq!(record.key.as_deref(), Some("k1"));
        assert_eq!(record.value, Val::Ints(vec![-1, 2].into()));
        assert_eq!((record.time_ns, record.line), (7, 7));
        let nemesis = parse_line(b" {:process :nemesis :type :info :f :start :value nil} ").unwrap();
        assert_eq!((nemesis.process, nemesis.value, nemesis.key), (None, Val::Nil, None));
        let numbered = parse_line(br#"{:process 0, :type :invoke, :f :append, :key 4, :value "x 0 1 y"}"#).unwrap();
        assert_eq!(numbered.key.as_deref(), Some("4"));
        assert_eq!(numbered.value, Val::Str(Arc::from("x 0 1 y")));
    }

    #[test]
    fn the_line_length_stops_at_the_line_end() {
        let text = b"{:process 1, :type :invoke, :f :get, :key \"a\", :value nil}\n{:process 2";
        let (_, len) = parse_line_prefix(text, 1).unwrap();
        assert_eq!(text[len], b'\n');
    }

    #[test]
    fn anything_unusual_is_left_to_the_full_parser() {
        let unusual: [&[u8]; 15] = [
            br#"{:process 3, :type :ok, :f :read, :value "a\"b"}"#,
            br#"{:process 3, :type :ok, :f :read, :value {:a 1}}"#,
            br#"{:process 3, :type :ok, :f :read, :value 1.5}"#,
            br#"{:process 3, :type :ok, :f :read, :value 01}"#,
            br#"{:process 3, :type :ok, :f :read, :value 12N}"#,
            br#"{:process 3, :type :ok, :f :read, :value 1, :value 2}"#,
            br#"{:process 3, :type :ok, :f :read, :value #{1 2}}"#,
            br#"{:process 3, :type :ok}"#,
            br#"{:process -3, :type :ok, :f :read}"#,
            br#"{:process 3, :type :done, :f :read}"#,
            br#"{:process 3, :type :ok, :f :read} x"#,
            br#"{:process 3, :type :ok, :f :read} ; a comment"#,
            br#"{:process 3, :type :ok, :f :jepsen/read}"#,
            b"{:process 3, :type :ok, :f :read, :value \"a\nb\"}",
            b"{:process 3, :type :ok,\n :f :read}",
        ];
        for line in unusual {
            assert!(parse_line(line).is_none(), "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn what_the_scanner_reads_the_full_parser_reads_alike() {
        let lines = [
            r#"{:process 3, :type :ok, :f :cas, :key "k1", :value [-1 2], :time 5400}"#,
            r#"{:process 0 :type :invoke :f :append :key 4 :value "x 0 1 y"}"#,
            r#"{:process 0, :type :fail, :f :read, :value nil, :error :timed-out}"#,
            r#"{:process 12, :type :info, :f :write, :key nil, :value -7}"#,
        ];
        for text in lines {
            let fast = parse_line(text.as_bytes()).unwrap();
            let Edn::Map(map) = parse(text).unwrap() else { panic!("not a map: {text}") };
            let full = record_of_map(&map, 7, 7).unwrap();
            assert_eq!(fast, full, "{text}");
        }
    }
}
