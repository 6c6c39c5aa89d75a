//! After the test: the history is read back from disk once, with the
//! checkers' own reader, and every event feeds both the checks' history and
//! the report's timeline; then every check runs. What the checks judge is
//! what was durably recorded (the second path).
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use faultline_checkers::bank::{BankConfig, BankHistoryBuilder, BankRead};
use faultline_checkers::read::{EventHistoryBuilder, JsonlEvents};
use faultline_checkers::txn::{ConsistencyModel, Txn, TxnHistoryBuilder, TxnKind};
use faultline_checkers::{OpHistory, ReadError};
use faultline_workloads::CheckerNeed;

use crate::cluster::{FailedRestart, UnexpectedExit};
use crate::plan::TestPlan;
use crate::report::timeline::{Timeline, TimelineBuilder};
use crate::verdict::{bank, check_safely, transactions, unknown_on_panic, Check, Checker, Durability, Linearizable, LogScan, NodeExitsCheck};

use super::phases::Settled;

use super::RunError;

/// What the cluster saw, for the checks beyond the history.
pub struct ClusterFacts {
    pub exits: Vec<UnexpectedExit>,
    pub failed_restarts: Vec<FailedRestart>,
    pub log_paths: Vec<PathBuf>,
    pub log_patterns: Vec<String>,
}

/// Every check of the run, and the timeline for the report.
pub async fn decide(
    plan: &TestPlan,
    history: PathBuf,
    settled: Settled,
    facts: ClusterFacts,
) -> Result<(Vec<Check>, Timeline), RunError> {
    let checkers = history_checkers(plan);
    let transactional = plan.workload.checkers.is_none().then(|| transactions_read(plan)).flatten();
    let model = plan.checks.consistency_model;
    let banking = plan.workload.checkers.is_none() && plan.workload.config.kind.checker() == CheckerNeed::Bank;
    let accounts = plan.workload.config.keys_active;
    let bank_config = BankConfig { accounts, total: faultline_workloads::bank::total(accounts), negative_allowed: false };
    let path = history.clone();
    let task = tokio::task::spawn_blocking(move || {
        let read = read_back(&path, transactional, banking)?;
        let mut checks: Vec<Check> = match read.ops {
            Ok(ops) => checkers.iter().map(|checker| check_safely(checker.as_ref(), &ops)).collect(),
            Err(error) => checkers.iter().map(|checker| Check::failed(checker.name(), format!("history: {error}"))).collect(),
        };
        checks.extend(read.txns.map(|txns| match txns {
            Ok((kind, txns)) => check_transactions(kind, &txns, model),
            Err(error) => Check::failed(transactions::NAME, format!("history: {error}")),
        }));
        checks.extend(read.bank.map(|reads| match reads {
            Ok(reads) => unknown_on_panic(bank::NAME, || bank::check(&reads, bank_config)),
            Err(error) => Check::failed(bank::NAME, format!("history: {error}")),
        }));
        Ok::<_, RunError>((checks, read.timeline))
    });
    let (mut checks, timeline) = task
        .await
        .map_err(|error| RunError::History { path: history, message: format!("checker task: {error}") })??;
    let logs = LogScan::scan(&facts.log_paths, &facts.log_patterns);
    checks.push(settled.liveness.check());
    checks.extend(settled.convergence.map(|convergence| convergence.check()));
    checks.extend([logs.check(), NodeExitsCheck::check(&facts.exits, &facts.failed_restarts)]);
    Ok((checks, timeline))
}

/// The checkers the workload names (or yours, from the Rust API); a
/// transactional workload's checker runs on transactions instead
/// ([`check_transactions`]).
fn history_checkers(plan: &TestPlan) -> Vec<Arc<dyn Checker>> {
    if let Some(checkers) = &plan.workload.checkers {
        return checkers.clone();
    }
    let CheckerNeed::Linearizable { model, durability } = plan.workload.config.kind.checker() else {
        return Vec::new();
    };
    let mut checkers: Vec<Arc<dyn Checker>> = vec![Arc::new(Linearizable { model, budget_ms: plan.checks.check_timeout_ms })];
    if durability {
        checkers.push(Arc::new(Durability));
    }
    checkers
}

