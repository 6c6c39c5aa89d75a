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
    fn skip_space(&mut self) {
        while self.at < self.bytes.len() && matches!(self.bytes[self.at], b' ' | b'\t' | b'\r' | b'\n') {
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
    f: Option<&'a str>,
    key: Option<Option<&'a str>>,
    value: Option<Val>,
    time_ns: Option<u64>,
    node: bool,
    error: bool,
}

fn event_type(name: &[u8]) -> Option<EventType> {
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
        b"f" if fields.f.is_none() => fields.f = Some(scanner.plain_string()?),
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
pub fn parse_line_fast(bytes: &[u8], line: u32) -> Option<Record<'_>> {
    let mut scanner = Scanner { bytes, at: 0 };
    let mut fields = Fields::default();
    scanner.eat(b'{')?;
    loop {
        let name = scanner.plain_bytes()?;
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
    if scanner.at != bytes.len() {
        return None;
    }
    let f = fields.f?;
    Some(Record {
        process: fields.process?,
        kind: fields.kind?,
        f: Func::parse(f),
        key: fields.key.flatten().map(Cow::Borrowed),
        value: fields.value.unwrap_or(Val::Nil),
        time_ns: fields.time_ns?,
        line,
        fail_means: FailMeaning::DidNotHappen,
    })
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
