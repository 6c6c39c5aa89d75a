//! The linearizability checker: one search per key, keys in parallel, with a
//! time and memory budget, and a readable counterexample on `invalid`.
mod cache;
mod search;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::CheckError;
use cache::Cache;
use crate::model::{CasRegister, Kv, ListAppend, Model, ModelKind, ModelName, Register, Set};
use crate::op::{Op, OpHistory, OpSummary};
use crate::value::{Func, Outcome, Val};
use crate::verdict::Verdict;
use search::{Budget, SearchOutcome, Stuck};

pub use cache::{op_hash, state_hash};

/// Most prefix operations a counterexample lists (the latest ones).
pub const COUNTEREXAMPLE_PREFIX_MAX: usize = 200;

/// How to check a history.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckConfig {
    /// `None`: guess from the functions the history uses. Ignored by
    /// [`check_with`], which is given its model.
    pub model: Option<ModelKind>,
    /// Wall-clock budget for the whole history; `None` = unbounded.
    pub budget_ms: Option<u64>,
    /// Memory for the searches of all keys checked at once: their caches
    /// (model states' heap parts included) and their stacks.
    pub memory_budget_mb: u64,
    /// Keys checked in parallel.
    pub threads: usize,
    /// Stop searching the other keys once one key is invalid (as Porcupine
    /// does): the history's verdict is decided, and an invalid key's
    /// neighbours can take exponentially long. Keys left undecided are
    /// reported `unknown` with the reason.
    pub stop_at_first_invalid: bool,
    /// A key that would be valid with no acknowledged observation of its
    /// state (no read returned) is `unknown` instead. faultline's own runs
    /// check this way; off by default, so third-party histories get the
    /// verdicts Porcupine and Knossos give (a key only written is valid).
    pub require_evidence: bool,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            model: None,
            budget_ms: None,
            memory_budget_mb: 1024,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()).min(8),
            stop_at_first_invalid: true,
            require_evidence: false,
        }
    }
}

/// Why one key's history is not linearizable, for a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterexample {
    pub key: String,
    /// Length of the longest linearizable prefix found.
    pub prefix_len: u64,
    /// Its last operations, in linearization order (at most
    /// [`COUNTEREXAMPLE_PREFIX_MAX`]).
    pub prefix_tail: Vec<OpSummary>,
    /// The operation that could not be linearized before it returned.
    pub stuck_op: OpSummary,
    /// Every operation pending at that point, stuck one first.
    pub concurrent: Vec<OpSummary>,
    /// The model state after the prefix.
    pub state: String,
}

/// The verdict for one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyResult {
    pub key: String,
    pub verdict: Verdict,
    pub op_count: u64,
    /// Distinct search configurations explored (a measure of effort).
    pub configurations: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Counterexample>,
}

/// The verdict for a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub verdict: Verdict,
    pub model: ModelName,
    pub op_count: u64,
    pub elapsed_ms: u64,
    pub keys: Vec<KeyResult>,
}

/// Checks a parsed history with the configured (or guessed) model.
pub fn check_op_history(history: &OpHistory, config: &CheckConfig) -> Result<CheckResult, CheckError> {
    let kind = match config.model {
        Some(kind) => kind,
        None => ModelKind::guess(&history.funcs(), first_append_is_string(history))?,
    };
    match kind {
        ModelKind::Register => check_with(&Register, history, config),
        ModelKind::CasRegister => check_with(&CasRegister, history, config),
        ModelKind::Kv => check_with(&Kv, history, config),
        ModelKind::Set => check_with(&Set, history, config),
        ModelKind::ListAppend => check_with(&ListAppend, history, config),
    }
}

fn first_append_is_string(history: &OpHistory) -> bool {
    let first = history.ops_by_key.iter().flatten().find(|op| op.f == Func::Append);
    first.is_some_and(|op| matches!(op.input, Val::Str(_)))
}

/// Checks every key of `history` against `model`, a built-in or a user's
/// own [`Model`]: keys are searched in parallel, within `config`'s time and
/// memory budgets (`config.model` is not used). The result names the model
/// by [`Model::name`].
pub fn check_with<M: Model>(model: &M, history: &OpHistory, config: &CheckConfig) -> Result<CheckResult, CheckError> {
    let started = Instant::now();
    let partitions = searchable_partitions(model, history)?;
    let mut keys = check_partitions(model, history, &partitions, config, started);
    if config.require_evidence {
        for (key, ops) in keys.iter_mut().zip(&history.ops_by_key) {
            require_evidence(model, key, ops);
        }
    }
    // No key at all shows nothing either.
    let verdict = if keys.is_empty() { Verdict::Unknown } else { Verdict::merge_all(keys.iter().map(|k| k.verdict)) };
    Ok(CheckResult {
        verdict,
        model: ModelName::new(model.name()),
        op_count: history.op_count(),
        elapsed_ms: started.elapsed().as_millis() as u64,
        keys,
    })
}

