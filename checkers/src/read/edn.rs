//! EDN values, as Jepsen and Knossos print them: the value syntax of
//! Jepsen's history files and log lines.
//!
//! Parsed: maps, vectors, lists (read as vectors), sets, keywords (with
//! namespaces), symbols, strings, integers, floats, `nil`, `true`/`false`;
//! `;` comments, `#_` discards and commas are skipped. A tagged value
//! (`#inst "..."`, `#jepsen.history.Op{...}`) reads as the value it tags:
//! the tag is dropped. Not parsed: characters (`\a` reads as a symbol)
//! and ratios.
use std::sync::Arc;

use crate::value::Val;

/// A parsed EDN value.
#[derive(Debug, Clone, PartialEq)]
pub enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    /// A float, or an integer too large for `i64` (`1e3`, `2.5M`, `##Inf`).
    Float(f64),
    Str(String),
    /// Without the leading `:`.
    Keyword(String),
    Symbol(String),
    /// A vector or a list.
    Vector(Vec<Edn>),
    /// `#{...}`, in the order written.
    Set(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
}

/// Nesting deeper than this is rejected rather than recursed into.
pub const DEPTH_MAX: u32 = 64;

/// Why parsing stopped: `at` is the byte the error is about (where an
/// unclosed string or collection opened, for input that ends too soon).
#[derive(Debug)]
pub(super) struct ParseError {
    pub at: usize,
    pub message: String,
}

/// Bytes that end a symbol, keyword or number.
const DELIMITERS: &[u8] = b" \t\r\n,;{}[]()\"";

pub(super) struct Parser<'a> {
    pub text: &'a [u8],
    pub at: usize,
}

impl<'a> Parser<'a> {
    pub fn new(text: &'a [u8]) -> Self {
        Parser { text, at: 0 }
    }

    fn error<T>(&self, at: usize, message: String) -> Result<T, ParseError> {
        Err(ParseError { at, message })
    }

    /// Skips whitespace, commas, `;` comments and `#_` discarded forms.
    pub fn skip_ignored(&mut self, depth: u32) -> Result<(), ParseError> {
        // Bounded by the input: every round consumes at least one byte.
        loop {
            while self.at < self.text.len() && (self.text[self.at].is_ascii_whitespace() || self.text[self.at] == b',') {
                self.at += 1;
            }
            match self.text.get(self.at) {
                Some(b';') => {
                    let rest = &self.text[self.at..];
                    self.at += rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
                }
                Some(b'#') if self.text.get(self.at + 1) == Some(&b'_') => {
                    self.at += 2;
                    // One level deeper, so a run of `#_` is bounded too.
                    self.value(depth + 1)?;
                }
                _ => return Ok(()),
            }
        }
    }

    pub fn value(&mut self, depth: u32) -> Result<Edn, ParseError> {
        if depth >= DEPTH_MAX {
            return self.error(self.at, format!("nested more than {DEPTH_MAX} levels deep"));
        }
        self.skip_ignored(depth)?;
        match self.text.get(self.at) {
            None => self.error(self.at, "unexpected end of input".to_string()),
            Some(b'{') => {
                let start = self.at;
                let items = self.collection(b'}', depth)?;
                pairs(items).map(Edn::Map).or_else(|message| self.error(start, message))
            }
            Some(b'[') => self.collection(b']', depth).map(Edn::Vector),
            Some(b'(') => self.collection(b')', depth).map(Edn::Vector),
            Some(b'"') => self.string().map(Edn::Str),
            Some(b'#') => self.dispatch(depth),
            Some(_) => self.atom(),
        }
    }

    /// Reads from the opening byte at `self.at` to `close`.
    fn collection(&mut self, close: u8, depth: u32) -> Result<Vec<Edn>, ParseError> {
        let start = self.at;
        self.at += 1;
        let mut items = Vec::new();
        loop {
            self.skip_ignored(depth + 1)?;
            match self.text.get(self.at) {
                None => return self.error(start, format!("{:?} is never closed", self.text[start] as char)),
                Some(b) if *b == close => {
                    self.at += 1;
                    return Ok(items);
                }
                Some(_) => items.push(self.value(depth + 1)?),
            }
        }
    }

    /// `#{set}`, `##Inf`, `#"regex"`, or `#tag value`.
    fn dispatch(&mut self, depth: u32) -> Result<Edn, ParseError> {
        let start = self.at;
        self.at += 1;
        match self.text.get(self.at) {
            Some(b'{') => self.collection(b'}', depth).map(Edn::Set),
            Some(b'#') => {
                self.at += 1;
                match self.word() {
                    "Inf" => Ok(Edn::Float(f64::INFINITY)),
                    "-Inf" => Ok(Edn::Float(f64::NEG_INFINITY)),
                    "NaN" => Ok(Edn::Float(f64::NAN)),
                    other => self.error(start, format!("unknown symbolic value ##{other}")),
                }
            }
            Some(b'"') => self.string().map(Edn::Str),
            Some(b) if b.is_ascii_alphabetic() => {
                self.word();
                self.value(depth + 1)
            }
            _ => self.error(start, "'#' is not followed by a tag, '{' or '_'".to_string()),
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.at;
        self.at += 1;
        let mut out = Vec::new();
        while let Some(&b) = self.text.get(self.at) {
            self.at += 1;
            match b {
                b'"' => return String::from_utf8(out).or_else(|_| self.error(start, "string is not UTF-8".to_string())),
                b'\\' => self.escape(start, &mut out)?,
                other => out.push(other),
            }
        }
        self.error(start, "string is never closed".to_string())
    }

    /// The escaped character after a `\` in the string opened at `start`.
    fn escape(&mut self, start: usize, out: &mut Vec<u8>) -> Result<(), ParseError> {
        let Some(&escaped) = self.text.get(self.at) else {
            return self.error(start, "string is never closed".to_string());
        };
        self.at += 1;
        let simple = match escaped {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'u' => return self.unicode_escape(out),
            other => other,
        };
        out.push(simple);
        Ok(())
    }

    /// `\uXXXX`: four hex digits.
    fn unicode_escape(&mut self, out: &mut Vec<u8>) -> Result<(), ParseError> {
        let digits = self.text.get(self.at..self.at + 4).and_then(|d| std::str::from_utf8(d).ok());
        let Some(c) = digits.and_then(|d| u32::from_str_radix(d, 16).ok()).and_then(char::from_u32) else {
            return self.error(self.at, "bad \\u escape".to_string());
        };
        self.at += 4;
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }

    /// The bytes up to the next delimiter, as text ("" if not UTF-8: the
    /// input is checked to be UTF-8 before parsing, so only a cut
    /// multi-byte character in a test's bytes gets here).
    pub fn word(&mut self) -> &'a str {
        let start = self.at;
        while self.at < self.text.len() && !DELIMITERS.contains(&self.text[self.at]) {
            self.at += 1;
        }
        std::str::from_utf8(&self.text[start..self.at]).unwrap_or("")
    }

