//! Operations: an invocation paired with its completion, grouped per key.
//!
//! [`HistoryBuilder`] consumes parsed events in history order and pairs each
//! completion with the pending invocation of the same process. The result,
//! [`OpHistory`], is what the models and the checkers work on.
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use serde::Serialize;

use crate::error::ReadError;
use crate::history::EventType;
use crate::linear::FxHasher;
use crate::value::{Func, Outcome, Val};

/// `return_ns` of an operation that never returned (info, or no completion):
/// it stays concurrent with everything after its call.
pub const RETURN_NEVER_NS: u64 = u64::MAX;

/// One operation of one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub process: u64,
    pub f: Func,
    /// The invocation's value.
    pub input: Val,
    /// The completion's value (`Nil` when unknown).
    pub output: Val,
    pub outcome: Outcome,
    pub call_ns: u64,
    pub return_ns: u64,
    /// 1-based line of the invocation in the source file.
    pub line: u32,
}

impl Op {
    /// A short, human-readable form: `p3 cas [3 0] -> ok (line 42)`.
    pub fn describe(&self) -> String {
        let result = match self.outcome {
            Outcome::Ok => format!("ok {}", self.output),
            Outcome::Failed => "failed".to_string(),
            Outcome::Unknown => "unknown".to_string(),
        };
        format!(
            "p{} {} {} -> {} (line {})",
            self.process,
            self.f.name(),
            self.input,
            result,
            self.line
        )
    }
}

/// A compact serializable summary of an operation for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpSummary {
    pub line: u32,
    pub text: String,
}

impl From<&Op> for OpSummary {
    fn from(op: &Op) -> Self {
        OpSummary { line: op.line, text: op.describe() }
    }
}

/// One parsed event in compact form, as the readers produce it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    /// `None` for the nemesis.
    pub process: Option<u64>,
    pub kind: EventType,
    pub f: Func,
    pub key: Option<Cow<'a, str>>,
    pub value: Val,
    pub time_ns: u64,
    pub line: u32,
    /// The reader's meaning of `fail` for this event.
    pub fail_means: FailMeaning,
}

/// What a `fail` completion means; it differs between formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMeaning {
    /// The operation did not happen (faultline JSONL).
    DidNotHappen,
    /// It happened and reported failure (a cas whose compare failed).
    Happened,
    /// Nothing is known (a Jepsen `:fail :read :timed-out`).
    Unknown,
}

/// A whole history as per-key operation lists.
#[derive(Debug, Default)]
pub struct OpHistory {
    /// Key names; index = key id. Events without a key use `""`.
    pub keys: Vec<String>,
    /// Operations of each key, in invocation order.
    pub ops_by_key: Vec<Vec<Op>>,
    /// Events read, nemesis included.
    pub event_count: u64,
    pub nemesis_event_count: u64,
}

impl OpHistory {
    pub fn op_count(&self) -> u64 {
        self.ops_by_key.iter().map(|ops| ops.len() as u64).sum()
    }

    /// Every distinct function used, to guess a model.
    pub fn funcs(&self) -> Vec<Func> {
        let mut funcs: Vec<Func> = Vec::new();
        for op in self.ops_by_key.iter().flatten() {
            if !funcs.contains(&op.f) {
                funcs.push(op.f);
            }
        }
        funcs
    }
}

struct Pending {
    key_id: u32,
    f: Func,
    input: Val,
    call_ns: u64,
    line: u32,
}

/// Pairs invocations with completions while events stream in.
#[derive(Default)]
pub struct HistoryBuilder {
    history: OpHistory,
    key_ids: HashMap<String, u32, BuildHasherDefault<FxHasher>>,
    /// Pending invocations of processes below [`PROCESS_DENSE_MAX`], by
    /// process: the common case, without hashing.
    pending_dense: Vec<Option<Pending>>,
    pending: HashMap<u64, Pending, BuildHasherDefault<FxHasher>>,
}

/// Processes numbered below this have a slot in a vector.
const PROCESS_DENSE_MAX: u64 = 1 << 16;