/// The transactions the workload's history holds, when one of its
/// checkers judges transactions (the main workload's or the share's).
fn transactions_read(plan: &TestPlan) -> Option<TxnRead> {
    let kind = plan.workload.config.checkers().into_iter().find_map(|need| match need {
        CheckerNeed::Transactions(kind) => Some(kind),
        _ => None,
    })?;
    Some(TxnRead { kind, mixed: plan.workload.config.transactions.is_some() })
}

/// The transaction check, a panic in it becoming `unknown`.
fn check_transactions(kind: TxnKind, txns: &[Txn], model: ConsistencyModel) -> Check {
    unknown_on_panic(transactions::NAME, || transactions::check(kind, txns, model))
}

/// Which transactions [`read_back`] collects.
#[derive(Debug, Clone, Copy)]
pub struct TxnRead {
    pub kind: TxnKind,
    /// Single-key operations run beside the transactions (a transaction
    /// share): only `f: "txn"` events are transactions, and the rest go to
    /// the single-key history alone. Otherwise every client event must be
    /// a transaction, and one that is not is reported.
    pub mixed: bool,
}

/// What one pass over `history.jsonl` gives the checks and the report.
pub struct ReadBack {
    pub ops: Result<OpHistory, ReadError>,
    /// The transactions and their kind, when the workload is transactional.
    pub txns: Option<Result<(TxnKind, Vec<Txn>), ReadError>>,
    /// The committed reads of the balances, for the bank workload.
    pub bank: Option<Result<Vec<BankRead>, ReadError>>,
    pub timeline: Timeline,
}

/// One pass over `history.jsonl`. A line that is not an event is a harness
/// error (the recorder wrote it); a history whose operations do not pair
/// up is the checks' business (they become unknown, naming the line).
pub fn read_back(path: &Path, transactional: Option<TxnRead>, banking: bool) -> Result<ReadBack, RunError> {
    let history_error = |message: String| RunError::History { path: path.to_path_buf(), message };
    let file = std::fs::File::open(path).map_err(|error| history_error(error.to_string()))?;
    let mut ops = Ok(EventHistoryBuilder::new());
    let mixed = transactional.is_some_and(|read| read.mixed);
    let mut txns = transactional.map(|read| Ok((read.kind, TxnHistoryBuilder::new(read.kind))));
    let mut bank = banking.then(|| Ok(BankHistoryBuilder::new()));
    let mut timeline = TimelineBuilder::default();
    let mut events = JsonlEvents::new(BufReader::with_capacity(1 << 20, file));
    for item in events.by_ref() {
        let (line, event) = item.map_err(|error| history_error(error.to_string()))?;
        // A mixed workload's process runs both kinds, one at a time, and
        // each kind is judged by its own checker.
        let is_txn = event.f == faultline_checkers::TXN_F;
        if let (Ok(builder), false) = (&mut ops, mixed && is_txn) {
            if let Err(error) = builder.push(line, &event) {
                ops = Err(error);
            }
        }
        if let (Some(Ok((_, builder))), true) = (&mut txns, !mixed || is_txn) {
            if let Err(error) = builder.push(line, &event) {
                txns = Some(Err(error));
            }
        }
        if let Some(Ok(builder)) = &mut bank {
            if let Err(error) = builder.push(line, &event) {
                bank = Some(Err(error));
            }
        }
        timeline.push(line, &event);
    }
    timeline.started(events.header());
    Ok(ReadBack {
        ops: ops.map(EventHistoryBuilder::finish),
        txns: txns.map(|txns| txns.map(|(kind, builder)| (kind, builder.finish()))),
        bank: bank.map(|bank| bank.map(BankHistoryBuilder::finish)),
        timeline: timeline.finish(),
    })
}
