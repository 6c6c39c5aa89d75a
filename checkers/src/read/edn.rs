//! Jepsen's EDN: one operation map per line,
//! `{:process 0, :type :invoke, :f :append, :key "4", :value "x 0 1 y"}`,
//! and the value syntax shared with Jepsen's log lines.
//!
//! Only the subset histories use is parsed: maps, vectors, keywords,
//! strings, integers, `nil`, `true`/`false`.
use std::borrow::Cow;
use std::sync::Arc;

use crate::history::EventType;
use crate::op::{FailMeaning, HistoryBuilder, OpHistory, Record};
use crate::value::{Func, Val};

/// A parsed EDN value.
#[derive(Debug, Clone, PartialEq)]
pub enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Str(String),
    Keyword(String),
    Vector(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
}

/// Nesting deeper than this is rejected rather than recursed into.
const DEPTH_MAX: u32 = 32;

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn skip_space(&mut self) {
        while self.at < self.text.len() && (self.text[self.at].is_ascii_whitespace() || self.text[self.at] == b',') {
            self.at += 1;
        }
    }

    fn value(&mut self, depth: u32) -> Result<Edn, String> {
        if depth > DEPTH_MAX {
            return Err("value nested too deeply".to_string());
        }
        self.skip_space();
        match self.text.get(self.at) {
            None => Err("unexpected end of line".to_string()),
            Some(b'{') => self.collection(b'}', depth).map(pairs).and_then(|m| m.map(Edn::Map)),
            Some(b'[') | Some(b'(') => {
                let close = if self.text[self.at] == b'[' { b']' } else { b')' };
                self.collection(close, depth).map(Edn::Vector)
            }
            Some(b'"') => self.string().map(Edn::Str),
            Some(_) => self.atom(),
        }
    }

    fn collection(&mut self, close: u8, depth: u32) -> Result<Vec<Edn>, String> {
        self.at += 1;
        let mut items = Vec::new();
        loop {
            self.skip_space();
            match self.text.get(self.at) {
                None => return Err(format!("missing {:?}", close as char)),
                Some(b) if *b == close => {
                    self.at += 1;
                    return Ok(items);
                }
                Some(_) => items.push(self.value(depth + 1)?),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.at += 1;
        let mut out = Vec::new();
        while let Some(&b) = self.text.get(self.at) {
            self.at += 1;
            match b {
                b'"' => return String::from_utf8(out).map_err(|_| "string is not UTF-8".to_string()),
                b'\\' => {
                    let escaped = self.text.get(self.at).copied().ok_or("unterminated string")?;
                    self.at += 1;
                    out.push(match escaped {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        other => other,
                    });
                }
                other => out.push(other),
            }
        }
        Err("unterminated string".to_string())
    }

    fn atom(&mut self) -> Result<Edn, String> {
        let start = self.at;
        while self.at < self.text.len() && !b" \t\r\n,{}[]()\"".contains(&self.text[self.at]) {
            self.at += 1;
        }
        let word = std::str::from_utf8(&self.text[start..self.at]).map_err(|_| "not UTF-8".to_string())?;
        match word {
            "" => Err(format!("unexpected {:?}", self.text[start] as char)),
            "nil" => Ok(Edn::Nil),
            "true" => Ok(Edn::Bool(true)),
            "false" => Ok(Edn::Bool(false)),
            _ if word.starts_with(':') => Ok(Edn::Keyword(word[1..].to_string())),
            _ => word.parse::<i64>().map(Edn::Int).map_err(|_| format!("unsupported token {word:?}")),
        }
    }
}

fn pairs(items: Vec<Edn>) -> Result<Vec<(Edn, Edn)>, String> {
    if items.len() % 2 != 0 {
        return Err("map has an odd number of forms".to_string());
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// Parses one complete EDN value; trailing text is an error.
pub fn parse(text: &str) -> Result<Edn, String> {
    let mut parser = Parser { text: text.as_bytes(), at: 0 };
    let value = parser.value(0)?;
    parser.skip_space();
    if parser.at != parser.text.len() {
        return Err(format!("trailing text after the value: {:?}", &text[parser.at..]));
    }
    Ok(value)
}

/// The compact value of an EDN operation value.
pub fn to_val(edn: &Edn) -> Val {
    match edn {
        Edn::Nil => Val::Nil,
        Edn::Int(i) => Val::Int(*i),
        Edn::Str(s) => Val::Str(Arc::from(s.as_str())),
        Edn::Vector(items) => {
            let ints: Option<Vec<i64>> = items
                .iter()
                .map(|item| match item {
                    Edn::Int(i) => Some(*i),
                    _ => None,
                })
                .collect();
            ints.map_or(Val::Opaque, |ints| Val::Ints(Arc::from(ints)))
        }
        _ => Val::Opaque,
    }
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

fn map_get<'m>(map: &'m [(Edn, Edn)], name: &str) -> Option<&'m Edn> {
    map.iter()
        .find(|(k, _)| matches!(k, Edn::Keyword(k) if k == name))
        .map(|(_, v)| v)
}

fn record_of_map(map: &[(Edn, Edn)], line: u32) -> Result<Record<'static>, String> {
    let process = match map_get(map, "process") {
        Some(Edn::Int(p)) if *p >= 0 => Some(*p as u64),
        Some(Edn::Keyword(k)) if k == "nemesis" => None,
        other => return Err(format!(":process must be a number or :nemesis, got {other:?}")),
    };
    let kind = match map_get(map, "type") {
        Some(Edn::Keyword(k)) => event_type(k).ok_or_else(|| format!("unknown :type :{k}"))?,
        other => return Err(format!(":type must be a keyword, got {other:?}")),
    };
    let f = match map_get(map, "f") {
        Some(Edn::Keyword(k)) | Some(Edn::Str(k)) => Func::parse(k),
        other => return Err(format!(":f must be a keyword, got {other:?}")),
    };
    let key = match map_get(map, "key") {
        None | Some(Edn::Nil) => None,
        Some(Edn::Str(s)) => Some(Cow::Owned(s.clone())),
        Some(Edn::Int(i)) => Some(Cow::Owned(i.to_string())),
        Some(Edn::Keyword(k)) => Some(Cow::Owned(k.clone())),
        other => return Err(format!(":key must be a string or number, got {other:?}")),
    };
    Ok(Record {
        process,
        kind,
        f,
        key,
        value: map_get(map, "value").map_or(Val::Nil, to_val),
        time_ns: u64::from(line),
        line,
        fail_means: jepsen_fail_meaning(f),
    })
}

/// Reads an EDN history: every non-blank line is one operation map.
/// Time is the line order.
pub fn read_edn(text: &str) -> Result<OpHistory, crate::error::ReadError> {
    let mut builder = HistoryBuilder::new();
    for (i, text_line) in text.lines().enumerate() {
        let line = i as u32 + 1;
        if text_line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| crate::error::ReadError::BadLine { line, message };
        let map = match parse(text_line).map_err(bad)? {
            Edn::Map(map) => map,
            other => return Err(bad(format!("expected an operation map, got {other:?}"))),
        };
        builder.push(record_of_map(&map, line).map_err(bad)?)?;
    }
    Ok(builder.finish_history())
}
