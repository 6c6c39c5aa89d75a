//! Operations: an invocation paired with its completion, grouped per key.
//!
//! [`HistoryBuilder`] consumes parsed events in history order and pairs each
//! completion with the pending invocation of the same process. The result,
//! [`OpHistory`], is what the models and the checkers work on.
use std::borrow::Cow;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::error::ReadError;
use crate::history::EventType;
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    key_ids: FxHashMap<String, u32>,
    /// The id of `""`, the key of every event of a single-register history
    /// (Jepsen's logs): found without hashing (a tenth of reading
    /// Porcupine's etcd corpus went into that lookup).
    empty_key_id: Option<u32>,
    /// Pending invocations of processes below [`PROCESS_DENSE_MAX`], by
    /// process: the common case, without hashing.
    pending_dense: Vec<Option<Pending>>,
    pending: FxHashMap<u64, Pending>,
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
        if key.is_empty() {
            if let Some(id) = self.empty_key_id {
                return id;
            }
        }
        if let Some(id) = self.key_ids.get(key) {
            return *id;
        }
        let id = self.history.keys.len() as u32;
        self.history.keys.push(key.to_string());
        self.history.ops_by_key.push(Vec::new());
        self.key_ids.insert(key.to_string(), id);
        if key.is_empty() {
            self.empty_key_id = Some(id);
        }
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
            return Err(no_pending_error(process, &record));
        };
        if let Some((key_id, op)) = complete(process, pending, record)? {
            self.history.ops_by_key[key_id as usize].push(op);
        }
        Ok(())
    }

    fn push_invoke(&mut self, process: u64, record: Record<'_>) -> Result<(), ReadError> {
        if let Some(previous) = self.pending_of(process) {
            return Err(invokes_again_error(process, previous.line, record.line));
        }
        let key_id = self.key_id(record.key.as_deref());
        self.set_pending(process, pending_of_invoke(key_id, record));
        Ok(())
    }

    /// Adds a piece paired on its own (see [`PiecePairing`]); pieces must
    /// come in history order. The error is the one that pushing the piece's
    /// events one by one would have returned first.
    pub fn merge_piece(&mut self, piece: PiecePairing<'_>) -> Result<(), ReadError> {
        // Interned in the piece's order of first sight, which is the order
        // pushing its invokes one by one would have interned them in.
        let key_ids: Vec<u32> = piece.keys.iter().map(|key| self.key_id(Some(key))).collect();
        let error_line = piece.error.as_ref().map_or(u32::MAX, |(line, _)| *line);
        for event in piece.boundary {
            if event.line() >= error_line {
                break;
            }
            self.merge_boundary(event)?;
        }
        if let Some((_, error)) = piece.error {
            return Err(error);
        }
        for (local_key, op) in piece.ops {
            self.history.ops_by_key[key_ids[local_key as usize] as usize].push(op);
        }
        for (process, mut pending) in piece.slots.into_pending() {
            pending.key_id = key_ids[pending.key_id as usize];
            self.set_pending(process, pending);
        }
        self.history.event_count += piece.event_count;
        self.history.nemesis_event_count += piece.nemesis_event_count;
        Ok(())
    }

    fn merge_boundary(&mut self, event: Boundary<'_>) -> Result<(), ReadError> {
        match event {
            Boundary::Invoke { process, line } => match self.pending_of(process) {
                Some(previous) => Err(invokes_again_error(process, previous.line, line)),
                None => Ok(()),
            },
            Boundary::Completion { process, record } => {
                let Some(pending) = self.take_pending(process) else {
                    return Err(no_pending_error(process, &record));
                };
                if let Some((key_id, op)) = complete(process, pending, record)? {
                    self.history.ops_by_key[key_id as usize].push(op);
                }
                Ok(())
            }
        }
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
        let key_id = pending.key_id;
        let op = op_of(process, pending, output, outcome, return_ns);
        self.history.ops_by_key[key_id as usize].push(op);
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

fn op_of(process: u64, pending: Pending, output: Val, outcome: Outcome, return_ns: u64) -> Op {
    Op {
        process,
        f: pending.f,
        input: pending.input,
        output,
        outcome,
        call_ns: pending.call_ns,
        return_ns,
        line: pending.line,
    }
}

fn pending_of_invoke(key_id: u32, record: Record<'_>) -> Pending {
    Pending {
        key_id,
        f: record.f,
        input: record.value,
        call_ns: record.time_ns,
        line: record.line,
    }
}

fn no_pending_error(process: u64, record: &Record<'_>) -> ReadError {
    ReadError::Pairing {
        line: record.line,
        message: format!("{:?} of process {process} without a pending invoke", record.kind),
    }
}

fn invokes_again_error(process: u64, previous_line: u32, line: u32) -> ReadError {
    ReadError::Pairing {
        line,
        message: format!("process {process} invokes again while its invoke on line {previous_line} is pending"),
    }
}

/// Pairs a completion with its pending invoke: the finished operation and
/// its key id, or `None` for a fail that means it did not happen.
fn complete(process: u64, pending: Pending, record: Record<'_>) -> Result<Option<(u32, Op)>, ReadError> {
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
        (EventType::Fail, FailMeaning::DidNotHappen) => return Ok(None),
        (EventType::Fail, FailMeaning::Happened) => Outcome::Failed,
        _ => Outcome::Unknown,
    };
    let (output, return_ns) = match outcome {
        Outcome::Unknown => (Val::Nil, RETURN_NEVER_NS),
        _ => (record.value, record.time_ns),
    };
    let key_id = pending.key_id;
    Ok(Some((key_id, op_of(process, pending, output, outcome, return_ns))))
}

