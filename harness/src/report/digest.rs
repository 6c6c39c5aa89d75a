//! One streaming pass over `history.jsonl`: operations paired invoke →
//! completion per process, nemesis fault intervals, and the operations the
//! checkers point at (looked up by line). Lines that are not faultline
//! events (Jepsen formats, torn last line) are counted and skipped: the
//! verdict never comes from here, only the pictures.
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;

use faultline_checkers::{EventType, Process};
use serde::Deserialize;
use serde_json::Value;

use super::ReportError;

/// An operation's value as shown on hover is cut to this many characters.
const VALUE_TEXT_MAX: usize = 48;
/// Distinct keys and functions kept by name; the rest share one slot.
const NAMES_MAX: usize = 10_000;

/// How an operation ended. `Open` never completed (the run ended first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail,
    Info,
    Open,
}

impl Outcome {
    /// The code the page's script uses: 0 ok, 1 fail, 2 info or open.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Fail => 1,
            Outcome::Info | Outcome::Open => 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct OpRow {
    pub process: u64,
    pub key: u32,
    pub f: u32,
    pub call_ns: u64,
    /// Completion time; `None` while open.
    pub return_ns: Option<u64>,
    pub outcome: Outcome,
    /// 1-based line of the invocation.
    pub line: u32,
    /// `f value -> result`, short.
    pub text: Box<str>,
}

/// A fault in force from its injection until the next heal.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
}

#[derive(Debug, Default)]
pub struct Digest {
    /// In invocation order.
    pub ops: Vec<OpRow>,
    pub spans: Vec<Span>,
    pub keys: Vec<String>,
    pub fs: Vec<String>,
    pub first_ns: u64,
    pub last_ns: u64,
    pub skipped_lines: u64,
    /// Invocation line → index in `ops`, for the lines asked for.
    pub by_line: HashMap<u32, usize>,
}

impl Digest {
    /// Milliseconds since the first event.
    pub fn ms(&self, ns: u64) -> f64 {
        ns.saturating_sub(self.first_ns) as f64 / 1e6
    }

    /// The operation invoked on `line`, if the digest kept it.
    pub fn op_at_line(&self, line: u32) -> Option<&OpRow> {
        self.by_line.get(&line).map(|&index| &self.ops[index])
    }

    /// Names of the faults in force at `ns`.
    pub fn faults_at(&self, ns: u64) -> Vec<&str> {
        self.spans.iter().filter(|s| s.start_ns <= ns && ns <= s.end_ns).map(|s| s.name.as_str()).collect()
    }
}

#[derive(Deserialize)]
struct Line {
    process: Process,
    #[serde(rename = "type")]
    kind: EventType,
    f: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Value,
    time_ns: u64,
    #[serde(default)]
    error: Option<String>,
}

/// Reads a history file; `wanted` are invocation lines to index.
pub fn read_history(path: &Path, wanted: &HashSet<u32>) -> Result<Digest, ReportError> {
    let file = std::fs::File::open(path).map_err(|source| ReportError::Read { path: path.to_path_buf(), source })?;
    let mut builder = Builder::new(wanted);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buffer = String::new();
    let mut line_no: u32 = 0;
    loop {
        buffer.clear();
        let read = reader
            .read_line(&mut buffer)
            .map_err(|source| ReportError::Read { path: path.to_path_buf(), source })?;
        if read == 0 {
            break;
        }
        line_no = line_no.saturating_add(1);
        builder.push(buffer.trim_end(), line_no);
    }
    Ok(builder.finish())
}

/// Builds a digest from lines; also used by tests on in-memory text.
pub struct Builder<'w> {
    digest: Digest,
    wanted: &'w HashSet<u32>,
    pending: HashMap<u64, usize>,
    key_index: HashMap<String, u32>,
    f_index: HashMap<String, u32>,
    open_faults: Vec<Span>,
    seen_first: bool,
}

