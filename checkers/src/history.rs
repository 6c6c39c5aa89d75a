//! The history schema shared by every part of faultline.
//!
//! A history is a sequence of [`Event`]s, written as JSON Lines (one event per
//! line) so that a run that dies halfway keeps every line it already wrote.
//!
//! ```text
//! {"process":3,"type":"invoke","f":"write","key":"k1","value":4,"time_ns":1200}
//! {"process":3,"type":"ok","f":"write","key":"k1","value":4,"time_ns":5400,"node":"n2"}
//! {"process":"nemesis","type":"invoke","f":"partition","value":{"grudge":{"1":[2,3]}},"time_ns":9000}
//! ```
//!
//! Completion types, and what the checkers may assume of each:
//! - `ok`: the operation took effect exactly once, at one instant between its
//!   invocation and this completion, with the result in `value`.
//! - `fail`: the operation definitely did not take effect. The checkers
//!   drop it. (A cas whose compare failed is a `fail` too: it changed
//!   nothing; the checkers do not use it as a read. The Jepsen readers map
//!   Jepsen's own `:fail` differently, see the checkers crate docs.)
//! - `info`: the outcome is unknown: the operation may or may not have taken
//!   effect, at any point after its invocation, possibly after later events.
//!   The process that got `info` never issues another operation; a client
//!   continues under a new process number.
//!
//! `time_ns` is monotonic since the start of the test. `process` is a client
//! number, or the string `"nemesis"` for fault-injection events.
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The `f` of a transaction: no key, and a list of micro-operations as its
/// value (`[["append", 3, 1], ["r", 4, null]]`). A history may hold them
/// beside single-key operations; readers and checkers split on this name.
pub const TXN_F: &str = "txn";

/// What happened to an operation at this point of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// Who performed an event: a client process, or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Client(u64),
    Nemesis,
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(id) => serializer.serialize_u64(*id),
            Process::Nemesis => serializer.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Id(u64),
            Name(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Id(id) => Ok(Process::Client(id)),
            Raw::Name(name) if name == "nemesis" => Ok(Process::Nemesis),
            Raw::Name(name) => Err(serde::de::Error::custom(format!(
                "process must be a number or \"nemesis\", got {name:?}"
            ))),
        }
    }
}

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The operation's function: `read`, `write`, `cas`, `get`, `put`,
    /// `append`, `add`, ... or a nemesis fault name.
    pub f: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Argument on `invoke`, result on `ok`; `null` when there is none.
    #[serde(default)]
    pub value: serde_json::Value,
    pub time_ns: u64,
    /// The node that served the operation, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why an operation failed or is indeterminate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The first line of a history faultline writes, before any event: when
/// the run started by the wall clock, so `time_ns` (counted from that
/// moment) lines up with node logs. Readers skip it; other tools' histories
/// have none.
///
/// ```text
/// {"history":"faultline","version":1,"start_unix_ns":1764800000000000000}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always `"faultline"`: what tells a header from an event.
    pub history: HeaderTag,
    pub version: u32,
    /// The wall-clock time of `time_ns` 0, in nanoseconds since 1970.
    pub start_unix_ns: u64,
    /// The host each node ran on, by node name (`n1`), when the nodes ran
    /// on hosts; an event's `node` names the host that served it.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub hosts: std::collections::BTreeMap<String, String>,
}

/// The tag of a [`Header`]: the string `"faultline"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderTag {
    Faultline,
}

impl Header {
    pub const VERSION: u32 = 1;

    pub fn new(start_unix_ns: u64) -> Header {
        Header { history: HeaderTag::Faultline, version: Header::VERSION, start_unix_ns, hosts: Default::default() }
    }

    /// The header a line holds, if it is one.
    pub fn parse(line: &[u8]) -> Option<Header> {
        let line = line.trim_ascii();
        // Cheap test first: every header starts so; events never do.
        if !line.starts_with(b"{\"history\"") {
            return None;
        }
        serde_json::from_slice(line).ok()
    }
}
