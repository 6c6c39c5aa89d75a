//! The single task that owns the Raft core, the WAL, the snapshot store and
//! the state machine, and runs the Ready loop:
//! send `messages` → install snapshot → append + fsync (`persist_ready`) →
//! send `messages_after_persist` → apply → serve reads → `advance` → compact.
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::client::{ClientRequest, Responder};
use super::ServerError;
use crate::bugs::Bugs;
use crate::kv::{Command, KvState};
use crate::mode::Mode;
use crate::protocol::{Detail, ErrorCode, Operation, Request, Response};
use crate::raft::{Entry, EntryKind, Message, RawNode, Ready, Role, Snapshot, SnapshotMeta, StepError};
use crate::snapshot::{SnapshotStore, StoredSnapshot};
use crate::transport::Outbound;
use crate::wal::{self, Record, Wal, WalEntry};

mod deadlines;
mod early_acks;
mod lease;
mod membership;
mod reads;
mod responses;
mod txn;

pub use lease::WallClockLease;

use membership::membership_value;
use responses::{fail, outcome_response, refusal};
use txn::{Reply, Settled};

/// Requests or peer messages taken in one wake-up; they share one Ready and
/// so one fsync (group commit).
const INPUT_BATCH_MAX: usize = 1024;
/// Ready rounds handled before the loop looks at its inputs again.
const READY_ROUNDS_MAX: usize = 64;

struct Waiter {
    id: u64,
    term: u64,
    /// Followers that must hold the entry before an early acknowledgement
    /// (weaker modes, `ack-before-commit`); `None` waits for the commit.
    early_followers: Option<usize>,
    /// Followers that must hold the entry before an applied write is
    /// acknowledged (`sync` mode); `None` answers at apply.
    copies_after_apply: Option<usize>,
    deadline: Instant,
    responder: Responder,
    /// What the applied entry's outcome becomes in the answer.
    reply: Reply,
}

struct ReadWaiter {
    id: u64,
    key: String,
    deadline: Instant,
    responder: Responder,
}

pub struct Core {
    pub raft: RawNode,
    pub wal: Wal,
    pub snapshots: SnapshotStore,
    pub kv: KvState,
    pub outbound: Outbound,
    pub applied: (u64, u64),
    pub snapshot_index: u64,
    pub snapshot_entries: u64,
    pub request_timeout: Duration,
    writes: BTreeMap<u64, Waiter>,
    /// Applied writes waiting for more copies (`sync`), with their answer.
    replicating: BTreeMap<u64, (Waiter, Response)>,
    reads_unconfirmed: HashMap<u64, ReadWaiter>,
    reads_confirmed: Vec<(u64, ReadWaiter)>,
    read_ctx_next: u64,
    /// fsyncs issued; with group commit this grows slower than the writes.
    wal_syncs: u64,
    /// Planted bugs and the replication mode; the defaults are the correct node.
    pub bugs: Bugs,
    pub mode: Mode,
    /// The planted `lease-wallclock` bug's lease; `None` without the bug.
    pub lease_wallclock: Option<WallClockLease>,
    /// Role, term and leader last logged, so each change is logged once.
    role_logged: (Role, u64, Option<u64>),
    /// Safety-violation lines are rate-limited per peer: a broken peer
    /// repeats the same message many times a second.
    violations: HashMap<u64, ViolationLog>,
}

/// When the last safety-violation line about one peer was written, and how
/// many were dropped since.
#[derive(Default)]
struct ViolationLog {
    last_logged: Option<Instant>,
    suppressed: u64,
}

/// At most one safety-violation line per peer per interval.
const VIOLATION_LOG_INTERVAL: Duration = Duration::from_secs(1);