    fn atom(&mut self) -> Result<Edn, ParseError> {
        let start = self.at;
        let word = self.word();
        match word {
            "" => self.error(start, format!("unexpected {:?}", self.text[start] as char)),
            "nil" => Ok(Edn::Nil),
            "true" => Ok(Edn::Bool(true)),
            "false" => Ok(Edn::Bool(false)),
            _ if word.starts_with(':') => Ok(Edn::Keyword(word[1..].to_string())),
            _ => {
                if let Ok(i) = word.parse::<i64>() {
                    return Ok(Edn::Int(i));
                }
                if !starts_number(word) {
                    return Ok(Edn::Symbol(word.to_string()));
                }
                match number(word) {
                    Some(value) => Ok(value),
                    None => self.error(start, format!("unsupported number {word:?}")),
                }
            }
        }
    }
}

fn starts_number(word: &str) -> bool {
    let digits = word.strip_prefix(['+', '-']).unwrap_or(word);
    digits.starts_with(|c: char| c.is_ascii_digit())
}

/// A number that is not a plain `i64`: `12N`, a float, `2.5M`.
fn number(word: &str) -> Option<Edn> {
    if let Some(int) = word.strip_suffix('N') {
        return int.parse::<i64>().map(Edn::Int).ok().or_else(|| int.parse::<f64>().ok().map(Edn::Float));
    }
    word.strip_suffix('M').unwrap_or(word).parse::<f64>().ok().map(Edn::Float)
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
    let mut parser = Parser::new(text.as_bytes());
    let value = parser.value(0).map_err(|err| err.message)?;
    parser.skip_ignored(0).map_err(|err| err.message)?;
    if parser.at != parser.text.len() {
        return Err(format!("trailing text after the value: {:?}", &text[parser.at..]));
    }
    Ok(value)
}

/// The compact value of an EDN operation value: a vector, list or set of
/// integers is [`Val::Ints`] (a set's order is the file's; the set model
/// ignores it); keywords, symbols, floats and maps are [`Val::Opaque`].
pub fn to_val(edn: &Edn) -> Val {
    match edn {
        Edn::Nil => Val::Nil,
        Edn::Int(i) => Val::Int(*i),
        Edn::Str(s) => Val::Str(Arc::from(s.as_str())),
        Edn::Vector(items) | Edn::Set(items) => {
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

/// A short, one-line description of a value for error messages.
pub(super) fn describe(edn: &Edn) -> String {
    /// Longer descriptions are cut: an error names the line, not the value.
    const DESCRIPTION_CHARS_MAX: usize = 60;
    let text = format!("{edn:?}");
    match text.char_indices().nth(DESCRIPTION_CHARS_MAX) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_jepsen_prints() {
        let text = "#jepsen.history.Op{:value #{1 2}, :x 1.5, :y 12N, :s sym/bol, :k :a.b/c, ; note\n :t #inst \"2024\", :d #_ [1 2] \"\\u0041\"}";
        let Edn::Map(map) = parse(text).unwrap() else { panic!("a map") };
        let values: Vec<&Edn> = map.iter().map(|(_, v)| v).collect();
        assert_eq!(values[0], &Edn::Set(vec![Edn::Int(1), Edn::Int(2)]));
        assert_eq!(values[1], &Edn::Float(1.5));
        assert_eq!(values[2], &Edn::Int(12));
        assert_eq!(values[3], &Edn::Symbol("sym/bol".into()));
        assert_eq!(values[4], &Edn::Keyword("a.b/c".into()));
        assert_eq!(values[5], &Edn::Str("2024".into()));
        assert_eq!(values[6], &Edn::Str("A".into()));
        assert_eq!(to_val(values[0]), Val::Ints(vec![1, 2].into()));
        assert_eq!(to_val(values[1]), Val::Opaque);
    }

    #[test]
    fn malformed_values_are_errors() {
        for bad in ["[1 2", "{:a}", "1 2", "#{1", "\"abc", "#", "##Foo", "1/2", "]", "#_"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let deep = format!("{}{}", "[".repeat(DEPTH_MAX as usize + 1), "]".repeat(DEPTH_MAX as usize + 1));
        assert!(parse(&deep).unwrap_err().contains("levels deep"));
        let discards = format!("{}1", "#_".repeat(DEPTH_MAX as usize + 1));
        assert!(parse(&discards).is_err());
        assert!(describe(&Edn::Str("x".repeat(100))).len() < 70);
    }
}
