//! Readers: faultline JSONL, Jepsen log lines and Jepsen EDN maps, with the
//! format detected from the file's first lines; [`read_txn_path`] reads the
//! same formats as list-append transactions.
mod edn;
mod edn_lines;
mod edn_ops;
mod events;
mod fast;
mod jepsen_log;
mod jsonl;
mod lines;
mod raw;
mod txn;

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use serde::Serialize;

use crate::error::ReadError;
use crate::op::OpHistory;

pub use edn::{parse as parse_edn, Edn};
pub use events::{history_from_events, EventHistoryBuilder, JsonlEvents};
pub use txn::{is_txn_history, read_txn_bytes, read_txn_path, read_txns_beside_ops, txn_kind};
pub use lines::{CHUNK_BYTES, LINE_BYTES_MAX};

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
    // A vector of maps, maps spread over lines, comments first.
    if edn_ops::looks_like_edn(head) {
        return Ok(Format::Edn);
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
        Format::Edn => match edn_lines::read_edn_lines(head, &mut file, threads)? {
            Some(history) => history,
            // Maps spread over lines: read the whole text form by form.
            None => {
                file.rewind()?;
                edn_ops::read_edn(&read_rest_utf8(Vec::new(), &mut file)?)?
            }
        },
    };
    Ok((format, history))
}