/// An event of a piece whose meaning depends on the pieces before it: the
/// first event of its process in the piece.
enum Boundary<'a> {
    /// An invoke: an error if an earlier piece left one pending.
    Invoke { process: u64, line: u32 },
    /// A completion, of an invoke in an earlier piece (or of none).
    Completion { process: u64, record: Record<'a> },
}

impl Boundary<'_> {
    fn line(&self) -> u32 {
        match self {
            Boundary::Invoke { line, .. } => *line,
            Boundary::Completion { record, .. } => record.line,
        }
    }
}

/// What a piece knows of one process.
#[derive(Default)]
struct Slot {
    /// An event of the process was seen in the piece.
    seen: bool,
    pending: Option<Pending>,
}

/// Slots by process: a vector below [`PROCESS_DENSE_MAX`], a map above.
#[derive(Default)]
struct Slots {
    dense: Vec<Slot>,
    sparse: FxHashMap<u64, Slot>,
}

impl Slots {
    fn get(&mut self, process: u64) -> &mut Slot {
        if process >= PROCESS_DENSE_MAX {
            return self.sparse.entry(process).or_default();
        }
        let index = process as usize;
        if index >= self.dense.len() {
            self.dense.resize_with(index + 1, Slot::default);
        }
        &mut self.dense[index]
    }

    /// The invokes still pending, by process.
    fn into_pending(self) -> impl Iterator<Item = (u64, Pending)> {
        let dense = self.dense.into_iter().enumerate().map(|(p, slot)| (p as u64, slot));
        dense.chain(self.sparse).filter_map(|(p, slot)| slot.pending.map(|pending| (p, pending)))
    }
}

/// Pairs the events of one piece of a history (consecutive lines) without
/// knowing the pieces before it, so pieces can be paired on separate
/// threads; [`HistoryBuilder::merge_piece`] then joins them in order.
/// Key ids here are the piece's own; the merge maps them.
#[derive(Default)]
pub struct PiecePairing<'a> {
    keys: Vec<Cow<'a, str>>,
    key_ids: FxHashMap<Cow<'a, str>, u32>,
    /// Operations paired inside the piece, with the piece's key id.
    ops: Vec<(u32, Op)>,
    slots: Slots,
    /// First events of processes, in line order.
    boundary: Vec<Boundary<'a>>,
    /// The first pairing error found inside the piece, with its line;
    /// pairing stops there.
    error: Option<(u32, ReadError)>,
    event_count: u64,
    nemesis_event_count: u64,
}

impl<'a> PiecePairing<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    fn key_id(&mut self, key: Option<Cow<'a, str>>) -> u32 {
        let key = key.unwrap_or(Cow::Borrowed(""));
        if let Some(id) = self.key_ids.get(key.as_ref()) {
            return *id;
        }
        let id = self.keys.len() as u32;
        self.keys.push(key.clone());
        self.key_ids.insert(key, id);
        id
    }

    /// Takes the next event of the piece; after a pairing error, events
    /// are ignored.
    pub fn push(&mut self, record: Record<'a>) {
        if self.error.is_some() {
            return;
        }
        self.event_count += 1;
        let Some(process) = record.process else {
            self.nemesis_event_count += 1;
            return;
        };
        let line = record.line;
        if let Err(error) = self.push_client(process, record) {
            self.error = Some((line, error));
        }
    }

    fn push_client(&mut self, process: u64, mut record: Record<'a>) -> Result<(), ReadError> {
        let slot = self.slots.get(process);
        let first = !slot.seen;
        slot.seen = true;
        if record.kind == EventType::Invoke {
            if let Some(previous) = &slot.pending {
                return Err(invokes_again_error(process, previous.line, record.line));
            }
            if first {
                self.boundary.push(Boundary::Invoke { process, line: record.line });
            }
            let key_id = self.key_id(record.key.take());
            let pending = pending_of_invoke(key_id, record);
            self.slots.get(process).pending = Some(pending);
            return Ok(());
        }
        let Some(pending) = slot.pending.take() else {
            if first {
                self.boundary.push(Boundary::Completion { process, record });
                return Ok(());
            }
            return Err(no_pending_error(process, &record));
        };
        if let Some(op) = complete(process, pending, record)? {
            self.ops.push(op);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
