//! Membership changes through the system's own procedure: a spare (or a
//! removed) node joins with an empty data dir as a learner, starts, and
//! is promoted once the system says it caught up; a member leaves and is
//! stopped. The harness's list of members follows what the system
//! confirmed, so leader queries, digests and fault targets follow it too.
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{lock, Cluster, ClusterError, MemberError, Members, NodeEnv, NodeState};

/// Bound on retrying one membership request the system says to retry
/// (promotion waits for the learner to catch up). Short enough that a
/// heal blocked by a partition of another nemesis gives up and leaves the
/// rest to the next heal.
const RETRY_MS_MAX: u64 = 8_000;
/// Bound on retrying while no member names a leader: a few elections'
/// worth. The nemesis acts on one fault at a time, so while it waits here
/// the faults of other families that may be why the cluster has no
/// leader stay in force; measured before this bound, the default test
/// spent about 10 s of its 30 s in such waits.
const LEADERLESS_RETRY_MS_MAX: u64 = 2_000;
/// Pause between two tries.
const RETRY_PAUSE_MS: u64 = 100;
/// Bound on waiting for a leadership transfer to show.
const TRANSFER_WAIT_MS_MAX: u64 = 3_000;

/// What one membership request took, for the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberChange {
    pub action: &'static str,
    pub tries: u32,
    pub waited_ms: u64,
}

impl Cluster {
    /// The members now, sorted.
    pub fn members(&self) -> Vec<usize> {
        lock(&self.inner.members).clone()
    }

    pub fn is_member(&self, node: usize) -> bool {
        lock(&self.inner.members).contains(&node)
    }

    /// Slots that are not members: spares never added, and removed nodes.
    pub fn absent(&self) -> Vec<usize> {
        (0..self.slots()).filter(|node| !self.is_member(*node)).collect()
    }

    /// The membership as the system reports it (None: no answer).
    pub async fn reported_members(&self) -> Option<Members> {
        let envs = self.running_member_envs();
        self.inner.db.members(&envs).await
    }

    fn running_member_envs(&self) -> Vec<NodeEnv> {
        let members = self.members();
        members.iter().filter(|node| self.node_state(**node) == NodeState::Running).map(|node| self.node_env(*node)).collect()
    }

    /// Take in `node`, which must be absent: wipe its data dir, ask the
    /// cluster to add it as a learner, then start it and wait until it is
    /// ready. Promote it with [`Cluster::promote_member`].
    pub async fn add_learner(&self, node: usize) -> Result<MemberChange, ClusterError> {
        self.check(node)?;
        if self.is_member(node) {
            return Err(refused(node, "add", "it is a member already".into()));
        }
        self.kill(node).await?;
        self.wipe(node).await?;
        let joining: Vec<usize> = {
            let mut members = self.members();
            members.push(node);
            members.sort_unstable();
            members
        };
        lock(&self.inner.envs)[node].joining = Some(joining);
        let change = self.retry(node, Request::Add).await?;
        insert_sorted(&mut lock(&self.inner.members), node);
        self.launch(node).await?;
        self.settle(node).await?;
        Ok(change)
    }

    /// Make the learner `node` a voter, retrying while it catches up.
    pub async fn promote_member(&self, node: usize) -> Result<MemberChange, ClusterError> {
        self.check(node)?;
        self.retry(node, Request::Promote).await
    }

    /// Ask the cluster to remove `node`, then stop it; its log and data
    /// stay where they are.
    pub async fn remove_member(&self, node: usize) -> Result<MemberChange, ClusterError> {
        self.check(node)?;
        if !self.is_member(node) {
            return Err(refused(node, "remove", "it is not a member".into()));
        }
        if self.members().len() == 1 {
            return Err(refused(node, "remove", "it is the last member".into()));
        }
        self.inner.supervisor.set_leaving(node, true);
        let change = self.retry(node, Request::Remove).await;
        if change.is_err() {
            self.inner.supervisor.set_leaving(node, false);
        }
        let change = change?;
        lock(&self.inner.members).retain(|member| *member != node);
        self.kill(node).await?;
        Ok(change)
    }

