//! A hand-written scanner for the common shape of a JSONL event line: a flat
//! object of known fields with plain values (integers, strings without
//! escapes, null, arrays of integers). It is several times faster than
//! serde_json on this shape. Anything else (escapes, nested objects,
//! floats, duplicate or unknown fields, malformed text) returns `None`, and
//! the caller parses the line with serde_json, which accepts exactly the
//! same lines and gives the error messages.
use std::borrow::Cow;
use std::sync::Arc;

use crate::history::EventType;
use crate::op::{FailMeaning, Record};
use crate::value::{Func, Val};

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    /// Skips JSON whitespace other than `\n`: the scanner runs on the rest
    /// of a block and must stop at the end of its line.
    fn skip_space(&mut self) {
        while self.at < self.bytes.len() && matches!(self.bytes[self.at], b' ' | b'\t' | b'\r') {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The bytes of a string without escapes or control characters.
    fn plain_bytes(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        let len = self.bytes[start..].iter().position(|b| matches!(*b, b'"' | b'\\' | 0..0x20))?;
        if self.bytes[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        Some(&self.bytes[start..start + len])
    }

    /// A string without escapes or control characters, as UTF-8.
    fn plain_string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.plain_bytes()?).ok()
    }

    fn digits(&mut self) -> Option<u64> {
        let start = self.at;
        let mut n: u64 = 0;
        while let Some(b @ b'0'..=b'9') = self.peek() {
            n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            self.at += 1;
        }
        let len = self.at - start;
        // JSON forbids leading zeros; a fraction or exponent is not ours.
        let leading_zero = len > 1 && self.bytes[start] == b'0';
        if len == 0 || leading_zero || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(n)
    }

    fn integer(&mut self) -> Option<i64> {
        self.skip_space();
        if self.peek()? == b'-' {
            self.at += 1;
            let n = self.digits()?;
            return i64::try_from(n).ok().map(|n| -n);
        }
        i64::try_from(self.digits()?).ok()
    }

    /// A field name, as one of ours: its text with the closing quote is
    /// compared in place (a constant per name, so no memcmp call), and no
    /// name is scanned for escapes first.
    fn field_name(&mut self) -> Option<&'static [u8]> {
        self.eat(b'"')?;
        let rest = &self.bytes[self.at..];
        let (name, quoted): (&'static [u8], bool) = match rest.first()? {
            b'p' => (b"process", rest.starts_with(b"process\"")),
            b't' if rest.get(1) == Some(&b'y') => (b"type", rest.starts_with(b"type\"")),
            b't' => (b"time_ns", rest.starts_with(b"time_ns\"")),
            b'f' => (b"f", rest.starts_with(b"f\"")),
            b'k' => (b"key", rest.starts_with(b"key\"")),
            b'v' => (b"value", rest.starts_with(b"value\"")),
            b'n' => (b"node", rest.starts_with(b"node\"")),
            b'e' => (b"error", rest.starts_with(b"error\"")),
            _ => return None,
        };
        quoted.then(|| self.at += name.len() + 1)?;
        Some(name)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.skip_space();
        self.bytes[self.at..].starts_with(word).then(|| self.at += word.len())
    }

    fn value(&mut self) -> Option<Val> {
        self.skip_space();
        match self.peek()? {
            b'n' => self.literal(b"null").map(|_| Val::Nil),
            b'"' => self.plain_string().map(|s| Val::Str(Arc::from(s))),
            b'[' => self.int_array(),
            _ => self.integer().map(Val::Int),
        }
    }

    fn int_array(&mut self) -> Option<Val> {
        self.eat(b'[')?;
        let mut ints = Vec::new();
        if self.eat(b']').is_some() {
            return Some(Val::Ints(Arc::from(ints)));
        }
        loop {
            ints.push(self.integer()?);
            self.skip_space();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(Val::Ints(Arc::from(ints)));
                }
                _ => return None,
            }
        }
    }
}

#[derive(Default)]
struct Fields<'a> {
    process: Option<Option<u64>>,
    kind: Option<EventType>,
    f: Option<Func>,
    key: Option<Option<&'a str>>,
    value: Option<Val>,
    time_ns: Option<u64>,
    node: bool,
    error: bool,
}

/// The function called `name`; built-ins without a UTF-8 check.
pub(super) fn func(name: &[u8]) -> Option<Func> {
    Some(match name {
        b"read" => Func::Read,
        b"write" => Func::Write,
        b"cas" => Func::Cas,
        b"get" => Func::Get,
        b"put" => Func::Put,
        b"append" => Func::Append,
        b"add" => Func::Add,
        _ => Func::parse(std::str::from_utf8(name).ok()?),
    })
}

pub(super) fn event_type(name: &[u8]) -> Option<EventType> {
    match name {
        b"invoke" => Some(EventType::Invoke),
        b"ok" => Some(EventType::Ok),
        b"fail" => Some(EventType::Fail),
        b"info" => Some(EventType::Info),
        _ => None,
    }
}