impl HistoryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The key id for `key`, interning it on first sight.
    fn key_id(&mut self, key: Option<&str>) -> u32 {
        let key = key.unwrap_or("");
        if let Some(id) = self.key_ids.get(key) {
            return *id;
        }
        let id = self.history.keys.len() as u32;
        self.history.keys.push(key.to_string());
        self.history.ops_by_key.push(Vec::new());
        self.key_ids.insert(key.to_string(), id);
        id
    }

    pub fn push(&mut self, record: Record<'_>) -> Result<(), ReadError> {
        self.history.event_count += 1;
        let Some(process) = record.process else {
            self.history.nemesis_event_count += 1;
            return Ok(());
        };
        if record.kind == EventType::Invoke {
            return self.push_invoke(process, record);
        }
        let Some(pending) = self.take_pending(process) else {
            return Err(ReadError::Pairing {
                line: record.line,
                message: format!("{:?} of process {process} without a pending invoke", record.kind),
            });
        };
        if pending.f != record.f {
            return Err(ReadError::Pairing {
                line: record.line,
                message: format!(
                    "completion {} of process {process} does not match its invoke {} on line {}",
                    record.f.name(),
                    pending.f.name(),
                    pending.line
                ),
            });
        }
        if record.time_ns < pending.call_ns {
            return Err(ReadError::Pairing {
                line: record.line,
                message: format!(
                    "completion at time_ns {} is before its invoke on line {} (time_ns {})",
                    record.time_ns, pending.line, pending.call_ns
                ),
            });
        }
        let outcome = match (record.kind, record.fail_means) {
            (EventType::Ok, _) => Outcome::Ok,
            (EventType::Fail, FailMeaning::DidNotHappen) => return Ok(()),
            (EventType::Fail, FailMeaning::Happened) => Outcome::Failed,
            _ => Outcome::Unknown,
        };
        let (output, return_ns) = match outcome {
            Outcome::Unknown => (Val::Nil, RETURN_NEVER_NS),
            _ => (record.value, record.time_ns),
        };
        self.finish(process, pending, output, outcome, return_ns);
        Ok(())
    }

    fn push_invoke(&mut self, process: u64, record: Record<'_>) -> Result<(), ReadError> {
        if let Some(previous) = self.pending_of(process) {
            return Err(ReadError::Pairing {
                line: record.line,
                message: format!(
                    "process {process} invokes again while its invoke on line {} is pending",
                    previous.line
                ),
            });
        }
        let key_id = self.key_id(record.key.as_deref());
        let pending = Pending {
            key_id,
            f: record.f,
            input: record.value,
            call_ns: record.time_ns,
            line: record.line,
        };
        self.set_pending(process, pending);
        Ok(())
    }

    fn pending_of(&self, process: u64) -> Option<&Pending> {
        if process < PROCESS_DENSE_MAX {
            return self.pending_dense.get(process as usize).and_then(Option::as_ref);
        }
        self.pending.get(&process)
    }

    fn take_pending(&mut self, process: u64) -> Option<Pending> {
        if process < PROCESS_DENSE_MAX {
            return self.pending_dense.get_mut(process as usize).and_then(Option::take);
        }
        self.pending.remove(&process)
    }

    fn set_pending(&mut self, process: u64, pending: Pending) {
        if process >= PROCESS_DENSE_MAX {
            self.pending.insert(process, pending);
            return;
        }
        let index = process as usize;
        if index >= self.pending_dense.len() {
            self.pending_dense.resize_with(index + 1, || None);
        }
        self.pending_dense[index] = Some(pending);
    }

    fn finish(&mut self, process: u64, pending: Pending, output: Val, outcome: Outcome, return_ns: u64) {
        let op = Op {
            process,
            f: pending.f,
            input: pending.input,
            output,
            outcome,
            call_ns: pending.call_ns,
            return_ns,
            line: pending.line,
        };
        self.history.ops_by_key[pending.key_id as usize].push(op);
    }

    /// Invocations still pending at the end become unknown operations.
    pub fn finish_history(mut self) -> OpHistory {
        let mut pending: Vec<(u64, Pending)> = self.pending.drain().collect();
        let dense = std::mem::take(&mut self.pending_dense);
        pending.extend(dense.into_iter().enumerate().filter_map(|(p, slot)| slot.map(|s| (p as u64, s))));
        pending.sort_by_key(|(_, p)| p.line);
        for (process, p) in pending {
            self.finish(process, p, Val::Nil, Outcome::Unknown, RETURN_NEVER_NS);
        }
        for ops in &mut self.history.ops_by_key {
            ops.sort_by_key(|op| (op.call_ns, op.line));
        }
        self.history
    }
}
