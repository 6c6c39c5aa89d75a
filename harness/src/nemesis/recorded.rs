//! `schedule.jsonl`: what a run's nemesis did, one JSON object per line,
//! written into every results folder and read back by `faultline test
//! --schedule FILE`, which follows it instead of drawing a schedule.
//!
//! The first line says what the schedule was recorded with (seed, nodes,
//! time limit, the workload's generator parameters); every other line is
//! one fault: when it started (`at_ms`, from the history's time zero), how
//! long it was meant to last, the nodes or the grudge it hit, and the node
//! the system named leader at that moment, so a replay can aim at the same
//! roles. Hand-written files may leave out the header, `group`, the
//! targets (the nemesis then draws them) and `leader`.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{node_name, Fault, FaultFamily, Targets};

mod line;
use line::{event_of, EventLine};

/// The file name inside a results folder.
pub const SCHEDULE_FILE: &str = "schedule.jsonl";
/// The format this version writes and reads.
pub const SCHEDULE_VERSION: u32 = 1;
/// Fault events one file may hold.
pub const EVENTS_MAX: usize = 100_000;
/// The group of a schedule that injects one fault at a time.
pub const ONE_AT_A_TIME: &str = "all";

#[derive(Debug, thiserror::Error)]
pub enum ScheduleFileError {
    #[error("cannot read schedule {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write schedule {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("schedule {path} line {line}: {message}")]
    Line { path: PathBuf, line: usize, message: String },
    #[error("schedule {path}: {message}")]
    File { path: PathBuf, message: String },
}

/// The first line: what the schedule was recorded with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleHeader {
    pub schedule_version: u32,
    pub seed: u64,
    pub system: String,
    pub nodes: usize,
    pub time_limit_ms: u64,
    pub concurrent: bool,
    /// The workload section of the spec, as resolved.
    pub workload: serde_json::Value,
    pub rate_per_s: f64,
    pub concurrency: usize,
}

/// One fault as it was injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// When the fault was due, from the history's time zero.
    pub at_ms: u64,
    pub fault: Fault,
    /// How long it was meant to stay in force before its group healed.
    pub duration_ms: u64,
    /// The schedule it belongs to: a fault family's (`kill`) in a
    /// concurrent nemesis, else [`ONE_AT_A_TIME`]. Its heal is
    /// `heal-<group>`, or `heal`.
    pub group: String,
    /// What it hit; None for a nemesis that chooses as it acts.
    pub targets: Option<Targets>,
    /// The node the system named leader just before.
    pub leader: Option<usize>,
}

impl RecordedEvent {
    /// In words, for reports: `at 2.1 s for 300 ms: kill-leader on n3
    /// (the leader then: n3)`.
    pub fn describe(&self) -> String {
        let targets = self.targets.as_ref().map_or(", targets drawn by the nemesis".to_string(), Targets::describe);
        let leader = self.leader.map_or(String::new(), |leader| format!(" (the leader then: {})", node_name(leader)));
        format!("at {:.1} s for {} ms: {}{targets}{leader}", self.at_ms as f64 / 1e3, self.duration_ms, self.fault)
    }

    /// The name of this event's heal in the history.
    pub fn heal_name(group: &str) -> String {
        match group {
            ONE_AT_A_TIME => "heal".to_string(),
            group => format!("heal-{group}"),
        }
    }
}

/// A schedule read from a file, checked against the cluster it will run on.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedSchedule {
    pub path: PathBuf,
    pub header: Option<ScheduleHeader>,
    pub events: Vec<RecordedEvent>,
}

/// Writes `schedule.jsonl`: the header, then every event in the order the
/// nemesis injected them.
pub fn write(path: &Path, header: &ScheduleHeader, events: &[RecordedEvent]) -> Result<(), ScheduleFileError> {
    let error = |source| ScheduleFileError::Write { path: path.to_path_buf(), source };
    let mut text = Vec::new();
    let mut line = |value: serde_json::Value| -> Result<(), ScheduleFileError> {
        serde_json::to_writer(&mut text, &value).map_err(|e| error(e.into()))?;
        text.push(b'\n');
        Ok(())
    };
    line(serde_json::to_value(header).map_err(|e| error(e.into()))?)?;
    for event in events {
        line(serde_json::to_value(EventLine::from(event)).map_err(|e| error(e.into()))?)?;
    }
    let mut file = std::fs::File::create(path).map_err(error)?;
    file.write_all(&text).map_err(error)
}

