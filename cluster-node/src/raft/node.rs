//! `RawNode`: the public, single-threaded face of the Raft core. This file
//! holds the state, the public API and the message dispatch; elections,
//! replication, snapshot transfer and reads live in their own modules.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::Config;
use super::error::{CompactError, NewError, ProposeError, StepError};
use super::log::RaftLog;
use super::membership::Membership;
use super::message::{Message, MessageBody};
use super::progress::Progress;
use super::read_queue::ReadQueue;
use super::ready::Ready;
use super::rules;
use super::snapshot_receiver::SnapshotReceiver;
use super::types::{Entry, EntryKind, HardState, ReadState, Restored, Role, Snapshot, Status, Transfer};

/// The seeded election-timeout RNG. Hashes by (seed, position) so model
/// checkers can tell two cores apart by their future random draws too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ElectionRng(ChaCha8Rng);

impl Hash for ElectionRng {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.get_seed().hash(state);
        self.0.get_word_pos().hash(state);
    }
}

/// One Raft peer's protocol state. Drive it with `tick`, `step`, `propose`
/// and `read_index`; drain work with `has_ready` / `ready` / `advance`.
///
/// `step`, `tick`, `propose` and `read_index` may be called between `ready`
/// and `advance`; their output waits for the next `Ready`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawNode {
    pub(super) config: Config,
    pub(super) rng: ElectionRng,
    pub(super) term: u64,
    pub(super) vote: Option<u64>,
    pub(super) role: Role,
    pub(super) leader: Option<u64>,
    pub(super) log: RaftLog,
    /// The configuration in force: the latest in the log (`reconfigure`).
    pub(super) membership: Membership,
    /// The index of the entry that set it; 0 when no entry in the log did.
    pub(super) membership_index: u64,
    /// Ticks since the last election-timer reset (followers, candidates) or
    /// since the last check-quorum round (leaders).
    pub(super) election_elapsed: u32,
    pub(super) heartbeat_elapsed: u32,
    /// This term's randomized election timeout.
    pub(super) election_timeout_ticks: u32,
    /// Votes (or pre-votes) received in the current campaign.
    pub(super) votes: BTreeMap<u64, bool>,
    /// Leader only: replication progress of every other peer.
    pub(super) progress: BTreeMap<u64, Progress>,
    pub(super) reads: ReadQueue,
    /// Follower: the snapshot being received, and the state machine's check
    /// it must pass before it is adopted (`set_snapshot_check`).
    pub(super) snapshot_receiver: SnapshotReceiver,
    /// Leader only: a leadership transfer under way (`transfer.rs`).
    pub(super) transfer: Option<Transfer>,
    pub(super) messages: Vec<Message>,
    pub(super) messages_after_persist: Vec<Message>,
    pub(super) read_states: Vec<ReadState>,
    /// The hard state last handed out in a `Ready`.
    pub(super) hard_state_emitted: HardState,
    pub(super) ready_outstanding: bool,
}

/// Election timeouts the planted `lease-read` bug's lease lasts.
const LEASE_READ_BUG_TIMEOUTS: u32 = 3;