    /// Ask the leader to hand over to the member `to`, and wait (bounded)
    /// until the members name `to` as leader. `Unsupported` when the
    /// system has no such request.
    pub async fn transfer_leader(&self, to: usize) -> Result<MemberChange, MemberError> {
        let started = Instant::now();
        self.inner.db.transfer_leader(to, &self.running_member_envs()).await?;
        let deadline = started + Duration::from_millis(TRANSFER_WAIT_MS_MAX);
        let mut tries = 0;
        // Bounded by the deadline.
        while Instant::now() < deadline {
            tries += 1;
            if self.leader().await == Some(to) {
                return Ok(MemberChange { action: "transfer", tries, waited_ms: started.elapsed().as_millis() as u64 });
            }
            tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
        }
        Err(MemberError::Retry(format!("n{} did not lead within {TRANSFER_WAIT_MS_MAX} ms", to + 1)))
    }

    /// One removal request for `node`, sent through `via` alone and not
    /// retried, with no change to the members the harness keeps: what an
    /// operator's tool does when it asks a node it believes leads. The
    /// harness learns the outcome from [`Cluster::forget_removed`].
    pub async fn ask_removal_via(&self, via: usize, node: usize) -> Result<(), MemberError> {
        let envs = vec![self.node_env(via)];
        self.inner.db.remove_member(node, &envs).await
    }

    /// Stop and forget the members the system no longer reports (a change
    /// the harness did not see complete); returns them.
    pub async fn forget_removed(&self, reported: &Members) -> Result<Vec<usize>, ClusterError> {
        let gone: Vec<usize> = self
            .members()
            .into_iter()
            .filter(|node| !reported.voters.contains(node) && !reported.learners.contains(node))
            .collect();
        for &node in &gone {
            self.inner.supervisor.set_leaving(node, true);
            lock(&self.inner.members).retain(|member| *member != node);
            self.kill(node).await?;
        }
        Ok(gone)
    }

    /// Send one request through the running members until it is done, the
    /// system refuses it, or `RETRY_MS_MAX` passes. A request whose answer
    /// was lost may still have been done: a refusal counts as done when the
    /// reported membership shows the change.
    async fn retry(&self, node: usize, request: Request) -> Result<MemberChange, ClusterError> {
        let action = request.name();
        let env = self.node_env(node);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(RETRY_MS_MAX);
        let mut tries = 0;
        // Bounded by the deadline.
        loop {
            tries += 1;
            let envs = self.running_member_envs();
            let db = &self.inner.db;
            let answer = match request {
                Request::Add => db.add_member(node, &env, &envs).await,
                Request::Promote => db.promote_member(node, &envs).await,
                Request::Remove => db.remove_member(node, &envs).await,
            };
            let change = MemberChange { action, tries, waited_ms: started.elapsed().as_millis() as u64 };
            match answer {
                Ok(()) => return Ok(change),
                Err(MemberError::Retry(message)) if Instant::now() >= deadline => {
                    return Err(refused(node, action, format!("still refused after {tries} tries in {RETRY_MS_MAX} ms: {message}")))
                }
                Err(MemberError::NoLeader(message)) if started.elapsed() >= Duration::from_millis(LEADERLESS_RETRY_MS_MAX) => {
                    return Err(refused(node, action, format!("no leader after {tries} tries in {LEADERLESS_RETRY_MS_MAX} ms: {message}")))
                }
                Err(MemberError::Retry(_) | MemberError::NoLeader(_)) => tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await,
                Err(error) => {
                    let reported = self.inner.db.members(&envs).await;
                    return match reported.filter(|members| request.shows(node, members)) {
                        Some(_) => Ok(change),
                        None => Err(refused(node, action, error.to_string())),
                    };
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Request {
    Add,
    Promote,
    Remove,
}

impl Request {
    fn name(self) -> &'static str {
        match self {
            Request::Add => "add",
            Request::Promote => "promote",
            Request::Remove => "remove",
        }
    }

    /// The reported membership shows this request done for `node`.
    fn shows(self, node: usize, members: &Members) -> bool {
        let voter = members.voters.contains(&node);
        let learner = members.learners.contains(&node);
        match self {
            Request::Add => voter || learner,
            Request::Promote => voter,
            Request::Remove => !voter && !learner,
        }
    }
}

fn refused(node: usize, action: &'static str, message: String) -> ClusterError {
    ClusterError::Membership { node, action, message }
}

fn insert_sorted(members: &mut Vec<usize>, node: usize) {
    if let Err(at) = members.binary_search(&node) {
        members.insert(at, node);
    }
}
