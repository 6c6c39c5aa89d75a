//! faultline's checkers: the history schema, readers for other tools'
//! formats, models, the linearizability search, the durability checker and
//! verdict composition. Pure functions of their input: no tokio, no
//! processes, no I/O beyond reading the history files they are given.
//!
//! # Public API
//! - [`check_history`]`(&[Event], &CheckConfig) -> Result<CheckResult, CheckError>`:
//!   linearizability of an in-memory history, per key, keys in parallel.
//! - [`read::read_path`] / [`read::read_bytes`]: parse a file (faultline
//!   JSONL, Jepsen log lines or Jepsen EDN maps, detected) into an
//!   [`OpHistory`]; then [`check_op_history`] checks it.
//! - One pass over a faultline JSONL history for several consumers:
//!   [`read::JsonlEvents`]`::new(impl BufRead)` is an iterator of
//!   `Result<(u32, Event), ReadError>` (1-based line numbers, blank lines
//!   skipped, lines bounded by [`read::LINE_BYTES_MAX`]); push each event
//!   into [`read::EventHistoryBuilder`]`::push(&mut self, line, &Event)`
//!   while handing it to the other consumers, then `finish()` gives the
//!   [`OpHistory`] for [`check_op_history`] and
//!   [`durability::check_op_durability`]:
//!
//!   ```
//!   use faultline_checkers::read::{EventHistoryBuilder, JsonlEvents};
//!   use faultline_checkers::{check_op_history, CheckConfig, Verdict};
//!
//!   let text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1,\"time_ns\":1}\n\
//!               {\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1,\"time_ns\":2}\n";
//!   let mut builder = EventHistoryBuilder::new();
//!   let mut timeline = Vec::new();
//!   for item in JsonlEvents::new(text.as_bytes()) {
//!       let (line, event) = item?;
//!       builder.push(line, &event)?;
//!       timeline.push((line, event)); // e.g. a report's timeline
//!   }
//!   let result = check_op_history(&builder.finish(), &CheckConfig::default())?;
//!   assert_eq!(result.verdict, Verdict::Valid);
//!   assert_eq!(timeline.len(), 2);
//!   # Ok::<(), Box<dyn std::error::Error>>(())
//!   ```
//! - [`durability::check_durability`]`(&[Event], &DurabilityConfig)`: set-full
//!   style accounting of acknowledged writes (lost, recovered, unexpected,
//!   stale).
//! - [`Verdict::merge`]: `invalid` beats `unknown` beats `valid`.
//! - [`Model`]: implement it to check a new datatype with [`check_with`]
//!   (parsed history) or [`check_history_with`] (events). Functions that are
//!   not built in keep their names: compare `op.f` with `Func::parse("inc")`.
//!
//! Every result type ([`CheckResult`] and what it holds, [`DurabilityResult`]
//! and what it holds) is `serde::Serialize` and
//! `serde::Deserialize`, so a results file reads back into the same types;
//! [`Verdict`] serializes as `"valid" | "invalid" | "unknown"`.
//!
//! # History semantics
//! See [`history`] for the schema. What each completion means to the checkers:
//! - `ok`: took effect exactly once, between invocation and completion.
//! - `fail`: **definitely did not happen**. The operation is dropped. (The
//!   Jepsen readers differ, following the etcd corpus: a `:fail :cas` is a cas
//!   that happened and whose compare failed, i.e. an observation that the
//!   register did not hold `from`; a `:fail :read` is unknown.)
//! - `info`, or no completion at all: **may or may not have happened, at any
//!   single point after its invocation** — possibly after every other event.
//!   The checker treats it as an operation that never returns; a read of
//!   unknown outcome constrains nothing and is left out.
//!
//! # Value conventions per model
//! - `register`: `read` (value null on invoke; integer or null on ok),
//!   `write` (integer). Initially null.
//! - `cas-register`: `register` plus `cas` with value `[from, to]`.
//! - `kv` (per `key`): `get` (ok value = string; null counts as ""), `put`
//!   and `append` (string; append concatenates). A missing key reads `""`.
//! - `set`: `add` (integer), `read` (ok value = array of integers, order
//!   ignored).
//! - `list-append` (per `key`): `append` (integer), `read` → array, in order.
//!
//! Nemesis events (process `"nemesis"`) are ignored by the models.
pub mod bank;
pub mod durability;
pub mod error;
pub mod history;
pub mod linear;
pub mod model;
pub mod op;
pub mod read;
pub mod txn;
pub mod value;
pub mod verdict;

pub use durability::{check_durability, DurabilityConfig, DurabilityResult};
pub use error::{CheckError, ReadError};
pub use history::{Event, EventType, Header, Process, TXN_F};
pub use linear::{check_op_history, check_with, CheckConfig, CheckResult, Counterexample, KeyResult};
pub use model::{Model, ModelKind, ModelName};
pub use op::{Op, OpHistory};
pub use value::{Func, Outcome, Val};
pub use verdict::Verdict;

/// Why [`check_history`] could not produce a verdict.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Check(#[from] CheckError),
}

/// Checks an in-memory history for linearizability.
pub fn check_history(events: &[Event], config: &CheckConfig) -> Result<CheckResult, HistoryError> {
    let history = read::history_from_events(events)?;
    Ok(check_op_history(&history, config)?)
}

/// Checks an in-memory history against `model`, a user's own [`Model`] or a
/// built-in; see [`check_with`].
pub fn check_history_with<M: Model>(
    model: &M,
    events: &[Event],
    config: &CheckConfig,
) -> Result<CheckResult, HistoryError> {
    let history = read::history_from_events(events)?;
    Ok(check_with(model, &history, config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<Event> {
        text.lines().map(|line| serde_json::from_str(line).expect("a test event")).collect()
    }

    /// What the harness writes to results.json, it reads back unchanged.
    #[test]
    fn results_round_trip_through_json() {
        let invalid = events(include_str!("../examples/cas-register-invalid.jsonl"));
        let checked = check_history(&invalid, &CheckConfig::default()).expect("checkable");
        assert_eq!(checked.verdict, Verdict::Invalid);
        assert!(checked.keys[0].counterexample.is_some());
        let json = serde_json::to_string(&checked).expect("serializable");
        assert!(json.contains(r#""model":"cas-register""#), "{json}");
        let read_back: CheckResult = serde_json::from_str(&json).expect("deserializable");
        assert_eq!(read_back, checked);

        let lost = events(concat!(
            r#"{"process":0,"type":"invoke","f":"add","value":1,"time_ns":1}"#, "\n",
            r#"{"process":0,"type":"ok","f":"add","value":1,"time_ns":2}"#, "\n",
            r#"{"process":1,"type":"invoke","f":"read","value":null,"time_ns":3}"#, "\n",
            r#"{"process":1,"type":"ok","f":"read","value":[1,7],"time_ns":4}"#, "\n",
            r#"{"process":1,"type":"invoke","f":"read","value":null,"time_ns":5}"#, "\n",
            r#"{"process":1,"type":"ok","f":"read","value":[],"time_ns":6}"#, "\n",
        ));
        let durability = check_durability(&lost, &DurabilityConfig::default()).expect("checkable");
        assert_eq!((durability.counts.lost, durability.counts.unexpected), (1, 1));
        assert_eq!((durability.examples.lost.len(), durability.examples.unexpected.len()), (1, 1));
        let json = serde_json::to_string(&durability).expect("serializable");
        let read_back: DurabilityResult = serde_json::from_str(&json).expect("deserializable");
        assert_eq!(read_back, durability);
    }
}