impl RawNode {
    /// Builds a core from the configuration and what the server restored from
    /// disk (`Restored::default()` for a fresh node). `rng_seed` drives every
    /// random choice (the election timeouts).
    pub fn new(config: Config, rng_seed: u64, restored: Restored) -> Result<RawNode, NewError> {
        config.validate()?;
        let log = RaftLog::restore(&restored)?;
        let hard_state = HardState {
            term: restored.hard_state.term,
            vote: restored.hard_state.vote,
            commit: log.committed(),
        };
        if hard_state.term < log.last_term() {
            return Err(NewError::TermBelowLog {
                hard_state_term: hard_state.term,
                log_term: log.last_term(),
            });
        }
        let mut node = RawNode {
            reads: ReadQueue::default(),
            rng: ElectionRng(ChaCha8Rng::seed_from_u64(rng_seed)),
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            membership: Membership::default(),
            membership_index: 0,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            election_timeout_ticks: config.election_timeout_ticks_min,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            snapshot_receiver: SnapshotReceiver::default(),
            transfer: None,
            messages: Vec::new(),
            messages_after_persist: Vec::new(),
            read_states: Vec::new(),
            hard_state_emitted: hard_state,
            ready_outstanding: false,
            config,
        };
        node.refresh_membership();
        node.reset_election_timer();
        Ok(node)
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Follower | Role::PreCandidate | Role::Candidate => self.tick_election(),
        }
    }

    /// How long a leader trusts its leadership without hearing a quorum:
    /// one election timeout, the time after which followers may elect
    /// another leader. The planted `lease-read` bug trusts it for three of
    /// the longest, a lease with no bound from the followers' clocks.
    fn check_quorum_ticks(&self) -> u32 {
        if self.config.bugs.lease_read {
            self.config.election_timeout_ticks_max.saturating_mul(LEASE_READ_BUG_TIMEOUTS)
        } else {
            self.config.election_timeout_ticks_min
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout_ticks {
            match self.may_campaign() {
                true => self.campaign(),
                false => self.reset_election_timer(),
            }
            return;
        }
        if self.role == Role::Candidate {
            self.heartbeat_elapsed += 1;
            if self.heartbeat_elapsed >= self.config.heartbeat_interval_ticks {
                self.heartbeat_elapsed = 0;
                self.retry_vote_requests();
            }
        }
    }

    fn tick_leader(&mut self) {
        self.tick_transfer();
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.check_quorum_ticks() {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.quorum_recently_active() {
                self.become_follower(self.term, None);
                return;
            }
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Feeds one message from a peer. Stale messages are dropped silently;
    /// an error means the message could not have come from a correct peer.
    pub fn step(&mut self, message: Message) -> Result<(), StepError> {
        self.check_addressing(&message)?;
        if message.term > self.term && !self.step_higher_term(&message) {
            return Ok(());
        }
        if message.term < self.term {
            self.step_lower_term(&message);
            return Ok(());
        }
        match message.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } => {
                self.handle_vote_request(&message);
                Ok(())
            }
            _ => match self.role {
                Role::Leader => self.step_leader(message),
                Role::PreCandidate | Role::Candidate => self.step_candidate(message),
                Role::Follower => self.step_follower(message),
            },
        }
    }

    fn check_addressing(&self, message: &Message) -> Result<(), StepError> {
        message.check_bounds()?;
        if message.to != self.config.id {
            return Err(StepError::WrongRecipient {
                to: message.to,
                id: self.config.id,
            });
        }
        // Any other node may be a member this node has not heard of yet (a
        // joining node knows none); only itself and id 0 are impossible.
        if message.from == self.config.id || message.from == 0 {
            return Err(StepError::UnknownPeer { from: message.from });
        }
        Ok(())
    }

    /// A message from a later term. Returns false if it is to be ignored.
    fn step_higher_term(&mut self, message: &Message) -> bool {
        match message.body {
            MessageBody::PreVote { .. } => !self.in_leader_lease(self.config.pre_vote),
            MessageBody::Vote { transfer, .. } => {
                if !transfer && self.in_leader_lease(self.config.check_quorum) {
                    return false;
                }
                self.become_follower(message.term, None);
                true
            }
            // A granted pre-vote carries the term the pre-candidate asked for.
            MessageBody::PreVoteResponse { granted: true } => true,
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => {
                self.become_follower(message.term, Some(message.from));
                true
            }
            _ => {
                self.become_follower(message.term, None);
                true
            }
        }
    }

    /// Within a lease, a node that heard from a live leader ignores
    /// campaigns: this is what keeps a rejoining node from deposing it.
    fn in_leader_lease(&self, enabled: bool) -> bool {
        enabled
            && self.leader.is_some()
            && self.election_elapsed < self.config.election_timeout_ticks_min
    }

    /// A message from an earlier term: answer so the stale sender catches up.
    fn step_lower_term(&mut self, message: &Message) {
        let defends = self.config.check_quorum || self.config.pre_vote;
        match message.body {
            MessageBody::Append { .. } | MessageBody::Heartbeat { .. } if defends => {
                self.send(message.from, MessageBody::HeartbeatResponse { read_seq: 0 });
            }
            MessageBody::PreVote { .. } => {
                self.send(
                    message.from,
                    MessageBody::PreVoteResponse { granted: false },
                );
            }
            _ => {}
        }
    }

    fn step_follower(&mut self, message: Message) -> Result<(), StepError> {
        let from = message.from;
        if message.body.is_from_leader() && self.leader.is_some_and(|leader| leader != from) {
            return Err(StepError::SafetyViolation {
                kind: message.body.kind(),
                from,
                reason: "a second leader in this term",
            });
        }
        match message.body {
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                self.heard_from_leader(from);
                self.handle_append(from, message.term, prev_index, prev_term, entries, commit)
            }
            MessageBody::Heartbeat { commit, read_seq } => {
                self.heard_from_leader(from);
                self.handle_heartbeat(from, commit, read_seq);
                Ok(())
            }
            MessageBody::InstallSnapshot {
                meta,
                offset,
                total_bytes,
                data,
                done,
            } => {
                self.heard_from_leader(from);
                self.handle_snapshot_chunk(from, meta, offset, total_bytes, data, done)
            }
            MessageBody::TimeoutNow => {
                self.handle_timeout_now();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn step_candidate(&mut self, message: Message) -> Result<(), StepError> {
        match message.body {
            MessageBody::PreVoteResponse { granted } if self.role == Role::PreCandidate => {
                self.record_vote(message.from, message.term, granted);
                Ok(())
            }
            MessageBody::VoteResponse { granted } if self.role == Role::Candidate => {
                self.record_vote(message.from, message.term, granted);
                Ok(())
            }
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => {
                self.become_follower(message.term, Some(message.from));
                self.step_follower(message)
            }
            _ => Ok(()),
        }
    }

    fn step_leader(&mut self, message: Message) -> Result<(), StepError> {
        let from = message.from;
        if message.body.is_from_leader() {
            return Err(StepError::SafetyViolation {
                kind: message.body.kind(),
                from,
                reason: "another leader in this leader's term",
            });
        }
        match message.body {
            MessageBody::AppendResponse { index, rejection } => {
                self.handle_append_response(from, index, rejection)
            }
            MessageBody::HeartbeatResponse { read_seq } => {
                self.handle_heartbeat_response(from, read_seq);
                Ok(())
            }
            MessageBody::InstallSnapshotResponse {
                last_index,
                offset_next,
                done,
            } => {
                self.handle_snapshot_response(from, last_index, offset_next, done);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn heard_from_leader(&mut self, leader: u64) {
        self.election_elapsed = 0;
        self.leader = Some(leader);
    }

    /// Queues a message in our current term, sorted by the persist-before-send rule.
    pub(super) fn send(&mut self, to: u64, body: MessageBody) {
        let term = self.term;
        self.send_with_term(to, term, body);
    }

    pub(super) fn send_with_term(&mut self, to: u64, term: u64, body: MessageBody) {
        let message = Message {
            from: self.config.id,
            to,
            term,
            body,
        };
        if rules::must_persist_before_send(&message.body) {
            self.messages_after_persist.push(message);
        } else {
            self.messages.push(message);
        }
    }

    pub(super) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let (min, max) = (
            self.config.election_timeout_ticks_min,
            self.config.election_timeout_ticks_max,
        );
        self.election_timeout_ticks = if min == max {
            min
        } else {
            self.rng.0.random_range(min..=max)
        };
    }

    /// Appends `data` to the log if this node leads; returns the entry's
    /// (index, term). The entry is acknowledged once it shows up committed.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(u64, u64), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if data.is_empty() {
            return Err(ProposeError::Empty);
        }
        if let Some(to) = self.transferring_to() {
            return Err(ProposeError::Transferring { to });
        }
        let limit = self.config.uncommitted_entries_max;
        if self.log.last_index() - self.log.committed() >= u64::from(limit) {
            return Err(ProposeError::TooManyUncommitted { limit });
        }
        let (index, term) = (self.log.last_index() + 1, self.term);
        self.log.push(Entry { term, index, data, kind: EntryKind::Normal });
        self.broadcast_append(false);
        Ok((index, term))
    }

    /// Asks for a linearizable read tagged `ctx`. A later `Ready` carries a
    /// `ReadState { ctx, index }` once a quorum confirmed this leadership;
    /// if leadership is lost first, the read is dropped (the caller times out).
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        self.request_read(ctx)
    }

    pub fn status(&self) -> Status {
        Status {
            id: self.config.id,
            role: self.role,
            term: self.term,
            leader: self.leader,
            commit: self.log.committed(),
            applied: self.log.applied(),
            last_index: self.log.last_index(),
        }
    }

    /// Leader only: the index each follower is known to hold (empty otherwise).
    pub fn follower_matches(&self) -> Vec<u64> {
        self.progress.values().map(|p| p.match_index).collect()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The in-memory log after the latest snapshot (for tests and debugging).
    pub fn entries(&self) -> &[Entry] {
        self.log.entries()
    }

    /// The first index still in the log; earlier ones are in the snapshot.
    pub fn first_index(&self) -> u64 {
        self.log.first_index()
    }

    /// The term of the entry at `index`, if the log still holds it.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        self.log.term(index)
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed(),
        }
    }

    pub fn has_ready(&self) -> bool {
        !self.ready_outstanding
            && (self.hard_state() != self.hard_state_emitted
                || self.log.snapshot_unstable()
                || self.log.has_unstable()
                || !self.messages.is_empty()
                || !self.messages_after_persist.is_empty()
                || self.log.has_next_committed()
                || !self.read_states.is_empty())
    }

    /// Takes the pending work. Panics if the previous `Ready` was not
    /// `advance`d yet (an API misuse, not an operating error).
    pub fn ready(&mut self) -> Ready {
        assert!(
            !self.ready_outstanding,
            "ready() called again before advance()"
        );
        self.ready_outstanding = true;
        let hard_state = self.hard_state();
        let term_or_vote_changed = hard_state.term != self.hard_state_emitted.term
            || hard_state.vote != self.hard_state_emitted.vote;
        let hard_state = (hard_state != self.hard_state_emitted).then(|| {
            self.hard_state_emitted = hard_state.clone();
            hard_state
        });
        let snapshot = self.log.take_unstable_snapshot();
        let entries = self.log.unstable_entries();
        Ready {
            must_sync: term_or_vote_changed || snapshot.is_some() || !entries.is_empty(),
            hard_state,
            snapshot,
            entries,
            messages: std::mem::take(&mut self.messages),
            messages_after_persist: std::mem::take(&mut self.messages_after_persist),
            committed_entries: self
                .log
                .next_committed(u64::from(self.config.apply_entries_per_ready_max)),
            read_states: std::mem::take(&mut self.read_states),
        }
    }

    /// Acknowledges that `ready` was handled: persisted, sent and applied.
    pub fn advance(&mut self, ready: Ready) {
        assert!(self.ready_outstanding, "advance() without a ready()");
        self.ready_outstanding = false;
        // If a conflict truncated part of this batch meanwhile, what is
        // durable is the batch up to its last entry still in the log.
        if let Some(last) = ready
            .entries
            .iter()
            .rev()
            .find(|e| self.log.term(e.index) == Some(e.term))
        {
            self.log.stable_to(last.index, last.term);
        }
        if let Some(last) = ready.committed_entries.last() {
            self.log.applied_to(last.index);
        }
        if self.role == Role::Leader && self.maybe_commit() {
            self.broadcast_append(true);
            self.step_down_if_removed();
        }
    }

    /// Drops log entries covered by `snapshot` (a state-machine image at an
    /// index at or below the applied index) and keeps it for lagging followers.
    pub fn compact(&mut self, snapshot: Snapshot) -> Result<(), CompactError> {
        let (index, term) = (snapshot.meta.last_index, snapshot.meta.last_term);
        let applied = self.log.applied();
        if index > applied {
            return Err(CompactError::BeyondApplied { index, applied });
        }
        let current = self.log.first_index() - 1;
        if index <= current {
            return Err(CompactError::NotNewer { index, current });
        }
        let log_term = self.log.term(index);
        if log_term != Some(term) {
            return Err(CompactError::TermMismatch {
                index,
                term,
                log_term,
            });
        }
        let learners: Vec<u64> = snapshot.meta.learners.clone();
        let in_force = self.membership_at(index);
        let carried = Membership { voters: snapshot.meta.voters.iter().copied().collect(), learners: learners.into_iter().collect() };
        if carried != in_force {
            return Err(CompactError::MembershipMismatch { index, carried: carried.to_string(), in_force: in_force.to_string() });
        }
        self.log.compact(snapshot);
        Ok(())
    }
}