/// Per key, the operations the search needs: all of them, except read-only
/// operations of unknown outcome (they constrain nothing) and open writes
/// no read shows ([`Model::never_seen`]).
fn searchable_partitions<'h, M: Model>(model: &M, history: &'h OpHistory) -> Result<Vec<Vec<&'h Op>>, CheckError> {
    let mut partitions = Vec::with_capacity(history.ops_by_key.len());
    for ops in &history.ops_by_key {
        let mut kept = Vec::with_capacity(ops.len());
        for op in ops {
            model.validate(op).map_err(|message| CheckError::BadOp {
                line: op.line,
                model: model.name(),
                message,
            })?;
            if !(op.outcome == Outcome::Unknown && model.is_read_only(op)) {
                kept.push(op);
            }
        }
        if kept.iter().any(|op| search::is_open_op(op)) {
            let reads: Vec<&Op> = kept.iter().copied().filter(|op| op.outcome == Outcome::Ok && model.observes(op)).collect();
            kept.retain(|op| !(search::is_open_op(op) && model.never_seen(op, &reads)));
        }
        partitions.push(kept);
    }
    Ok(partitions)
}

fn check_partitions<M: Model>(
    model: &M,
    history: &OpHistory,
    partitions: &[Vec<&Op>],
    config: &CheckConfig,
    started: Instant,
) -> Vec<KeyResult> {
    // Largest keys first, so the last worker is not left with a giant.
    let mut order: Vec<usize> = (0..partitions.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(partitions[i].len()));
    let threads = config.threads.clamp(1, partitions.len().max(1));
    let cancel = AtomicBool::new(false);
    let budget = Budget {
        deadline: config.budget_ms.map(|ms| started + Duration::from_millis(ms)),
        memory_bytes_max: (config.memory_budget_mb << 20) / threads as u64,
        cancel: &cancel,
    };
    let next = AtomicUsize::new(0);
    let cancel_reason = std::sync::OnceLock::new();
    let worker = || {
        let mut done = Vec::new();
        let mut cache = Cache::new(1);
        loop {
            let at = next.fetch_add(1, Ordering::Relaxed);
            let Some(&index) = order.get(at) else { break };
            let report = search::search(model, &partitions[index], &budget, &mut cache);
            let mut result = key_result(&history.keys[index], &partitions[index], report.outcome);
            result.configurations = report.configurations;
            if result.verdict == Verdict::Invalid && config.stop_at_first_invalid {
                cancel_reason.get_or_init(|| format!("not decided: stopped once key {:?} was found invalid", result.key));
                cancel.store(true, Ordering::Relaxed);
            }
            done.push((index, result));
        }
        done
    };
    // This thread is one of the workers: a thread fewer to start, and one
    // malloc arena fewer holding freed caches.
    let mut results: Vec<(usize, KeyResult)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..threads).map(|_| scope.spawn(worker)).collect();
        let mut results = worker();
        for handle in handles {
            results.extend(handle.join().expect("a search thread panicked"));
        }
        results
    });
    results.sort_by_key(|(index, _)| *index);
    let mut keys: Vec<KeyResult> = results.into_iter().map(|(_, result)| result).collect();
    if let Some(reason) = cancel_reason.get() {
        for key in keys.iter_mut().filter(|k| k.verdict == Verdict::Unknown) {
            key.reason = Some(reason.clone());
        }
    }
    keys
}

/// A key that would be valid without one acknowledged observation of its
/// state (a read that returned) is `unknown`: nothing was shown either way.
fn require_evidence<M: Model>(model: &M, key: &mut KeyResult, ops: &[Op]) {
    // A Jepsen `:fail :cas` (Outcome::Failed) happened and saw the state
    // was not `from`: evidence too.
    let observed = |op: &Op| matches!(op.outcome, Outcome::Ok | Outcome::Failed) && model.observes(op);
    if key.verdict != Verdict::Valid || ops.iter().any(observed) {
        return;
    }
    let reads = ops.iter().filter(|op| model.is_read_only(op)).count();
    key.verdict = Verdict::Unknown;
    key.reason = Some(format!(
        "no evidence: no read of this key returned ({} operations, {reads} of them reads of unknown outcome; failed reads did not happen and are not counted)",
        ops.len()
    ));
}

fn key_result(key: &str, ops: &[&Op], outcome: SearchOutcome) -> KeyResult {
    let mut result = KeyResult {
        key: key.to_string(),
        verdict: Verdict::Valid,
        op_count: ops.len() as u64,
        configurations: 0,
        reason: None,
        counterexample: None,
    };
    match outcome {
        SearchOutcome::Linearizable => {}
        SearchOutcome::OutOfBudget(reason) => {
            result.verdict = Verdict::Unknown;
            result.reason = Some(reason);
        }
        SearchOutcome::NotLinearizable(stuck) => {
            result.verdict = Verdict::Invalid;
            result.reason = Some(format!("no linearization: {}", ops[stuck.stuck_op as usize].describe()));
            result.counterexample = Some(counterexample(key, ops, stuck));
        }
    }
    result
}

fn counterexample(key: &str, ops: &[&Op], stuck: Stuck) -> Counterexample {
    let summary = |i: &u32| OpSummary::from(ops[*i as usize]);
    let tail_from = stuck.prefix.len().saturating_sub(COUNTEREXAMPLE_PREFIX_MAX);
    Counterexample {
        key: key.to_string(),
        prefix_len: stuck.prefix.len() as u64,
        prefix_tail: stuck.prefix[tail_from..].iter().map(summary).collect(),
        stuck_op: summary(&stuck.stuck_op),
        concurrent: stuck.concurrent.iter().map(summary).collect(),
        state: stuck.state,
    }
}