/// Reads a history held in memory.
pub fn read_bytes(bytes: &[u8], threads: usize) -> Result<(Format, OpHistory), ReadError> {
    let format = detect(bytes)?;
    let history = match format {
        Format::Jsonl => jsonl::read_jsonl(bytes.to_vec(), &mut std::io::empty(), threads)?,
        Format::JepsenLog => jepsen_log::read_jepsen_log(utf8(bytes)?)?,
        Format::Edn => match edn_lines::read_edn_lines(bytes.to_vec(), &mut std::io::empty(), threads)? {
            Some(history) => history,
            None => edn_ops::read_edn(utf8(bytes)?)?,
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Event, EventType, Process};
    use crate::op::RETURN_NEVER_NS;
    use crate::value::{Func, Outcome, Val};

    const JSONL: &str = r#"{"process":0,"type":"invoke","f":"write","key":"a","value":1,"time_ns":10}
{"process":"nemesis","type":"invoke","f":"partition","value":{"n1":["n2"]},"time_ns":11}

{"process":0,"type":"ok","f":"write","key":"a","value":1,"time_ns":20,"node":"n1"}
{"process":1,"type":"invoke","f":"write","key":"b","value":2,"time_ns":30}
{"process":1,"type":"fail","f":"write","key":"b","value":2,"time_ns":40,"error":"cas_mismatch"}
{"process":2,"type":"invoke","f":"cas","key":"a","value":[1,2],"time_ns":50}
{"process":2,"type":"info","f":"cas","key":"a","value":[1,2],"time_ns":60}
{"process":3,"type":"invoke","f":"read","key":"a","value":null,"time_ns":70}
"#;

    #[test]
    fn jsonl_pairs_events_and_applies_fail_and_info() {
        let (format, history) = read_bytes(JSONL.as_bytes(), 2).unwrap();
        assert_eq!(format, Format::Jsonl);
        assert_eq!(history.keys, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(history.nemesis_event_count, 1);
        let a = &history.ops_by_key[0];
        assert_eq!(a.len(), 3);
        assert_eq!((a[0].f, a[0].outcome, a[0].call_ns, a[0].return_ns), (Func::Write, Outcome::Ok, 10, 20));
        assert_eq!(a[1].input, Val::Ints(vec![1, 2].into()));
        assert_eq!((a[1].outcome, a[1].return_ns), (Outcome::Unknown, RETURN_NEVER_NS));
        // No completion at all: unknown too.
        assert_eq!((a[2].outcome, a[2].line), (Outcome::Unknown, 9));
        // fail = did not happen: dropped.
        assert!(history.ops_by_key[1].is_empty());
    }

    #[test]
    fn a_header_line_is_skipped_and_line_numbers_stay() {
        let header = serde_json::to_string(&crate::history::Header::new(1_764_800_000_000_000_000)).unwrap();
        assert_eq!(header, r#"{"history":"faultline","version":1,"start_unix_ns":1764800000000000000}"#);
        let with = format!("{header}\n{JSONL}");
        let (format, read) = read_bytes(with.as_bytes(), 2).unwrap();
        assert_eq!(format, Format::Jsonl);
        let (_, plain) = read_bytes(JSONL.as_bytes(), 2).unwrap();
        let line = |h: &OpHistory| h.ops_by_key[0].iter().map(|op| op.line).collect::<Vec<_>>();
        assert_eq!(line(&read), line(&plain).iter().map(|l| l + 1).collect::<Vec<_>>(), "lines count the header");
        let mut events = super::JsonlEvents::new(with.as_bytes());
        let (first_line, _) = events.next().unwrap().unwrap();
        assert_eq!(first_line, 2);
        assert_eq!(events.header().map(|h| h.start_unix_ns), Some(1_764_800_000_000_000_000));
        // Only the first line may be a header.
        let late = format!("{JSONL}{header}\n");
        assert!(matches!(read_bytes(late.as_bytes(), 1), Err(ReadError::BadLine { .. })));
    }

    #[test]
    fn jsonl_matches_the_event_schema() {
        let events: Vec<Event> = JSONL.lines().filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(events[1].process, Process::Nemesis);
        assert_eq!(events[2].kind, EventType::Ok);
        let from_events = history_from_events(&events).unwrap();
        let (_, from_text) = read_bytes(JSONL.as_bytes(), 1).unwrap();
        assert_eq!(from_events.op_count(), from_text.op_count());
        // Round trip: what the harness writes, the reader reads.
        let written: String = events.iter().map(|e| serde_json::to_string(e).unwrap() + "\n").collect();
        let (_, again) = read_bytes(written.as_bytes(), 1).unwrap();
        // Same operations; only line numbers differ (the text has a blank line).
        let without_lines = |h: &OpHistory| {
            h.ops_by_key.iter().flatten().map(|op| crate::op::Op { line: 0, ..op.clone() }).collect::<Vec<_>>()
        };
        assert_eq!(without_lines(&again), without_lines(&from_text));
    }

    /// Reads `text` in one pass, as the harness does: [`JsonlEvents`] into
    /// [`EventHistoryBuilder`]; the first error of either.
    fn streamed(text: &str) -> Result<OpHistory, ReadError> {
        let mut builder = EventHistoryBuilder::new();
        for item in JsonlEvents::new(text.as_bytes()) {
            let (line, event) = item?;
            builder.push(line, &event)?;
        }
        Ok(builder.finish())
    }

    /// Everything the checkers see of a history.
    fn parts(history: &OpHistory) -> (&[String], &[Vec<crate::op::Op>], u64, u64) {
        (&history.keys, &history.ops_by_key, history.event_count, history.nemesis_event_count)
    }

    /// Interleaved operations of 7 processes on 13 keys (one key escaped),
    /// every completion type, nemesis events, blank lines and `node` fields.
    fn mixed_history(op_count: u64) -> String {
        let line = |i: u64, kind: &str, time_ns: u64| {
            let (f, value) = match i % 3 {
                0 => ("put", format!("\"v{i}\"")),
                1 => ("get", "null".to_string()),
                _ => ("cas", format!("[{},{}]", i % 5, i % 4)),
            };
            let key = if i % 13 == 12 { "k\\u0041".to_string() } else { format!("k{}", i % 13) };
            format!(
                "{{\"process\":{},\"type\":\"{kind}\",\"f\":\"{f}\",\"key\":\"{key}\",\"value\":{value},\"time_ns\":{time_ns},\"node\":\"n2\"}}\n",
                i % 7
            )
        };
        let ends = ["ok", "ok", "fail", "info"];
        let mut text = String::new();
        for i in 0..op_count {
            text.push_str(&line(i, "invoke", 3 * i));
            if i % 50 == 0 {
                text.push_str(&format!("\n{{\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"kill\",\"value\":{{\"nodes\":[\"n1\"]}},\"time_ns\":{}}}\n", 3 * i));
            }
            // The previous operation completes after this one is invoked.
            if i > 0 {
                text.push_str(&line(i - 1, ends[(i % 4) as usize], 3 * i + 1));
            }
        }
        text
    }

    #[test]
    fn streamed_events_build_the_history_that_read_bytes_builds() {
        let (_, from_text) = read_bytes(JSONL.as_bytes(), 1).unwrap();
        assert_eq!(parts(&streamed(JSONL).unwrap()), parts(&from_text));
        // 1-based, and the blank line 3 is counted but not yielded.
        let lines: Vec<u32> = JsonlEvents::new(JSONL.as_bytes()).map(|item| item.unwrap().0).collect();
        assert_eq!(lines, [1, 2, 4, 5, 6, 7, 8, 9]);
        // Large enough for read_bytes to pair pieces on two threads.
        let text = mixed_history(20_000);
        let (_, from_text) = read_bytes(text.as_bytes(), 2).unwrap();
        assert!(from_text.op_count() > 10_000 && from_text.nemesis_event_count == 400);
        assert_eq!(from_text.keys.last().map(String::as_str), Some("kA"));
        assert_eq!(parts(&streamed(&text).unwrap()), parts(&from_text));
    }

    #[test]
    fn streamed_errors_name_the_line_as_read_bytes_does() {
        let good = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time_ns\":1}\n";
        let cases = [
            (format!("{good}\n{{\"process\":0,\"type\":\"done\",\"f\":\"read\",\"time_ns\":2}}\n"), 3),
            (format!("{good}{{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"time_ns\":2,\"extra\":1}}\n"), 2),
            ("{\"process\":\"bob\",\"type\":\"invoke\",\"f\":\"read\",\"time_ns\":1}\n".to_string(), 1),
            (format!("{good}\n\nnot json\n"), 4),
            (format!("{good}{{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"time_ns\":0}}\n"), 2),
            (format!("\n{good}{good}"), 3),
            ("{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"time_ns\":1}\n".to_string(), 1),
        ];
        for (text, want_line) in cases {
            let want = read_bytes(text.as_bytes(), 1).unwrap_err();
            let got = streamed(&text).unwrap_err();
            assert_eq!(got.to_string(), want.to_string(), "{text}");
            let line = match got {
                ReadError::BadLine { line, .. } | ReadError::Pairing { line, .. } => line,
                other => panic!("{text}: expected a line's error, got {other:?}"),
            };
            assert_eq!(line, want_line, "{text}");
        }
    }

    #[test]
    fn a_line_over_the_bound_is_an_error_not_a_buffer() {
        let first = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time_ns\":1}\n";
        let event = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"time_ns\":2}";
        // An event padded with spaces to exactly LINE_BYTES_MAX bytes is a
        // line; one byte more is not.
        let padded = |len: usize| format!("{first}{event}{}\n", " ".repeat(len - event.len()));
        let history = streamed(&padded(LINE_BYTES_MAX)).unwrap();
        assert_eq!(history.op_count(), 2);
        match streamed(&padded(LINE_BYTES_MAX + 1)) {
            Err(ReadError::BadLine { line: 2, message }) => assert!(message.contains("too long"), "{message}"),
            other => panic!("expected line 2 too long, got {other:?}"),
        }
        // Endless input without a line end: an error at the bound, then the end.
        let mut endless = JsonlEvents::new(std::io::BufReader::new(std::io::repeat(b' ')));
        assert!(matches!(endless.next(), Some(Err(ReadError::BadLine { line: 1, .. }))));
        assert!(endless.next().is_none());
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let cases = [
            ("{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time_ns\":1}\n{\"process\":0,\"type\":\"done\",\"f\":\"read\",\"time_ns\":2}\n", 2),
            ("{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time_ns\":1,\"extra\":1}\n", 1),
            ("{\"process\":\"bob\",\"type\":\"invoke\",\"f\":\"read\",\"time_ns\":1}\n", 1),
            ("{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time_ns\":1}\nnot json\n", 2),
        ];
        for (text, want) in cases {
            match read_bytes(text.as_bytes(), 1) {
                Err(ReadError::BadLine { line, message }) => {
                    assert_eq!(line, want, "{text}");
                    assert!(!message.contains("at line"), "{message}");
                }
                other => panic!("{text}: expected a bad line, got {other:?}"),
            }
        }
        let backwards = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time_ns\":9}\n{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"time_ns\":2}\n";
        assert!(matches!(read_bytes(backwards.as_bytes(), 1), Err(ReadError::Pairing { line: 2, .. })));
        let unpaired = "{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"time_ns\":1}\n";
        assert!(matches!(read_bytes(unpaired.as_bytes(), 1), Err(ReadError::Pairing { line: 1, .. })));
        let twice = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time_ns\":1}\n{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time_ns\":2}\n";
        assert!(matches!(read_bytes(twice.as_bytes(), 1), Err(ReadError::Pairing { line: 2, .. })));
    }

    #[test]
    fn jsonl_in_parallel_chunks_keeps_order_and_line_numbers() {
        let mut text = String::new();
        for i in 0..20_000u64 {
            text.push_str(&format!("{{\"process\":{},\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k{}\",\"value\":\"v{i}\",\"time_ns\":{}}}\n", i % 7, i % 13, 2 * i));
            text.push_str(&format!("{{\"process\":{},\"type\":\"ok\",\"f\":\"put\",\"key\":\"k{}\",\"value\":\"v{i}\",\"time_ns\":{}}}\n", i % 7, i % 13, 2 * i + 1));
        }
        text.push_str("{\"process\":1,\"type\":\"invoke\",\"f\":\"get\",\"time_ns\":\"late\"}\n");
        match read_bytes(text.as_bytes(), 2) {
            Err(ReadError::BadLine { line, .. }) => assert_eq!(line, 40_001),
            other => panic!("expected a bad line, got {other:?}"),
        }
        let good = &text[..text.rfind("{\"process\":1,\"type\":\"invoke\",\"f\":\"get\"").unwrap()];
        let (_, history) = read_bytes(good.as_bytes(), 2).unwrap();
        assert_eq!(history.op_count(), 20_000);
        let first = &history.ops_by_key[0][1];
        assert_eq!((first.line, first.input.clone()), (27, Val::Str("v13".into())));
    }

    #[test]
    fn edn_maps_are_read() {
        let text = "{:process 0, :type :invoke, :f :append, :key \"4\", :value \"x 0 1 y\"}\n\
                    {:process 0, :type :ok, :f :append, :key \"4\", :value \"x 0 1 y\"}\n\
                    {:process :nemesis, :type :info, :f :start, :value [:n1 :n2]}\n\
                    {:process 3, :type :invoke, :f :get, :key \"4\", :value nil}\n\
                    {:process 3, :type :ok, :f :get, :key \"4\", :value \"x 0 1 y\", :time 123}\n";
        let (format, history) = read_bytes(text.as_bytes(), 1).unwrap();
        assert_eq!(format, Format::Edn);
        let ops = &history.ops_by_key[0];
        assert_eq!(history.keys[0], "4");
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[1].output, Val::Str("x 0 1 y".into()));
        assert_eq!(history.nemesis_event_count, 1);
    }

    /// 4,000 operations on 7 keys, one map a line (about 500 KB: past the
    /// size at which the line reader splits a block between threads), some
    /// lines in the full parser's shapes only (escapes, a float, a set).
    fn edn_lines(ops: u32) -> String {
        let mut text = String::new();
        for i in 0..ops {
            let (key, process) = (i % 7, i % 5);
            let value = match i % 10 {
                0 => "\"a\\\"b\"".to_string(),
                1 => "1.5".to_string(),
                2 => "#{1 2}".to_string(),
                _ => format!("\"v{i}\""),
            };
            text.push_str(&format!("{{:process {process}, :type :invoke, :f :put, :key \"{key}\", :value {value}, :time {i}}}\n"));
            text.push_str(&format!("{{:process {process} :type :ok :f :put :key \"{key}\" :value {value}}}\n"));
        }
        text
    }

    #[test]
    fn edn_lines_read_on_threads_match_the_form_reader() {
        let text = edn_lines(4_000);
        let (_, by_lines) = read_bytes(text.as_bytes(), 3).unwrap();
        let by_forms = edn_ops::read_edn(&format!("[{text}]")).unwrap();
        assert_eq!(by_lines.op_count(), 4_000);
        assert_eq!(by_lines.keys, by_forms.keys);
        // Times differ (line numbers against ordinals); everything else not.
        for (a, b) in by_lines.ops_by_key.iter().flatten().zip(by_forms.ops_by_key.iter().flatten()) {
            assert_eq!((a.process, a.f, &a.input, &a.output, a.outcome, a.line), (b.process, b.f, &b.input, &b.output, b.outcome, b.line));
        }
    }

    #[test]
    fn a_map_spread_over_lines_late_in_the_file_is_read_as_forms() {
        let mut text = edn_lines(4_000);
        text.push_str("{:process 1, :type :invoke,\n :f :get, :key \"1\", :value nil}\n");
        let (format, history) = read_bytes(text.as_bytes(), 2).unwrap();
        assert_eq!(format, Format::Edn);
        assert_eq!(history.op_count(), 4_001);
        let path = std::env::temp_dir().join(format!("faultline-edn-spread-{}.edn", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let from_file = read_path(&path, 2);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(from_file.unwrap().1.op_count(), 4_001);
    }

    #[test]
    fn edn_errors_name_the_line() {
        let text = "{:process 0, :type :invoke, :f :get, :key \"4\", :value nil}\n{:process 0, :type :ok, :f :get, :key \"4\", :value \"x}\n";
        assert!(matches!(read_bytes(text.as_bytes(), 1), Err(ReadError::BadLine { line: 2, .. })));
        let text = "{:process 0, :type :what, :f :get}\n";
        assert!(matches!(read_bytes(text.as_bytes(), 1), Err(ReadError::BadLine { line: 1, .. })));
        assert_eq!(parse_edn("[1 2 {:a \"b\\\"c\"}]").unwrap(), Edn::Vector(vec![
            Edn::Int(1),
            Edn::Int(2),
            Edn::Map(vec![(Edn::Keyword("a".into()), Edn::Str("b\"c".into()))]),
        ]));
        assert!(parse_edn("[1 2").is_err());
        assert!(parse_edn("1 2").is_err());
    }

    #[test]
    fn format_detection() {
        assert_eq!(detect(b"\n  {\"process\":1}").unwrap(), Format::Jsonl);
        assert_eq!(detect(b"{:process 1}").unwrap(), Format::Edn);
        assert_eq!(detect(b"2017 INFO jepsen.core - start\nINFO  jepsen.util - 1\t:invoke\t:read\tnil\n").unwrap(), Format::JepsenLog);
        assert!(matches!(detect(b"hello"), Err(ReadError::UnknownFormat)));
        assert!(matches!(detect(b"\n \n"), Err(ReadError::Empty)));
    }
}