/// Reads one field's value into `fields`; `None` on anything unusual.
fn field<'a>(scanner: &mut Scanner<'a>, name: &[u8], fields: &mut Fields<'a>) -> Option<()> {
    scanner.skip_space();
    match name {
        b"process" if fields.process.is_none() => {
            let process = match scanner.peek()? {
                b'"' => (scanner.plain_bytes()? == b"nemesis").then_some(None)?,
                _ => Some(scanner.digits()?),
            };
            fields.process = Some(process);
        }
        b"type" if fields.kind.is_none() => fields.kind = Some(event_type(scanner.plain_bytes()?)?),
        b"f" if fields.f.is_none() => fields.f = Some(func(scanner.plain_bytes()?)?),
        b"key" if fields.key.is_none() => {
            let key = match scanner.peek()? {
                b'n' => scanner.literal(b"null").map(|_| None)?,
                _ => Some(scanner.plain_string()?),
            };
            fields.key = Some(key);
        }
        b"value" if fields.value.is_none() => fields.value = Some(scanner.value()?),
        b"time_ns" if fields.time_ns.is_none() => fields.time_ns = Some(scanner.digits()?),
        b"node" | b"error" => {
            let seen = if name == b"node" { &mut fields.node } else { &mut fields.error };
            if *seen {
                return None;
            }
            *seen = true;
            match scanner.peek()? {
                b'n' => scanner.literal(b"null")?,
                _ => scanner.plain_string().map(|_| ())?,
            }
        }
        _ => return None,
    }
    Some(())
}

/// The record of a line of the common shape, or `None` (parse it slowly).
#[cfg(test)]
fn parse_line_fast(bytes: &[u8], line: u32) -> Option<Record<'_>> {
    let (record, len) = parse_line_fast_prefix(bytes, line)?;
    (len == bytes.len()).then_some(record)
}

/// The record of the line `bytes` starts with, if it has the common shape,
/// and the line's length (without its `\n`); `None`: parse it slowly.
/// Finding the line's end while parsing saves a pass over the text.
pub fn parse_line_fast_prefix(bytes: &[u8], line: u32) -> Option<(Record<'_>, usize)> {
    let mut scanner = Scanner { bytes, at: 0 };
    let mut fields = Fields::default();
    scanner.eat(b'{')?;
    // Bounded by the line: each round consumes at least a name.
    loop {
        let name = scanner.field_name()?;
        scanner.eat(b':')?;
        field(&mut scanner, name, &mut fields)?;
        scanner.skip_space();
        match scanner.peek()? {
            b',' => scanner.at += 1,
            b'}' => break,
            _ => return None,
        }
    }
    scanner.at += 1;
    scanner.skip_space();
    if !matches!(scanner.peek(), None | Some(b'\n')) {
        return None;
    }
    let record = Record {
        process: fields.process?,
        kind: fields.kind?,
        f: fields.f?,
        key: fields.key.flatten().map(Cow::Borrowed),
        value: fields.value.unwrap_or(Val::Nil),
        time_ns: fields.time_ns?,
        line,
        fail_means: FailMeaning::DidNotHappen,
    };
    Some((record, scanner.at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_shape_is_parsed() {
        let line = br#"{"process":3,"type":"ok","f":"cas","key":"k1","value":[-1, 2],"time_ns":5400,"node":"n2","error":null}"#;
        let record = parse_line_fast(line, 7).unwrap();
        assert_eq!(record.process, Some(3));
        assert_eq!(record.kind, EventType::Ok);
        assert_eq!(record.f, Func::Cas);
        assert_eq!(record.key.as_deref(), Some("k1"));
        assert_eq!(record.value, Val::Ints(vec![-1, 2].into()));
        assert_eq!((record.time_ns, record.line), (5400, 7));
        let nemesis = parse_line_fast(br#" { "process" : "nemesis", "type":"info", "f":"heal", "time_ns":1 } "#, 1).unwrap();
        assert_eq!(nemesis.process, None);
        assert_eq!(nemesis.value, Val::Nil);
    }

    #[test]
    fn anything_unusual_is_left_to_serde() {
        let unusual: [&[u8]; 12] = [
            br#"{"process":3,"type":"ok","f":"read","value":"a\"b","time_ns":1}"#,
            br#"{"process":3,"type":"ok","f":"read","value":{"a":1},"time_ns":1}"#,
            br#"{"process":3,"type":"ok","f":"read","value":1.5,"time_ns":1}"#,
            br#"{"process":3,"type":"ok","f":"read","value":01,"time_ns":1}"#,
            br#"{"process":3,"type":"ok","f":"read","time_ns":1,"time_ns":2}"#,
            br#"{"process":3,"type":"ok","f":"read","time_ns":1,"extra":2}"#,
            br#"{"process":3,"type":"ok","f":"read"}"#,
            br#"{"process":-3,"type":"ok","f":"read","time_ns":1}"#,
            br#"{"process":"bob","type":"ok","f":"read","time_ns":1}"#,
            br#"{"process":3,"type":"done","f":"read","time_ns":1}"#,
            br#"{"process":3,"type":"ok","f":"read","time_ns":1} x"#,
            br#"{"process":3,"type":"ok","f":"read","value":99999999999999999999,"time_ns":1}"#,
        ];
        for line in unusual {
            assert!(parse_line_fast(line, 1).is_none(), "{}", String::from_utf8_lossy(line));
        }
    }
}