impl<'w> Builder<'w> {
    pub fn new(wanted: &'w HashSet<u32>) -> Self {
        Builder {
            digest: Digest::default(),
            wanted,
            pending: HashMap::new(),
            key_index: HashMap::new(),
            f_index: HashMap::new(),
            open_faults: Vec::new(),
            seen_first: false,
        }
    }

    pub fn push(&mut self, text: &str, line: u32) {
        if text.is_empty() {
            return;
        }
        let Ok(event) = serde_json::from_str::<Line>(text) else {
            self.digest.skipped_lines += 1;
            return;
        };
        if !self.seen_first {
            self.digest.first_ns = event.time_ns;
            self.seen_first = true;
        }
        self.digest.last_ns = self.digest.last_ns.max(event.time_ns);
        match event.process {
            Process::Nemesis => self.push_nemesis(&event),
            Process::Client(process) => self.push_client(process, event, line),
        }
    }

    fn push_client(&mut self, process: u64, event: Line, line: u32) {
        if event.kind == EventType::Invoke {
            let key = intern(&mut self.key_index, &mut self.digest.keys, event.key.as_deref().unwrap_or(""));
            let f = intern(&mut self.f_index, &mut self.digest.fs, &event.f);
            let text = format!("{} {}", event.f, value_text(&event.value));
            let index = self.digest.ops.len();
            self.digest.ops.push(OpRow {
                process,
                key,
                f,
                call_ns: event.time_ns,
                return_ns: None,
                outcome: Outcome::Open,
                line,
                text: text.into_boxed_str(),
            });
            // An invoke while one is open: the old one stays open (a broken
            // history; the checkers report it, the picture shows it).
            self.pending.insert(process, index);
            if self.wanted.contains(&line) {
                self.digest.by_line.insert(line, index);
            }
            return;
        }
        let Some(index) = self.pending.remove(&process) else {
            self.digest.skipped_lines += 1;
            return;
        };
        let op = &mut self.digest.ops[index];
        op.return_ns = Some(event.time_ns);
        op.outcome = match event.kind {
            EventType::Ok => Outcome::Ok,
            EventType::Fail => Outcome::Fail,
            _ => Outcome::Info,
        };
        let result = match (&event.kind, &event.error) {
            (EventType::Ok, _) => value_text(&event.value),
            (_, Some(error)) => format!("{} ({})", outcome_name(event.kind), cut(error)),
            (_, None) => outcome_name(event.kind).to_string(),
        };
        op.text = format!("{} -> {}", op.text, result).into_boxed_str();
    }

    fn push_nemesis(&mut self, event: &Line) {
        // `heal-<family>` (a concurrent schedule) ends that family's faults
        // only; `heal` and `final-heal` end them all.
        let family = event.f.strip_prefix("heal-").map(|family| format!("{family}-"));
        let heal = event.f == "heal" || event.f == "final-heal" || family.is_some();
        match (event.kind, heal) {
            (EventType::Invoke, false) => {
                self.open_faults.push(Span { name: event.f.clone(), start_ns: event.time_ns, end_ns: event.time_ns });
            }
            // A heal ends its faults at its completion; an injection that
            // failed (info) ends its own fault.
            (EventType::Invoke, true) => {}
            (_, true) => match &family {
                Some(prefix) => self.close_faults(|s| s.name.starts_with(prefix.as_str()), event.time_ns),
                None => self.close_faults(|_| true, event.time_ns),
            },
            (EventType::Info | EventType::Fail, false) => self.close_faults(|s| s.name == event.f, event.time_ns),
            (EventType::Ok, false) => {}
        }
    }

    fn close_faults(&mut self, which: impl Fn(&Span) -> bool, end_ns: u64) {
        let (closed, open): (Vec<Span>, Vec<Span>) = self.open_faults.drain(..).partition(|s| which(s));
        self.open_faults = open;
        for mut span in closed {
            span.end_ns = end_ns;
            self.digest.spans.push(span);
        }
    }

