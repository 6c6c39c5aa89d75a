//! What the report draws: every operation paired invoke → completion per
//! process, the nemesis faults in force over time, and the counts. Built
//! from the events of the one pass over `history.jsonl` that also feeds the
//! checks ([`TimelineBuilder`]), or from a parsed history of any format
//! ([`Timeline::from_ops`]). The verdict never comes from here, only the
//! pictures.
use std::collections::HashMap;
use std::path::Path;

use faultline_checkers::read::JsonlEvents;
use faultline_checkers::{Event, EventType, Header, OpHistory, Process, ReadError};

use crate::results::Counts;

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

/// The cluster's members from `at_ns` on, as a membership fault or heal
/// left them (its effect's `members` and `learners`).
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipMark {
    pub at_ns: u64,
    pub members: Vec<String>,
    pub learners: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Timeline {
    /// In invocation order, which is line order.
    pub ops: Vec<OpRow>,
    pub spans: Vec<Span>,
    /// Membership over time, when the nemesis changed it.
    pub membership: Vec<MembershipMark>,
    /// Each node's clock over time, when the clock nemesis moved it.
    pub clocks: Vec<super::clocks::ClockMark>,
    pub keys: Vec<String>,
    pub fs: Vec<String>,
    pub first_ns: u64,
    pub last_ns: u64,
    pub counts: Counts,
    /// The wall-clock time of `time_ns` 0, from the history's header.
    pub start_unix_ns: Option<u64>,
    /// The host each node ran on, by node name, from the header (empty
    /// when the nodes ran on this machine).
    pub hosts: std::collections::BTreeMap<String, String>,
    /// Why the history could not be read to its end (a torn last line of a
    /// run that was killed, or a file that is not faultline JSONL).
    pub unread: Option<String>,
}

impl Timeline {
    /// Milliseconds since the first event.
    pub fn ms(&self, ns: u64) -> f64 {
        ns.saturating_sub(self.first_ns) as f64 / 1e6
    }

    /// The operation invoked on `line`.
    pub fn op_at_line(&self, line: u32) -> Option<&OpRow> {
        self.ops.binary_search_by_key(&line, |op| op.line).ok().map(|index| &self.ops[index])
    }

    /// The index in `ops` of the operation invoked on `line`.
    pub fn index_of_line(&self, line: u32) -> Option<usize> {
        self.ops.binary_search_by_key(&line, |op| op.line).ok()
    }

    /// The wall-clock time of `ns`, for lining the history up with logs.
    pub fn wall_clock(&self, ns: u64) -> Option<String> {
        let unix_ns = self.start_unix_ns?.checked_add(ns)?;
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(unix_ns);
        Some(humantime::format_rfc3339_millis(at).to_string())
    }

    /// Names of the faults in force at `ns`.
    pub fn faults_at(&self, ns: u64) -> Vec<&str> {
        self.spans.iter().filter(|s| s.start_ns <= ns && ns <= s.end_ns).map(|s| s.name.as_str()).collect()
    }

    /// Reads a faultline history file in one pass with the checkers' reader.
    /// What cannot be read (from the first bad line on) is noted, not fatal:
    /// the page still shows what came before.
    pub fn read(path: &Path) -> std::io::Result<Timeline> {
        let file = std::fs::File::open(path)?;
        let mut builder = TimelineBuilder::default();
        let mut events = JsonlEvents::new(std::io::BufReader::with_capacity(1 << 20, file));
        for item in events.by_ref() {
            match item {
                Ok((line, event)) => builder.push(line, &event),
                Err(error) => {
                    builder.unread(&error);
                    break;
                }
            }
        }
        builder.started(events.header());
        Ok(builder.finish())
    }

    /// The operations of a parsed history (any format the checkers read);
    /// it has no nemesis events and no failed operations to draw.
    pub fn from_ops(history: &OpHistory) -> Timeline {
        let mut timeline = Timeline { keys: history.keys.clone(), ..Timeline::default() };
        let mut f_index = HashMap::new();
        for (key, ops) in history.ops_by_key.iter().enumerate() {
            for op in ops {
                let f = intern(&mut f_index, &mut timeline.fs, op.f.name());
                let open = op.return_ns == faultline_checkers::op::RETURN_NEVER_NS;
                let outcome = match op.outcome {
                    _ if open => Outcome::Open,
                    faultline_checkers::Outcome::Ok => Outcome::Ok,
                    faultline_checkers::Outcome::Failed => Outcome::Fail,
                    faultline_checkers::Outcome::Unknown => Outcome::Info,
                };
                let text = op.describe();
                let short = text.split(" (line").next().unwrap_or(&text);
                timeline.ops.push(OpRow {
                    process: op.process,
                    key: key as u32,
                    f,
                    call_ns: op.call_ns,
                    return_ns: (!open).then_some(op.return_ns),
                    outcome,
                    line: op.line,
                    text: cut(short).into_boxed_str(),
                });
            }
        }
        timeline.ops.sort_by_key(|op| op.line);
        timeline.first_ns = timeline.ops.iter().map(|op| op.call_ns).min().unwrap_or(0);
        timeline.last_ns = timeline.ops.iter().filter_map(|op| op.return_ns.or(Some(op.call_ns))).max().unwrap_or(0);
        timeline.counts.invoke = timeline.ops.len() as u64;
        timeline
    }
}

/// Builds a timeline from events pushed in history order.
#[derive(Default)]
pub struct TimelineBuilder {
    timeline: Timeline,
    pending: HashMap<u64, usize>,
    key_index: HashMap<String, u32>,
    f_index: HashMap<String, u32>,
    open_faults: Vec<Span>,
    seen_first: bool,
}

impl TimelineBuilder {
    pub fn push(&mut self, line: u32, event: &Event) {
        if !self.seen_first {
            self.timeline.first_ns = event.time_ns;
            self.seen_first = true;
        }
        self.timeline.last_ns = self.timeline.last_ns.max(event.time_ns);
        self.count(event);
        match event.process {
            Process::Nemesis => self.push_nemesis(event),
            Process::Client(process) => self.push_client(process, event, line),
        }
    }

    /// The history's header, when it had one.
    pub fn started(&mut self, header: Option<Header>) {
        self.timeline.start_unix_ns = header.as_ref().map(|header| header.start_unix_ns);
        self.timeline.hosts = header.map(|header| header.hosts).unwrap_or_default();
    }

    /// The reader stopped at `error`.
    pub fn unread(&mut self, error: &ReadError) {
        self.timeline.unread = Some(error.to_string());
    }

    fn count(&mut self, event: &Event) {
        let counts = &mut self.timeline.counts;
        let counter = match (event.process, event.kind) {
            (Process::Nemesis, EventType::Invoke) => &mut counts.nemesis,
            (Process::Nemesis, _) => return,
            (_, EventType::Invoke) => &mut counts.invoke,
            (_, EventType::Ok) => &mut counts.ok,
            (_, EventType::Fail) => &mut counts.fail,
            (_, EventType::Info) => &mut counts.info,
        };
        *counter += 1;
    }

    fn push_client(&mut self, process: u64, event: &Event, line: u32) {
        if event.kind == EventType::Invoke {
            let key = intern(&mut self.key_index, &mut self.timeline.keys, event.key.as_deref().unwrap_or(""));
            let f = intern(&mut self.f_index, &mut self.timeline.fs, &event.f);
            let text = format!("{} {}", event.f, value_text(&event.value));
            let index = self.timeline.ops.len();
            self.timeline.ops.push(OpRow {
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
            return;
        }
        let Some(index) = self.pending.remove(&process) else { return };
        let op = &mut self.timeline.ops[index];
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

    fn push_nemesis(&mut self, event: &Event) {
        // `heal-<family>` (a concurrent schedule) ends that family's faults
        // only (`<family>-<target>`, or the family's one fault named as the
        // family: `revote`, a custom fault); `heal` and `final-heal` end
        // them all.
        let family = event.f.strip_prefix("heal-");
        let heal = event.f == "heal" || event.f == "final-heal" || family.is_some();
        match (event.kind, heal) {
            (EventType::Invoke, false) => {
                self.open_faults.push(Span { name: event.f.clone(), start_ns: event.time_ns, end_ns: event.time_ns });
            }
            // A heal ends its faults at its completion; an injection that
            // failed (info) ends its own fault.
            (EventType::Invoke, true) => {}
            (_, true) => match &family {
                Some(family) => self.close_faults(|s| in_family(&s.name, family), event.time_ns),
                None => self.close_faults(|_| true, event.time_ns),
            },
            (EventType::Info | EventType::Fail, false) => self.close_faults(|s| s.name == event.f, event.time_ns),
            (EventType::Ok, false) => {}
        }
        if event.kind == EventType::Ok {
            self.push_membership(event);
            self.timeline.clocks.extend(super::clocks::marks_of(event));
        }
    }

    /// A nemesis effect that says who the members are (a membership fault,
    /// or a heal of several families, one of which did).
    fn push_membership(&mut self, event: &Event) {
        let names = |value: &serde_json::Value| -> Vec<String> {
            value.as_array().map(|names| names.iter().filter_map(|n| n.as_str().map(String::from)).collect()).unwrap_or_default()
        };
        let effects = match &event.value {
            serde_json::Value::Array(effects) => effects.iter().collect(),
            effect => vec![effect],
        };
        let Some(effect) = effects.into_iter().rev().find(|effect| effect["members"].is_array()) else { return };
        let mark = MembershipMark { at_ns: event.time_ns, members: names(&effect["members"]), learners: names(&effect["learners"]) };
        self.timeline.membership.push(mark);
    }

    fn close_faults(&mut self, which: impl Fn(&Span) -> bool, end_ns: u64) {
        let (closed, open): (Vec<Span>, Vec<Span>) = self.open_faults.drain(..).partition(|s| which(s));
        self.open_faults = open;
        for mut span in closed {
            span.end_ns = end_ns;
            self.timeline.spans.push(span);
        }
    }

    pub fn finish(mut self) -> Timeline {
        let end = self.timeline.last_ns;
        self.close_faults(|_| true, end);
        self.timeline.spans.sort_by_key(|s| s.start_ns);
        self.timeline
    }
}

fn in_family(fault: &str, family: &str) -> bool {
    fault == family || fault.strip_prefix(family).is_some_and(|rest| rest.starts_with('-'))
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

fn value_text(value: &serde_json::Value) -> String {
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
pub(crate) mod tests {
    use super::*;

    /// A timeline of JSONL lines; a line that is not an event ends it.
    pub(crate) fn timeline(lines: &[&str]) -> Timeline {
        let text = lines.join("\n");
        let mut builder = TimelineBuilder::default();
        for item in JsonlEvents::new(text.as_bytes()) {
            match item {
                Ok((line, event)) => builder.push(line, &event),
                Err(error) => {
                    builder.unread(&error);
                    break;
                }
            }
        }
        builder.finish()
    }

    #[test]
    fn pairs_ops_per_process_and_shades_faults_until_heal() {
        let t = timeline(&[
            r#"{"process":0,"type":"invoke","f":"write","key":"a","value":1,"time_ns":1000}"#,
            r#"{"process":"nemesis","type":"invoke","f":"kill-leader","value":null,"time_ns":1500}"#,
            r#"{"process":1,"type":"invoke","f":"read","key":"a","value":null,"time_ns":2000}"#,
            r#"{"process":0,"type":"info","f":"write","key":"a","value":null,"time_ns":3000,"error":"timeout"}"#,
            r#"{"process":"nemesis","type":"ok","f":"heal","value":null,"time_ns":4000}"#,
            "not json",
        ]);
        assert_eq!(t.ops.len(), 2);
        assert_eq!(t.ops[0].outcome, Outcome::Info);
        assert_eq!(&*t.ops[0].text, "write 1 -> info (timeout)");
        assert_eq!(t.ops[1].outcome, Outcome::Open);
        assert_eq!(t.op_at_line(3).map(|op| op.process), Some(1));
        assert!(t.op_at_line(2).is_none(), "line 2 is the nemesis");
        assert_eq!(t.spans, vec![Span { name: "kill-leader".into(), start_ns: 1500, end_ns: 4000 }]);
        assert_eq!(t.faults_at(2000), vec!["kill-leader"]);
        assert!(t.faults_at(4500).is_empty());
        assert!(t.unread.as_deref().is_some_and(|why| why.contains("line 6")), "{:?}", t.unread);
        assert_eq!(t.counts, Counts { invoke: 2, ok: 0, fail: 0, info: 1, nemesis: 1 });
        assert_eq!(t.ms(3000), 0.002);
    }

    #[test]
    fn a_family_heal_ends_only_that_familys_faults() {
        let t = timeline(&[
            r#"{"process":"nemesis","type":"invoke","f":"partition-halves","value":null,"time_ns":1000}"#,
            r#"{"process":"nemesis","type":"invoke","f":"kill-leader","value":null,"time_ns":2000}"#,
            r#"{"process":"nemesis","type":"ok","f":"heal-kill","value":null,"time_ns":3000}"#,
            r#"{"process":"nemesis","type":"ok","f":"heal-partition","value":null,"time_ns":5000}"#,
            r#"{"process":"nemesis","type":"invoke","f":"revote","value":null,"time_ns":6000}"#,
            r#"{"process":"nemesis","type":"ok","f":"heal-revote","value":null,"time_ns":7000}"#,
            r#"{"process":"nemesis","type":"invoke","f":"kill-random","value":null,"time_ns":8000}"#,
        ]);
        assert_eq!(t.faults_at(2500), vec!["partition-halves", "kill-leader"]);
        assert_eq!(t.faults_at(4000), vec!["partition-halves"], "heal-kill left the partition in force");
        assert!(t.faults_at(5500).is_empty());
        assert_eq!(t.faults_at(6500), vec!["revote"]);
        assert!(t.faults_at(7500).is_empty(), "heal-revote ends the fault named as its family");
    }

    #[test]
    fn membership_effects_become_marks() {
        let t = timeline(&[
            r#"{"process":"nemesis","type":"invoke","f":"membership-add","value":null,"time_ns":1000}"#,
            r#"{"process":"nemesis","type":"ok","f":"membership-add","value":{"added":"n4","members":["n1","n2","n3","n4"],"learners":["n4"]},"time_ns":2000}"#,
            r#"{"process":"nemesis","type":"ok","f":"heal","value":["nothing to heal",{"membership":[],"members":["n2","n3","n4"],"learners":[]}],"time_ns":3000}"#,
            r#"{"process":"nemesis","type":"ok","f":"kill-leader","value":{"killed":["n2"]},"time_ns":4000}"#,
            r#"{"process":"nemesis","type":"info","f":"membership-remove","value":null,"time_ns":5000,"error":"refused"}"#,
        ]);
        let names = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            t.membership,
            vec![
                MembershipMark { at_ns: 2000, members: names(&["n1", "n2", "n3", "n4"]), learners: names(&["n4"]) },
                MembershipMark { at_ns: 3000, members: names(&["n2", "n3", "n4"]), learners: Vec::new() },
            ],
            "a heal of several families counts; other faults and failures do not"
        );
    }

    #[test]
    fn a_parsed_history_of_any_format_draws_its_operations() {
        let text = "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write, :value 1}\n\
                    {:process 1, :type :invoke, :f :read, :value nil}\n";
        let (_, history) = faultline_checkers::read::read_bytes(text.as_bytes(), 1).unwrap();
        let t = Timeline::from_ops(&history);
        assert_eq!(t.ops.len(), 2);
        assert_eq!((t.ops[0].outcome, t.ops[1].outcome), (Outcome::Ok, Outcome::Open));
        assert_eq!(t.op_at_line(3).map(|op| op.process), Some(1));
    }
}
