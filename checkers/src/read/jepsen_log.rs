//! Jepsen's log lines: `INFO  jepsen.util - 3 :invoke :read nil` (tab-separated).
//!
//! Only lines containing `jepsen.util - ` are events; every other line of
//! the log is skipped. Fields after the marker: process, `:type`, `:f`, and
//! the value (EDN) to the end of the line. Time is the line order.
use crate::error::ReadError;
use crate::history::EventType;
use crate::op::{HistoryBuilder, OpHistory, Record};
use crate::value::{Func, Val};

use super::edn;
use super::edn_ops::{event_type, jepsen_fail_meaning};

pub const MARKER: &str = "jepsen.util - ";

/// Where [`MARKER`] starts in `line`. Finding its first byte and comparing
/// the rest beats `str::find`, which builds a substring searcher for every
/// line (a tenth of reading Porcupine's etcd corpus).
pub(super) fn find_marker(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut from = 0;
    // Bounded by the line: each round moves past one `j`.
    while let Some(offset) = bytes[from..].iter().position(|b| *b == b'j') {
        let at = from + offset;
        if bytes[at..].starts_with(MARKER.as_bytes()) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The fields after the marker: process (None = nemesis), type, function
/// (without its `:`) and the value's text.
pub(super) fn fields(rest: &str) -> Result<(Option<u64>, EventType, &str, &str), String> {
    let mut rest = rest;
    let mut next_field = |what: &str| {
        let trimmed = rest.trim_start();
        let end = trimmed.find(|c: char| c.is_ascii_whitespace()).unwrap_or(trimmed.len());
        rest = &trimmed[end..];
        // The messages are built only on errors: every line reads 3 fields.
        Some(&trimmed[..end]).filter(|s| !s.is_empty()).ok_or_else(|| format!("missing {what}"))
    };
    let process_text = next_field("process")?;
    let process = match process_text {
        ":nemesis" | "nemesis" => None,
        p => Some(p.parse::<u64>().map_err(|_| format!("bad process {p:?}"))?),
    };
    let type_text = next_field("type")?;
    let kind = type_text
        .strip_prefix(':')
        .and_then(event_type)
        .ok_or_else(|| format!("bad type {type_text:?}"))?;
    let f = next_field("function")?.trim_start_matches(':');
    Ok((process, kind, f, rest.trim()))
}

fn parse_event(rest: &str, line: u32) -> Result<Record<'static>, String> {
    let (process, kind, f, rest) = fields(rest)?;
    let f = Func::parse(f);
    let value = match rest {
        "" => Val::Nil,
        text => match edn::parse(text) {
            Ok(value) => edn::to_val(&value),
            // Nemesis values are free text; a client value must parse.
            Err(_) if process.is_none() => Val::Opaque,
            Err(message) => return Err(message),
        },
    };
    Ok(Record {
        process,
        kind,
        f,
        key: None,
        value,
        time_ns: u64::from(line),
        line,
        fail_means: jepsen_fail_meaning(f),
    })
}

pub fn read_jepsen_log(text: &str) -> Result<OpHistory, ReadError> {
    let mut builder = HistoryBuilder::new();
    for (i, text_line) in text.lines().enumerate() {
        let line = i as u32 + 1;
        let Some(at) = find_marker(text_line) else { continue };
        let record = parse_event(&text_line[at + MARKER.len()..], line)
            .map_err(|message| ReadError::BadLine { line, message })?;
        builder.push(record)?;
    }
    Ok(builder.finish_history())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Outcome;

    #[test]
    fn the_marker_is_found_where_str_find_finds_it() {
        for line in ["INFO  jepsen.util - 3\t:ok", "jjepsen.util - x", "jepsen.util -", "no marker", "", "a jepsen.util jepsen.util - 1"] {
            assert_eq!(find_marker(line), line.find(MARKER), "{line:?}");
        }
    }

    #[test]
    fn parses_event_fields() {
        let record = parse_event("0\t:invoke\t:read\tnil", 1).unwrap();
        let spaced = parse_event("4   :invoke :cas    [1 2]", 1).unwrap();
        assert_eq!(spaced.value, Val::Ints(vec![1, 2].into()));
        assert_eq!(record.process, Some(0));
        assert_eq!(record.f, Func::Read);
        assert_eq!(record.value, Val::Nil);
    }

    #[test]
    fn reads_the_etcd_semantics() {
        let text = "noise line\n\
            INFO  jepsen.util - 1\t:invoke\t:write\t2\n\
            INFO  jepsen.util - 2\t:invoke\t:cas\t[2 0]\n\
            INFO  jepsen.util - 1\t:ok\t:write\t2\n\
            INFO  jepsen.util - 2\t:fail\t:cas\t[2 0]\n\
            INFO  jepsen.util - 3\t:invoke\t:read\tnil\n\
            INFO  jepsen.util - 3\t:fail\t:read\t:timed-out\n\
            INFO  jepsen.util - 4\t:invoke\t:write\t1\n\
            INFO  jepsen.util - 4\t:info\t:write\t:timed-out\n\
            INFO  jepsen.util - :nemesis\t:info\t:start\tpartitioned {n1 n2}\n";
        let history = read_jepsen_log(text).unwrap();
        let ops = &history.ops_by_key[0];
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0].outcome, Outcome::Ok);
        assert_eq!(ops[0].input, Val::Int(2));
        assert_eq!(ops[0].line, 2);
        assert_eq!(ops[1].f, Func::Cas);
        assert_eq!(ops[1].outcome, Outcome::Failed);
        assert_eq!(ops[2].f, Func::Read);
        assert_eq!(ops[2].outcome, Outcome::Unknown);
        assert_eq!(ops[3].outcome, Outcome::Unknown);
        assert_eq!(ops[3].return_ns, crate::op::RETURN_NEVER_NS);
        assert_eq!(history.nemesis_event_count, 1);
    }

    #[test]
    fn a_bad_event_line_names_its_line() {
        let text = "INFO  jepsen.util - 1\t:invoke\t:write\t2\nINFO  jepsen.util - x\t:ok\t:write\t2\n";
        match read_jepsen_log(text) {
            Err(ReadError::BadLine { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected a bad line error, got {other:?}"),
        }
    }
}