    pub fn finish(mut self) -> Digest {
        let end = self.digest.last_ns;
        self.close_faults(|_| true, end);
        self.digest.spans.sort_by_key(|s| s.start_ns);
        self.digest
    }
}

fn intern(index: &mut HashMap<String, u32>, names: &mut Vec<String>, name: &str) -> u32 {
    if let Some(&id) = index.get(name) {
        return id;
    }
    if names.len() >= NAMES_MAX {
        return (NAMES_MAX - 1) as u32;
    }
    let id = names.len() as u32;
    names.push(name.to_string());
    index.insert(name.to_string(), id);
    id
}

fn outcome_name(kind: EventType) -> &'static str {
    match kind {
        EventType::Invoke => "invoke",
        EventType::Ok => "ok",
        EventType::Fail => "fail",
        EventType::Info => "info",
    }
}

fn value_text(value: &Value) -> String {
    cut(&value.to_string())
}

fn cut(text: &str) -> String {
    if text.chars().count() <= VALUE_TEXT_MAX {
        return text.to_string();
    }
    let head: String = text.chars().take(VALUE_TEXT_MAX).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(lines: &[&str], wanted: &[u32]) -> Digest {
        let wanted: HashSet<u32> = wanted.iter().copied().collect();
        let mut builder = Builder::new(&wanted);
        for (i, line) in lines.iter().enumerate() {
            builder.push(line, i as u32 + 1);
        }
        builder.finish()
    }

    #[test]
    fn pairs_ops_per_process_and_shades_faults_until_heal() {
        let d = digest(
            &[
                r#"{"process":0,"type":"invoke","f":"write","key":"a","value":1,"time_ns":1000}"#,
                r#"{"process":"nemesis","type":"invoke","f":"kill-leader","value":null,"time_ns":1500}"#,
                r#"{"process":1,"type":"invoke","f":"read","key":"a","value":null,"time_ns":2000}"#,
                r#"{"process":0,"type":"info","f":"write","key":"a","value":null,"time_ns":3000,"error":"timeout"}"#,
                r#"{"process":"nemesis","type":"ok","f":"heal","value":null,"time_ns":4000}"#,
                "not json",
            ],
            &[3],
        );
        assert_eq!(d.ops.len(), 2);
        assert_eq!(d.ops[0].outcome, Outcome::Info);
        assert_eq!(&*d.ops[0].text, "write 1 -> info (timeout)");
        assert_eq!(d.ops[1].outcome, Outcome::Open);
        assert_eq!(d.op_at_line(3).map(|op| op.process), Some(1));
        assert!(d.op_at_line(1).is_none(), "only wanted lines are indexed");
        assert_eq!(d.spans, vec![Span { name: "kill-leader".into(), start_ns: 1500, end_ns: 4000 }]);
        assert_eq!(d.faults_at(2000), vec!["kill-leader"]);
        assert!(d.faults_at(4500).is_empty());
        assert_eq!(d.skipped_lines, 1);
        assert_eq!(d.ms(3000), 0.002);
    }

    #[test]
    fn a_family_heal_ends_only_that_familys_faults() {
        let d = digest(
            &[
                r#"{"process":"nemesis","type":"invoke","f":"partition-halves","value":null,"time_ns":1000}"#,
                r#"{"process":"nemesis","type":"invoke","f":"kill-leader","value":null,"time_ns":2000}"#,
                r#"{"process":"nemesis","type":"ok","f":"heal-kill","value":null,"time_ns":3000}"#,
                r#"{"process":"nemesis","type":"ok","f":"heal-partition","value":null,"time_ns":5000}"#,
            ],
            &[],
        );
        assert_eq!(d.faults_at(2500), vec!["partition-halves", "kill-leader"]);
        assert_eq!(d.faults_at(4000), vec!["partition-halves"], "heal-kill left the partition in force");
        assert!(d.faults_at(5500).is_empty());
    }
}
