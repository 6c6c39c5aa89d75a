//! The revote scenario: one election term, two majorities that share one
//! voter, and that voter crash-restarted between the two elections.
//!
//! Random kills almost never restart a voter inside the sub-millisecond
//! window between granting a vote and receiving the winner's first entries,
//! and a vote that is not durable only matters there. This nemesis opens
//! the window on purpose, with nothing but the proxy, kill/pause and the
//! system's own leader report (`Db::leader`):
//!
//! 1. lag: the voter is isolated while the others keep writing, so its log
//!    falls behind (it can then win no election itself);
//! 2. split: the first side, the voter and the second side are cut apart
//!    until the first side has no leader;
//! 3. first election: the first side and the voter are joined, with the
//!    first side's bytes to the voter slowed down, so the voter's vote
//!    reaches the candidate at once but the winner's entries do not;
//! 4. as soon as the first side reports a leader, that leader is frozen
//!    (SIGSTOP) and the voter is killed and restarted;
//! 5. second election: the second side and the voter are joined. A voter
//!    that remembered its vote refuses the second side's candidate in that
//!    term; one that forgot grants it, and the term has two leaders;
//! 6. heal: the network heals and the frozen leader resumes. Two leaders of
//!    one term now meet (a correct system never gets here).
//!
//! Each side plus the voter is a majority, so the cluster size must be odd.
use std::time::Duration;

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio::time::Instant;

use super::partition::{complete_grudge, isolate};
use super::{leader_or_random, node_name, node_names, Effect, Fault, FaultFamily, Nemesis, NemesisError};
use crate::cluster::{BoxFuture, Cluster};
use crate::proxy::{Endpoint, LinkFault};

/// How long the voter is cut off while the others write on.
pub(super) const LAG_MS: u64 = 500;
/// Latency of the first side's bytes to the voter. It must cover the
/// harness's reaction (one leader poll, a SIGSTOP and a SIGKILL, tens of
/// milliseconds) so the voter dies before the winner's first entries
/// arrive, and stay below the candidate's election timeout, or the vote
/// would come back after the candidate gave up on its term.
const VOTER_INBOUND_DELAY_MS: u64 = 150;
/// Bound on waiting for the split cluster's leader to step down.
pub(super) const STEP_DOWN_WAIT_MS: u64 = 3_000;
/// Bound on each of the two elections: several election timeouts.
pub(super) const ELECTION_WAIT_MS: u64 = 4_000;
/// Time between leader polls.
const POLL_MS: u64 = 20;

/// Who plays which part, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    /// Votes in both elections; restarted in between.
    pub voter: usize,
    /// Elects the first leader (with the voter); holds the old leader.
    pub first: Vec<usize>,
    /// Elects the second leader (with the voter).
    pub second: Vec<usize>,
}

impl Roles {
    /// `leader` starts on the first side; the voter and the rest of the
    /// sides are drawn from the seeded rng. Needs an odd `nodes >= 3`.
    pub fn choose(rng: &mut ChaCha8Rng, nodes: usize, leader: usize) -> Roles {
        assert!(nodes >= 3 && nodes % 2 == 1, "revote needs an odd cluster of 3 or more (validated in the spec)");
        assert!(leader < nodes, "leader {leader} is not one of {nodes} nodes");
        let mut others: Vec<usize> = (0..nodes).filter(|node| *node != leader).collect();
        others.shuffle(rng);
        let voter = others[0];
        let side = nodes / 2;
        let mut first: Vec<usize> = std::iter::once(leader).chain(others[1..side].iter().copied()).collect();
        let mut second: Vec<usize> = others[side..].to_vec();
        first.sort_unstable();
        second.sort_unstable();
        Roles { voter, first, second }
    }

    pub(super) fn with_voter(side: &[usize], voter: usize) -> Vec<usize> {
        let mut joined: Vec<usize> = side.iter().copied().chain(std::iter::once(voter)).collect();
        joined.sort_unstable();
        joined
    }

    /// Step 3: the first side and the voter together, the second side apart.
    pub fn first_election(&self) -> crate::proxy::Grudge {
        complete_grudge(&[Roles::with_voter(&self.first, self.voter), self.second.clone()])
    }

    /// Step 5: the second side and the voter together, the first side apart.
    pub fn second_election(&self) -> crate::proxy::Grudge {
        complete_grudge(&[self.first.clone(), Roles::with_voter(&self.second, self.voter)])
    }

    /// Step 2: all three apart.
    pub fn split(&self) -> crate::proxy::Grudge {
        complete_grudge(&[self.first.clone(), vec![self.voter], self.second.clone()])
    }
}

pub struct RevoteNemesis {
    rng: ChaCha8Rng,
    /// The first leader, frozen until heal.
    paused: Option<usize>,
    /// A partition or link fault of ours is in force.
    active: bool,
}

impl RevoteNemesis {
    pub fn new(rng: ChaCha8Rng) -> Self {
        RevoteNemesis { rng, paused: None, active: false }
    }