pub struct Inputs {
    pub clients: mpsc::Receiver<ClientRequest>,
    pub peers: mpsc::Receiver<Message>,
    pub tick: Duration,
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mut raft: RawNode,
        wal: Wal,
        snapshots: SnapshotStore,
        kv: KvState,
        outbound: Outbound,
        applied: (u64, u64),
        snapshot_entries: u64,
        request_timeout: Duration,
    ) -> Core {
        // A snapshot from the network is decoded before the core adopts it:
        // one the state machine cannot restore from is dropped there (and
        // logged by `step`), leaving the log, commit index and state as they were.
        raft.set_snapshot_check(|data| {
            KvState::from_bytes(data)
                .map(drop)
                .map_err(|e| e.to_string())
        });
        let status = raft.status();
        Core {
            raft,
            wal,
            snapshots,
            kv,
            outbound,
            applied,
            snapshot_index: applied.0,
            snapshot_entries,
            request_timeout,
            writes: BTreeMap::new(),
            replicating: BTreeMap::new(),
            reads_unconfirmed: HashMap::new(),
            reads_confirmed: Vec::new(),
            read_ctx_next: 1,
            wal_syncs: 0,
            bugs: Bugs::default(),
            mode: Mode::default(),
            lease_wallclock: None,
            role_logged: (status.role, status.term, status.leader),
            violations: HashMap::new(),
        }
    }

    /// Runs until `shutdown` resolves (Ok) or the disk fails (Err).
    pub async fn run(
        mut self,
        mut inputs: Inputs,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServerError> {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(inputs.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // The event loop runs for the life of the process.
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => return Ok(()),
                _ = ticker.tick() => {
                    self.raft.tick();
                    self.expire(Instant::now());
                }
                Some(m) = inputs.peers.recv() => {
                    self.step(m);
                    for _ in 1..INPUT_BATCH_MAX {
                        let Ok(m) = inputs.peers.try_recv() else { break };
                        self.step(m);
                    }
                }
                Some(r) = inputs.clients.recv() => {
                    self.on_client(r);
                    for _ in 1..INPUT_BATCH_MAX {
                        let Ok(r) = inputs.clients.try_recv() else { break };
                        self.on_client(r);
                    }
                }
            }
            self.drain_ready()?;
            self.log_role_change();
            self.answer_early_writes();
        }
    }

    fn step(&mut self, m: Message) {
        let (from, kind, term) = (m.from, m.body.kind(), m.term);
        let acknowledges = lease::acknowledges_leader(&m.body);
        match self.raft.step(m) {
            Ok(()) if acknowledges => self.lease_acknowledged(from, term),
            Ok(()) => {}
            // Not this node's fault, but the cluster is broken: an error
            // line the harness's log check reports.
            Err(e @ StepError::SafetyViolation { .. }) => {
                let now = Instant::now();
                // Bounded: messages from unknown peers are refused before this.
                let log = self.violations.entry(from).or_default();
                if log.last_logged.is_some_and(|t| now.duration_since(t) < VIOLATION_LOG_INTERVAL) {
                    log.suppressed += 1;
                    return;
                }
                let suppressed = std::mem::take(&mut log.suppressed);
                log.last_logged = Some(now);
                tracing::error!(from, kind, error = %e, suppressed, "dropping peer message");
            }
            Err(e) => tracing::warn!(from, kind, error = %e, "dropping peer message"),
        }
    }

    /// One line per election outcome seen here: what an operator reads
    /// first when a run goes wrong (which leader, in which term). A
    /// follower is logged once it knows its leader.
    fn log_role_change(&mut self) {
        let status = self.raft.status();
        let now = (status.role, status.term, status.leader);
        let unsettled = status.role == Role::PreCandidate || (status.role == Role::Follower && status.leader.is_none());
        if now == self.role_logged || unsettled {
            return;
        }
        self.role_logged = now;
        tracing::info!(role = ?status.role, term = status.term, leader = ?status.leader, "role changed");
    }

    fn drain_ready(&mut self) -> Result<(), ServerError> {
        for _ in 0..READY_ROUNDS_MAX {
            if !self.raft.has_ready() {
                return Ok(());
            }
            let ready = self.raft.ready();
            self.handle_ready(ready)?;
        }
        Ok(())
    }

    fn handle_ready(&mut self, mut ready: Ready) -> Result<(), ServerError> {
        // A leader's appends may go out before its own write: they promise nothing.
        for m in std::mem::take(&mut ready.messages) {
            self.outbound.send(m);
        }
        if let Some(snapshot) = &ready.snapshot {
            self.install_snapshot(snapshot)?;
        }
        self.persist_ready(&ready)?;
        for m in std::mem::take(&mut ready.messages_after_persist) {
            self.outbound.send(m);
        }
        for entry in &ready.committed_entries {
            self.apply(entry);
        }
        for read in &ready.read_states {
            if let Some(waiter) = self.reads_unconfirmed.remove(&read.ctx) {
                self.reads_confirmed.push((read.index, waiter));
            }
        }
        self.serve_reads();
        self.raft.advance(ready);
        self.maybe_compact()
    }

    /// The durability point: entries and hard state reach the disk before any
    /// message that depends on them is sent and before any client is answered.
    fn persist_ready(&mut self, ready: &Ready) -> Result<(), ServerError> {
        let mut records: Vec<Record> = ready.entries.iter().map(to_record).collect();
        if let Some(hs) = &ready.hard_state {
            let vote = hs.vote.unwrap_or(0);
            records.push(Record::HardState(wal::HardState {
                term: hs.term,
                vote,
                commit: hs.commit,
            }));
        }
        let must_sync = !self.bugs.no_fsync && (ready.must_sync || !ready.entries.is_empty());
        tokio::task::block_in_place(|| {
            self.wal.append(&records)?;
            if must_sync {
                self.wal.sync()?;
            }
            Ok::<(), wal::WalError>(())
        })?;
        self.wal_syncs += u64::from(must_sync);
        Ok(())
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), ServerError> {
        let (index, term) = (snapshot.meta.last_index, snapshot.meta.last_term);
        // The core hands out only snapshots that passed this same decode
        // (its snapshot check, set in `new`), so a failure here is a bug.
        let kv = KvState::from_bytes(&snapshot.data)
            .expect("the Raft core adopted a snapshot its check should have rejected");
        tokio::task::block_in_place(|| {
            self.snapshots.save(&StoredSnapshot {
                index,
                term,
                voters: snapshot.meta.voters.clone(),
                learners: snapshot.meta.learners.clone(),
                data: snapshot.data.clone(),
            })?;
            self.wal.compact(index, term)?;
            Ok::<(), ServerError>(())
        })?;
        tracing::info!(index, term, "installed snapshot from leader");
        self.kv = kv;
        self.applied = (index, term);
        self.snapshot_index = index;
        // Writes the snapshot covers can no longer be matched to their entries.
        let covered: Vec<u64> = self.writes.range(..=index).map(|(i, _)| *i).collect();
        for i in covered {
            if let Some(w) = self.writes.remove(&i) {
                w.responder
                    .answer(fail(w.id, ErrorCode::Timeout, false, Detail::None));
            }
        }
        Ok(())
    }

    fn apply(&mut self, entry: &Entry) {
        if entry.index <= self.applied.0 {
            return;
        }
        assert_eq!(entry.index, self.applied.0 + 1, "committed entries must arrive in order without gaps");
        self.applied = (entry.index, entry.term);
        let status = self.raft.status();
        let dropped = self.bugs.drops_entry(status.id, status.role == Role::Leader, entry.index);
        if entry.kind == EntryKind::Config {
            self.applied_change(entry);
            return;
        }
        let outcome = if entry.data.is_empty() || dropped {
            None
        } else {
            match serde_json::from_slice::<Command>(&entry.data) {
                Ok(command) => Some(self.kv.apply(entry.index, &command)),
                Err(e) => {
                    tracing::error!(index = entry.index, error = %e, "undecodable committed entry skipped");
                    None
                }
            }
        };
        let Some(waiter) = self.writes.remove(&entry.index) else {
            return;
        };
        // Another leader's entry took this index: ours can never commit.
        let outcome = outcome.filter(|_| waiter.term == entry.term);
        let Some((waiter, settled)) = self.settle(waiter, outcome) else {
            return;
        };
        let response = match settled {
            Settled::Applied(outcome) if waiter.copies_after_apply.is_some() => {
                // Answered once every follower holds it (answer_early_writes).
                let response = outcome_response(waiter.id, outcome);
                self.replicating.insert(entry.index, (waiter, response));
                return;
            }
            Settled::Applied(outcome) => outcome_response(waiter.id, outcome),
            Settled::Lost => fail(waiter.id, ErrorCode::NotLeader, true, Detail::Leader(self.raft.status().leader)),
            Settled::Unknown => fail(waiter.id, ErrorCode::Timeout, false, Detail::None),
        };
        waiter.responder.answer(response);
    }

    fn maybe_compact(&mut self) -> Result<(), ServerError> {
        let (index, term) = self.applied;
        if index < self.snapshot_index + self.snapshot_entries {
            return Ok(());
        }
        let data = self.kv.to_bytes();
        let membership = self.raft.membership_at(index);
        let meta = SnapshotMeta {
            last_index: index,
            last_term: term,
            voters: membership.voters.into_iter().collect(),
            learners: membership.learners.into_iter().collect(),
        };
        tokio::task::block_in_place(|| {
            self.snapshots.save(&StoredSnapshot {
                index,
                term,
                voters: meta.voters.clone(),
                learners: meta.learners.clone(),
                data: data.clone(),
            })?;
            self.wal.compact(index, term)?;
            Ok::<(), ServerError>(())
        })?;
        match self.raft.compact(Snapshot { meta, data }) {
            Ok(()) => tracing::info!(index, term, "snapshot taken, log compacted"),
            Err(e) => tracing::warn!(index, error = %e, "core refused compaction"),
        }
        self.snapshot_index = index;
        Ok(())
    }

    fn on_client(&mut self, r: ClientRequest) {
        let ClientRequest { request, responder } = r;
        let Request {
            id,
            client,
            seq,
            operation,
        } = request;
        let deadline = Instant::now() + self.request_timeout;
        match operation {
            Operation::Status => responder.answer(Response::Ok {
                id,
                value: self.status_value(),
            }),
            Operation::Get { key } => self.start_read(ReadWaiter {
                id,
                key,
                deadline,
                responder,
            }),
            Operation::Write(op) => self.start_write(Command { client, seq, op }, Reply::Outcome, id, deadline, responder),
            Operation::Txn(ops) => self.start_txn(ops, client, seq, id, deadline, responder),
            Operation::Change(change) => self.start_change(change, id, deadline, responder),
            Operation::TransferLeader(to) => self.start_transfer(to, id, responder),
            Operation::Members => responder.answer(Response::Ok { id, value: membership_value(self.raft.membership()) }),
        }
    }

    /// The write path: answered when the entry is applied (so after it was
    /// fsynced on a quorum), or `timeout` at the deadline.
    fn start_write(&mut self, command: Command, reply: Reply, id: u64, deadline: Instant, responder: Responder) {
        let data = serde_json::to_vec(&command).expect("commands always serialize");
        let early_followers = self.early_followers(&command.op);
        let copies_after_apply = self.copies_after_apply();
        match self.raft.propose(data) {
            Ok((index, term)) => {
                self.writes.insert(
                    index,
                    Waiter {
                        id,
                        term,
                        early_followers,
                        copies_after_apply,
                        deadline,
                        responder,
                        reply,
                    },
                );
            }
            Err(e) => responder.answer(refusal(id, e)),
        }
    }

    fn status_value(&self) -> Value {
        let s = self.raft.status();
        let role = match s.role {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::PreCandidate => "pre_candidate",
        };
        json!({"id": s.id, "role": role, "term": s.term, "leader": s.leader, "commit": s.commit,
               "applied": self.applied.0, "last_index": s.last_index, "snapshot_index": self.snapshot_index, "wal_syncs": self.wal_syncs,
               "digest": self.kv.digest(), "voters": &self.raft.membership().voters,
               "learners": &self.raft.membership().learners, "clock_ms": clock_ms()})
    }

}

/// The wall clock for `status`, in ms since the Unix epoch (0 before it):
/// reported for the harness's clock faults, never used for a decision.
fn clock_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

fn to_record(e: &Entry) -> Record {
    Record::Entry(WalEntry {
        index: e.index,
        term: e.term,
        payload: e.data.clone(),
        config: e.kind == EntryKind::Config,
    })
}
