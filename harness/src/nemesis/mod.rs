//! Nemeses: fault injection against a running cluster.
//!
//! Each fault family is one small implementation of [`Nemesis`] in its own
//! file (`kill`, `pause`, `partition`, `link`, `power`, `corrupt`, `disk`, `clock`), and the scripted
//! Raft scenarios live in `scenarios/` (`revote`, `figure8`); a test can add
//! nemeses of its own ([`NemesisFactory`], `Fault::Custom`). `mix` composes them, routing
//! each fault to the one nemesis that claims its family. What to break is
//! chosen as plain data first (a target list, a `Grudge`) by pure, seeded,
//! unit-tested functions, and only then applied to the cluster. `schedule`
//! decides when: fault and heal alternate at seeded random intervals.
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::cluster::{BoxFuture, Cluster, ClusterError};

pub mod clock;
pub mod corrupt;
pub mod disk;
mod fault;
mod fault_modes;
pub mod kill;
pub mod link;
pub mod membership;
pub mod mix;
pub mod partition;
pub mod pause;
pub mod power;
pub mod recorded;
pub mod scenarios;
pub mod schedule;
pub mod targets;

pub use fault::{ClockMode, CorruptMode, DiskMode, Fault, FaultFamily, KillTarget, LinkMode, MembershipChange, PartitionMode, PauseTarget, PowerTarget, FAMILY_NAMES};
pub use mix::{FamilySettings, Mix};
pub use schedule::{Schedule, ScheduleStep};
pub use targets::{Targets, TargetsBy};

#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    #[error("nemesis: {0}")]
    Cluster(#[from] ClusterError),
    #[error("nemesis: no nemesis handles {0}")]
    Unhandled(Fault),
    #[error("nemesis: {0:?} is claimed by two nemeses")]
    Overlap(FaultFamily),
}

/// Builds a nemesis of your own (the Rust API) from a seed of its own.
pub type NemesisFactory = std::sync::Arc<dyn Fn(u64) -> Box<dyn Nemesis> + Send + Sync>;

/// What a nemesis did, for the history's `value` field.
pub type Effect = serde_json::Value;

/// One fault family. `invoke` applies a fault and says what it did; `heal`
/// undoes everything this nemesis has in force (and is a no-op otherwise).
///
/// A nemesis that can say what it is about to hit splits `invoke` in two:
/// `choose` (pure: its rng, the cluster's size and the leader the cluster
/// named just now) and `apply` (exactly those targets). The runner then
/// records the targets in `schedule.jsonl`, and a replay hands them back to
/// `apply`. The defaults suit a nemesis that chooses as it acts (the
/// scripted scenarios, most nemeses of your own): no targets, and `apply`
/// chooses again through `invoke`.
pub trait Nemesis: Send {
    fn handles(&self) -> Vec<FaultFamily>;
    fn invoke<'a>(&'a mut self, fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>>;
    fn heal<'a>(&'a mut self, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>>;

    fn choose(&mut self, _fault: Fault, _nodes: usize, _leader: Option<usize>) -> Option<Targets> {
        None
    }

    fn apply<'a>(&'a mut self, fault: Fault, _targets: Targets, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        self.invoke(fault, cluster)
    }
}

/// `invoke` for a nemesis that chooses and applies: asks the cluster for
/// its leader only when the fault may aim at it or (a scripted scenario)
/// builds its groups around it.
pub async fn choose_then_apply<N: Nemesis + ?Sized>(nemesis: &mut N, fault: Fault, cluster: &Cluster) -> Result<Effect, NemesisError> {
    // Membership changes take the leader at times (a removal, a crash).
    let leader = match fault.is_leader_targeted() || fault.is_scripted() || fault.family() == FaultFamily::Membership {
        true => cluster.leader().await,
        false => None,
    };
    let targets = choose_among_members(nemesis, fault, &cluster.members(), leader).ok_or(NemesisError::Unhandled(fault))?;
    nemesis.apply(fault, targets, cluster).await
}

/// `choose` over the cluster's members now: the nemesis picks among
/// positions `0..members.len()` (the leader given as its position), and
/// the targets name the members at those positions. Without membership
/// changes the members are `0..nodes` and nothing is renumbered.
pub fn choose_among_members<N: Nemesis + ?Sized>(
    nemesis: &mut N,
    fault: Fault,
    members: &[usize],
    leader: Option<usize>,
) -> Option<Targets> {
    let position = leader.and_then(|leader| members.iter().position(|member| *member == leader));
    let targets = nemesis.choose(fault, members.len(), position)?;
    Some(targets.relabel(|at| members.get(at).copied().unwrap_or(at)))
}

/// Node names as the history shows them: `n1` is index 0 (faultline-node id 1).
pub fn node_name(node: usize) -> String {
    format!("n{}", node + 1)
}

pub fn node_names(nodes: &[usize]) -> Vec<String> {
    nodes.iter().map(|node| node_name(*node)).collect()
}

/// `count` distinct nodes out of `0..nodes`, chosen by the seeded rng, sorted.
pub fn choose_nodes(rng: &mut ChaCha8Rng, nodes: usize, count: usize) -> Vec<usize> {
    assert!(count <= nodes, "cannot choose {count} of {nodes} nodes");
    let mut all: Vec<usize> = (0..nodes).collect();
    all.shuffle(rng);
    let mut chosen: Vec<usize> = all.into_iter().take(count).collect();
    chosen.sort_unstable();
    chosen
}

/// The leader if the cluster names one, else a seeded random node. The rng
/// is drawn from either way so the rest of the schedule does not depend on
/// whether a leader was known.
pub async fn leader_or_random(rng: &mut ChaCha8Rng, cluster: &Cluster) -> usize {
    let fallback = rng.random_range(0..cluster.nodes());
    cluster.leader().await.unwrap_or(fallback)
}

/// [`leader_or_random`] with the leader already asked: the same draw.
pub fn leader_or(rng: &mut ChaCha8Rng, nodes: usize, leader: Option<usize>) -> usize {
    let fallback = rng.random_range(0..nodes);
    leader.filter(|leader| *leader < nodes).unwrap_or(fallback)
}