    async fn scenario(&mut self, cluster: &Cluster) -> Result<Effect, NemesisError> {
        let nodes = cluster.nodes();
        let leader = leader_or_random(&mut self.rng, cluster).await;
        let roles = Roles::choose(&mut self.rng, nodes, leader);
        let mut effect = json!({
            "voter": node_name(roles.voter),
            "first": node_names(&roles.first),
            "second": node_names(&roles.second),
        });
        let proxy = cluster.proxy();
        self.active = true;
        proxy.partition(&isolate(roles.voter, nodes));
        tokio::time::sleep(Duration::from_millis(LAG_MS)).await;
        proxy.partition(&roles.split());
        let stepped_down = poll_leader(cluster, &roles.first, Option::is_none, STEP_DOWN_WAIT_MS).await;
        effect["first_side_stepped_down"] = json!(stepped_down.is_some());
        for &node in &roles.first {
            let slow = LinkFault { delay_ms: VOTER_INBOUND_DELAY_MS, ..LinkFault::default() };
            proxy.set_link_fault(Endpoint::Node(node), Endpoint::Node(roles.voter), slow);
        }
        proxy.partition(&roles.first_election());
        let Some(Some(first_leader)) = poll_leader(cluster, &roles.first, Option::is_some, ELECTION_WAIT_MS).await else {
            effect["outcome"] = json!("the first side elected no leader");
            return Ok(effect);
        };
        // Frozen before its entries reach the voter: it stays a leader of
        // this term until heal, however long the second election takes.
        cluster.pause(first_leader)?;
        self.paused = Some(first_leader);
        effect["first_leader"] = json!(node_name(first_leader));
        cluster.restart(roles.voter).await?;
        proxy.partition(&roles.second_election());
        let joined = Roles::with_voter(&roles.second, roles.voter);
        let second_leader = poll_leader(cluster, &joined, Option::is_some, ELECTION_WAIT_MS).await.flatten();
        effect["second_leader"] = json!(second_leader.map(node_name));
        effect["outcome"] = json!(match second_leader {
            Some(_) => "the second side elected a leader while the first one was frozen",
            None => "the second side elected no leader",
        });
        Ok(effect)
    }
}

/// Polls the leader the `nodes` report until `done` holds for it; the last
/// answer, or `None` when `timeout_ms` passed first. A leader outside
/// `nodes` (a stale belief about the other side) counts as none.
pub(super) async fn poll_leader(
    cluster: &Cluster,
    nodes: &[usize],
    done: impl Fn(&Option<usize>) -> bool,
    timeout_ms: u64,
) -> Option<Option<usize>> {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        let leader = cluster.leader_among(nodes).await.filter(|leader| nodes.contains(leader));
        if done(&leader) {
            return Some(leader);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

impl Nemesis for RevoteNemesis {
    fn handles(&self) -> Vec<FaultFamily> {
        vec![FaultFamily::Revote]
    }

    fn invoke<'a>(&'a mut self, fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            if fault != Fault::Revote {
                return Err(NemesisError::Unhandled(fault));
            }
            self.scenario(cluster).await
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let active = std::mem::take(&mut self.active);
            let paused = self.paused.take();
            if !active && paused.is_none() {
                return Ok(Effect::Null);
            }
            // The network first, so the resumed leader meets the other side
            // at once.
            cluster.proxy().heal();
            if let Some(node) = paused {
                cluster.resume(node)?;
            }
            Ok(json!({ "network": "healed", "resumed": paused.map(node_name) }))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::SeedableRng;

    use super::*;

/// Every node sits in exactly one of the voter, the first side and the
    /// second side; each side plus the voter is a majority.
    fn roles_cover_the_cluster(roles: &Roles, nodes: usize) -> bool {
        let mut all: BTreeSet<usize> = roles.first.iter().chain(&roles.second).copied().collect();
        let distinct = all.len() == roles.first.len() + roles.second.len() && all.insert(roles.voter);
        let majority = nodes / 2 + 1;
        distinct && all.len() == nodes && roles.first.len() + 1 >= majority && roles.second.len() + 1 >= majority
    }

    fn sees(grudge: &crate::proxy::Grudge, receiver: usize, sender: usize) -> bool {
        !grudge.get(&receiver).is_some_and(|lost| lost.contains(&sender))
    }

    #[test]
    fn each_side_and_the_voter_make_a_majority() {
        for nodes in [3, 5, 7] {
            for seed in 0..50 {
                let leader = (seed as usize) % nodes;
                let roles = Roles::choose(&mut ChaCha8Rng::seed_from_u64(seed), nodes, leader);
                assert!(roles_cover_the_cluster(&roles, nodes), "{nodes} nodes, seed {seed}: {roles:?}");
                assert!(roles.first.contains(&leader), "the old leader starts on the first side");
                assert_ne!(roles.voter, leader);
            }
        }
    }

    #[test]
    fn roles_are_seeded() {
        let pick = |seed| Roles::choose(&mut ChaCha8Rng::seed_from_u64(seed), 5, 0);
        assert_eq!(pick(3), pick(3));
        assert!((0..20).any(|seed| pick(seed) != pick(0)));
    }

    #[test]
    fn each_election_joins_one_side_with_the_voter() {
        let roles = Roles { voter: 2, first: vec![0, 1], second: vec![3, 4] };
        let first = roles.first_election();
        let second = roles.second_election();
        let split = roles.split();
        for a in [0, 1] {
            assert!(sees(&first, 2, a) && sees(&first, a, 2));
            assert!(!sees(&second, 2, a) && !sees(&second, a, 2));
            assert!(!sees(&split, 2, a));
            for b in [3, 4] {
                assert!(!sees(&first, a, b) && !sees(&second, b, a) && !sees(&split, a, b));
            }
        }
        for b in [3, 4] {
            assert!(sees(&second, 2, b) && sees(&second, b, 2));
            assert!(!sees(&first, 2, b) && !sees(&split, b, 2));
        }
        assert!(sees(&split, 0, 1) && sees(&split, 3, 4));
    }

    #[test]
    #[should_panic(expected = "odd cluster")]
    fn even_clusters_are_refused() {
        Roles::choose(&mut ChaCha8Rng::seed_from_u64(0), 4, 0);
    }
}