/// Faults of one group follow each other: each starts after the one before
/// it was healed. A family belongs to one group, so two groups never hold
/// the same nemesis state.
fn check_groups(events: &[RecordedEvent]) -> Result<(), (usize, String)> {
    let mut last: BTreeMap<&str, &RecordedEvent> = BTreeMap::new();
    let mut family_group: BTreeMap<FaultFamily, &str> = BTreeMap::new();
    for (index, event) in events.iter().enumerate() {
        if let Some(before) = last.get(event.group.as_str()) {
            let healed_ms = before.at_ms + before.duration_ms;
            if event.at_ms < healed_ms {
                let message = format!(
                    "{} starts at {} ms, before the {} before it in group {} is healed ({} ms)",
                    event.fault, event.at_ms, before.fault, event.group, healed_ms
                );
                return Err((index, message));
            }
        }
        last.insert(&event.group, event);
        let group = *family_group.entry(event.fault.family()).or_insert(&event.group);
        if group != event.group {
            let message = format!("{} is in group {}, but its family's faults are in group {group}", event.fault, event.group);
            return Err((index, message));
        }
    }
    Ok(())
}

impl RecordedSchedule {
    /// Reads and checks `path` for a cluster of `nodes` and a test of
    /// `time_limit_ms`; every error names the file and the line.
    pub fn read(path: &Path, nodes: usize, time_limit_ms: u64) -> Result<RecordedSchedule, ScheduleFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScheduleFileError::Read { path: path.to_path_buf(), source })?;
        let at = |line: usize, message: String| ScheduleFileError::Line { path: path.to_path_buf(), line, message };
        let mut header = None;
        let mut events = Vec::new();
        let mut lines = Vec::new();
        let mut line_numbers = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            if line.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value = serde_json::from_str(line).map_err(|e| at(number, format!("not JSON: {e}")))?;
            if value.get("schedule_version").is_some() {
                if index != 0 {
                    return Err(at(number, "a header line is only allowed first".to_string()));
                }
                let parsed: ScheduleHeader = serde_json::from_value(value).map_err(|e| at(number, e.to_string()))?;
                if parsed.schedule_version != SCHEDULE_VERSION {
                    return Err(at(number, format!("schedule_version {} is not {SCHEDULE_VERSION}, the version this faultline reads", parsed.schedule_version)));
                }
                if parsed.nodes != nodes {
                    return Err(at(number, format!("recorded on {} nodes, the test runs {nodes}", parsed.nodes)));
                }
                header = Some(parsed);
                continue;
            }
            if lines.len() == EVENTS_MAX {
                return Err(at(number, format!("more than {EVENTS_MAX} events")));
            }
            let parsed: EventLine = serde_json::from_value(value).map_err(|e| at(number, e.to_string()))?;
            lines.push(parsed);
            line_numbers.push(number);
        }
        // A schedule with membership changes ran with a spare slot, which
        // any of its faults may name.
        let membership = lines.iter().any(EventLine::is_membership);
        let slots = nodes + if membership { super::membership::SPARES } else { 0 };
        for (line, number) in lines.iter().zip(&line_numbers) {
            events.push(event_of(line, nodes, slots, time_limit_ms).map_err(|message| at(*number, message))?);
        }
        check_groups(&events).map_err(|(index, message)| at(line_numbers[index], message))?;
        Ok(RecordedSchedule { path: path.to_path_buf(), header, events })
    }

    /// Every distinct fault, in first-seen order.
    pub fn faults(&self) -> Vec<Fault> {
        let mut faults = Vec::new();
        for event in &self.events {
            if !faults.contains(&event.fault) {
                faults.push(event.fault);
            }
        }
        faults
    }

    /// The groups, in the order they first appear, each with its events.
    pub fn groups(&self) -> Vec<(String, Vec<RecordedEvent>)> {
        let mut groups: Vec<(String, Vec<RecordedEvent>)> = Vec::new();
        for event in &self.events {
            match groups.iter_mut().find(|(name, _)| *name == event.group) {
                Some((_, events)) => events.push(event.clone()),
                None => groups.push((event.group.clone(), vec![event.clone()])),
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::scenarios::Roles;
    use crate::nemesis::partition::isolate;
    use crate::nemesis::{KillTarget, PartitionMode};

    fn header() -> ScheduleHeader {
        ScheduleHeader {
            schedule_version: SCHEDULE_VERSION,
            seed: 7,
            system: "faultline-node".into(),
            nodes: 3,
            time_limit_ms: 10_000,
            concurrent: true,
            workload: serde_json::json!({"kind": "kv"}),
            rate_per_s: 100.0,
            concurrency: 4,
        }
    }

    fn events() -> Vec<RecordedEvent> {
        vec![
            RecordedEvent {
                at_ms: 500,
                fault: Fault::Kill(KillTarget::Leader),
                duration_ms: 1_000,
                group: "kill".into(),
                targets: Some(Targets::Nodes(vec![1])),
                leader: Some(1),
            },
            RecordedEvent {
                at_ms: 800,
                fault: Fault::Partition(PartitionMode::Halves),
                duration_ms: 2_000,
                group: "partition".into(),
                targets: Some(Targets::Grudge(isolate(2, 3))),
                leader: None,
            },
            RecordedEvent { at_ms: 1_600, fault: Fault::Revote, duration_ms: 300, group: "revote".into(), targets: None, leader: Some(0) },
            RecordedEvent {
                at_ms: 2_000,
                fault: Fault::Revote,
                duration_ms: 300,
                group: "revote".into(),
                targets: Some(Targets::Sides(Roles { voter: 1, first: vec![0], second: vec![2] })),
                leader: Some(0),
            },
        ]
    }

    fn scratch(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("faultline-schedule-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(SCHEDULE_FILE);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_written_schedule_reads_back_the_same() {
        let path = scratch("round-trip", "");
        write(&path, &header(), &events()).unwrap();
        let read = RecordedSchedule::read(&path, 3, 10_000).unwrap();
        assert_eq!(read.header, Some(header()));
        assert_eq!(read.events, events());
        assert_eq!(read.faults().len(), 3);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""roles":{"first":["n1"],"second":["n3"],"voter":"n2"}"#), "{text}");
        let groups: Vec<String> = read.groups().into_iter().map(|(name, _)| name).collect();
        assert_eq!(groups, ["kill", "partition", "revote"]);
        assert_eq!(RecordedEvent::heal_name("kill"), "heal-kill");
        let described: Vec<String> = events().iter().map(RecordedEvent::describe).collect();
        assert_eq!(described[0], "at 0.5 s for 1000 ms: kill-leader on n2 (the leader then: n2)");
        assert_eq!(described[1], "at 0.8 s for 2000 ms: partition-halves: n1 no longer hears n3; n2 no longer hears n3; n3 no longer hears n1, n2");
        assert_eq!(described[2], "at 1.6 s for 300 ms: revote, targets drawn by the nemesis (the leader then: n1)");
        assert_eq!(described[3], "at 2.0 s for 300 ms: revote with voter n2, first side n1, second side n3 (the leader then: n1)");
        assert_eq!(RecordedEvent::heal_name(ONE_AT_A_TIME), "heal");
    }

    #[test]
    fn a_hand_written_line_needs_only_time_fault_and_duration() {
        let path = scratch("minimal", "{\"at_ms\": 100, \"fault\": \"kill-random\", \"duration_ms\": 50}\n\n");
        let read = RecordedSchedule::read(&path, 3, 1_000).unwrap();
        assert_eq!(read.header, None);
        assert_eq!(read.events[0].group, "kill", "a family's own group by default");
        assert_eq!(read.events[0].targets, None, "the nemesis draws the targets");
    }

    #[test]
    fn a_schedule_with_membership_changes_may_name_the_spare() {
        let text = concat!(
            "{\"at_ms\": 100, \"fault\": \"membership-add\", \"duration_ms\": 50, \"nodes\": []}\n",
            "{\"at_ms\": 200, \"fault\": \"membership-remove\", \"duration_ms\": 50, \"nodes\": [\"n4\"], \"leader\": \"n4\"}\n",
            "{\"at_ms\": 300, \"fault\": \"kill-random\", \"duration_ms\": 50, \"nodes\": [\"n4\"]}\n",
        );
        let read = RecordedSchedule::read(&scratch("membership", text), 3, 1_000).unwrap();
        assert_eq!(read.events[0].targets, Some(Targets::Nodes(Vec::new())), "an add takes the lowest free slot");
        assert_eq!(read.events[1].targets, Some(Targets::Nodes(vec![3])));
        assert_eq!(read.events[2].targets, Some(Targets::Nodes(vec![3])), "the spare may be killed once it joined");
        let without = "{\"at_ms\": 300, \"fault\": \"kill-random\", \"duration_ms\": 50, \"nodes\": [\"n4\"]}\n";
        let error = RecordedSchedule::read(&scratch("no-membership", without), 3, 1_000).unwrap_err().to_string();
        assert!(error.contains("node n4 is not in a cluster of 3"), "{error}");
    }

    #[test]
    fn bad_lines_are_named_with_their_reason() {
        let cases = [
            ("{\"at_ms\": 1, \"fault\": \"kil\", \"duration_ms\": 5}", "line 1: unknown nemesis \"kil\""),
            ("{\"at_ms\": 1, \"fault\": \"kill\", \"duration_ms\": 5}", "names several faults"),
            ("{\"at_ms\": 1, \"fault\": \"kill-random\", \"duration_ms\": 5, \"nodes\": [\"n4\"]}", "node n4 is not in a cluster of 3"),
            ("{\"at_ms\": 1, \"fault\": \"kill-random\", \"duration_ms\": 5, \"nodes\": [\"x\"]}", "\"x\" is not a node name"),
            ("{\"at_ms\": 1, \"fault\": \"kill-random\", \"duration_ms\": 5, \"grudge\": {}}", "kill-random takes no grudge"),
            ("{\"at_ms\": 1, \"fault\": \"partition-halves\", \"duration_ms\": 5, \"nodes\": [\"n1\"]}", "takes no nodes"),
            ("{\"at_ms\": 1, \"fault\": \"partition-halves\", \"duration_ms\": 5, \"grudge\": {\"n1\": [\"n1\"]}}", "cuts n1 off from itself"),
            ("{\"at_ms\": 5000, \"fault\": \"kill-random\", \"duration_ms\": 5}", "not before the time limit (1000 ms)"),
            ("{\"at_ms\": 1, \"fault\": \"kill-random\", \"duration_ms\": 0}", "duration_ms 0 is not in 1..=1000"),
            ("{\"at_ms\": 1, \"fault\": \"kill-random\", \"duration_ms\": 5, \"color\": 1}", "unknown field `color`"),
            ("[1, 2", "line 1: not JSON"),
            ("{\"at_ms\": 1, \"fault\": \"figure-8\", \"duration_ms\": 5, \"roles\": {\"voter\": \"n1\", \"first\": [\"n2\"], \"second\": [\"n2\"]}}", "roles: the voter and the two sides must name each of the 3 nodes once"),
            ("{\"at_ms\": 1, \"fault\": \"kill-random\", \"duration_ms\": 5, \"roles\": {\"voter\": \"n1\", \"first\": [\"n2\"], \"second\": [\"n3\"]}}", "kill-random takes no roles (it takes nodes)"),
            ("{\"at_ms\": 1, \"fault\": \"revote\", \"duration_ms\": 5, \"nodes\": [\"n1\"]}", "revote takes no nodes (a scripted scenario takes roles)"),
            ("{\"at_ms\": 1, \"fault\": \"kill-random\", \"duration_ms\": 5, \"nodes\": [\"n1\"], \"grudge\": {}}", "one of nodes, grudge or roles"),
            ("{\"at_ms\": 1, \"fault\": \"kill-random\", \"duration_ms\": 500}\n{\"at_ms\": 200, \"fault\": \"kill-leader\", \"duration_ms\": 5}", "line 2: kill-leader starts at 200 ms, before the kill-random before it in group kill is healed (501 ms)"),
            ("{\"at_ms\": 1, \"fault\": \"kill-random\", \"duration_ms\": 5, \"group\": \"a\"}\n{\"at_ms\": 9, \"fault\": \"kill-leader\", \"duration_ms\": 5, \"group\": \"b\"}", "line 2: kill-leader is in group b, but its family's faults are in group a"),
        ];
        for (index, (text, expected)) in cases.iter().enumerate() {
            let path = scratch(&format!("bad-{index}"), text);
            let error = RecordedSchedule::read(&path, 3, 1_000).unwrap_err().to_string();
            assert!(error.contains(expected), "case {index}: {error}");
            assert!(error.starts_with("schedule ") && !error.contains('\n'), "one line naming the file: {error}");
        }
        let path = scratch("header", &serde_json::to_string(&header()).unwrap());
        let error = RecordedSchedule::read(&path, 5, 1_000).unwrap_err().to_string();
        assert!(error.contains("recorded on 3 nodes, the test runs 5"), "{error}");
        let missing = RecordedSchedule::read(Path::new("/nonexistent/schedule.jsonl"), 3, 1_000).unwrap_err().to_string();
        assert!(missing.starts_with("cannot read schedule /nonexistent/schedule.jsonl"), "{missing}");
    }
}
