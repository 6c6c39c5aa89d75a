//! What the scripted scenarios (`revote`, `figure-8`) share: the groups
//! they play on, leader polls, the opening moves, and the heal.
//!
//! Both script an order of elections that random faults do not produce,
//! with nothing but the proxy, kill/pause and the system's own leader
//! report (`Db::leader`). Both open the same way: the voter is isolated
//! while the others write on, so its log falls behind and it can win no
//! election itself; then the first side, the voter and the second side are
//! cut apart until the first side reports no leader.
pub mod figure8;
pub mod revote;
use std::collections::BTreeSet;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio::time::Instant;

use crate::nemesis::partition::{complete_grudge, isolate};
use crate::nemesis::{choose_then_apply, leader_or, node_name, node_names, Effect, Fault, Nemesis, NemesisError, Targets};
use crate::cluster::Cluster;
use crate::proxy::{Endpoint, Grudge, LinkFault};

/// How long the voter is cut off while the others write on.
const LAG_MS: u64 = 500;
/// Bound on waiting for the split cluster's leader to step down.
const STEP_DOWN_WAIT_MS: u64 = 3_000;
/// Bound on each election of a scenario: several election timeouts.
pub(super) const ELECTION_WAIT_MS: u64 = 4_000;
/// Time between leader polls.
const POLL_MS: u64 = 20;

/// Who plays which part, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    /// Votes with each side in turn; its log lags from the opening on.
    pub voter: usize,
    /// Holds the old leader; elects a leader with the voter.
    pub first: Vec<usize>,
    /// Elects a leader with the voter.
    pub second: Vec<usize>,
}

impl Roles {
    /// `leader` starts on the first side; the voter and the rest of the
    /// sides are drawn from the seeded rng. Needs an odd `nodes >= 3`.
    pub fn choose(rng: &mut ChaCha8Rng, nodes: usize, leader: usize) -> Roles {
        assert!(nodes >= 3 && nodes % 2 == 1, "a scripted scenario needs an odd cluster of 3 or more (validated in the spec)");
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

    /// Whether these roles fit a cluster of `nodes`: every node in exactly
    /// one part, and each side with the voter a majority.
    pub fn check(&self, nodes: usize) -> Result<(), String> {
        let mut all: BTreeSet<usize> = self.first.iter().chain(&self.second).copied().collect();
        let distinct = all.len() == self.first.len() + self.second.len() && all.insert(self.voter);
        if !distinct || all.len() != nodes || all.iter().any(|node| *node >= nodes) {
            return Err(format!("the voter and the two sides must name each of the {nodes} nodes once"));
        }
        let majority = nodes / 2 + 1;
        if self.first.len() + 1 < majority || self.second.len() + 1 < majority {
            return Err(format!("each side with the voter must be a majority ({majority} of {nodes})"));
        }
        Ok(())
    }

    pub fn with_voter(side: &[usize], voter: usize) -> Vec<usize> {
        let mut joined: Vec<usize> = side.iter().copied().chain(std::iter::once(voter)).collect();
        joined.sort_unstable();
        joined
    }

    /// Step 3: the first side and the voter together, the second side apart.
    pub fn first_election(&self) -> Grudge {
        complete_grudge(&[Roles::with_voter(&self.first, self.voter), self.second.clone()])
    }

    /// Step 5: the second side and the voter together, the first side apart.
    pub fn second_election(&self) -> Grudge {
        complete_grudge(&[self.first.clone(), Roles::with_voter(&self.second, self.voter)])
    }

    /// Step 2: all three apart.
    pub fn split(&self) -> Grudge {
        complete_grudge(&[self.first.clone(), vec![self.voter], self.second.clone()])
    }
}

/// Sets `fault` on the bytes every node of `side` sends the voter
/// (`LinkFault::default()` clears it).
pub(super) fn side_to_voter(cluster: &Cluster, side: &[usize], voter: usize, fault: LinkFault) {
    for &node in side {
        cluster.proxy().set_link_fault(Endpoint::Node(node), Endpoint::Node(voter), fault);
    }
}

/// What a scripted scenario has in force, for its heal.
#[derive(Debug, Default)]
pub(super) struct InForce {
    /// A leader frozen until heal.
    pub paused: Option<usize>,
    /// A partition or link fault (client links included) of the scenario.
    pub network: bool,
}

impl InForce {
    /// The opening moves on `roles`: the voter's lag, then the split.
    /// Returns the start of the history's effect.
    pub(super) async fn open(&mut self, roles: &Roles, cluster: &Cluster) -> Effect {
        // Every slot, spares and removed nodes included.
        let nodes = cluster.slots();
        let mut effect = json!({
            "voter": node_name(roles.voter),
            "first": node_names(&roles.first),
            "second": node_names(&roles.second),
        });
        self.network = true;
        cluster.proxy().partition(&isolate(roles.voter, nodes));
        tokio::time::sleep(Duration::from_millis(LAG_MS)).await;
        cluster.proxy().partition(&roles.split());
        let stepped_down = poll_leader(cluster, &roles.first, Option::is_none, STEP_DOWN_WAIT_MS).await;
        effect["first_side_stepped_down"] = json!(stepped_down.is_some());
        effect
    }

    /// Network (and client links) first, so a resumed leader meets the
    /// others at once; then the frozen leader resumes.
    pub(super) fn heal(&mut self, cluster: &Cluster) -> Result<Effect, NemesisError> {
        let network = std::mem::take(&mut self.network);
        let paused = self.paused.take();
        if !network && paused.is_none() {
            return Ok(Effect::Null);
        }
        cluster.proxy().heal();
        if let Some(node) = paused {
            cluster.resume(node)?;
        }
        Ok(json!({ "network": "healed", "resumed": paused.map(node_name) }))
    }
}

/// Whether a race can play on `members` members: two majorities that
/// share one voter need an odd number, 3 or more. The spec checks its
/// cluster size; membership changes can leave an even one for a while.
pub(super) fn fits(members: usize) -> Result<(), String> {
    match members >= 3 && members % 2 == 1 {
        true => Ok(()),
        false => Err(format!("the cluster has {members} members now, and the race needs an odd number, 3 or more")),
    }
}

/// A scenario's `invoke`: skipped, with the reason in the history, when
/// the members do not [`fits`]; otherwise choose, then apply.
pub(super) async fn invoke_scenario<N: Nemesis + ?Sized>(nemesis: &mut N, fault: Fault, cluster: &Cluster) -> Result<Effect, NemesisError> {
    if let Err(why) = fits(cluster.members().len()) {
        return Ok(json!({ "skipped": why }));
    }
    choose_then_apply(nemesis, fault, cluster).await
}

/// A scenario's `choose`: the roles around the leader the cluster named
/// (a seeded random node if none), drawn from the scenario's rng. Each
/// scenario's `choose` also asks [`fits`] first: the nemesis task calls
/// `choose` directly with the members of the moment, and a `None` sends it
/// to `invoke`, which records the skip ([`invoke_scenario`]).
pub(super) fn choose_roles(rng: &mut ChaCha8Rng, nodes: usize, leader: Option<usize>) -> Targets {
    let leader = leader_or(rng, nodes, leader);
    Targets::Sides(Roles::choose(rng, nodes, leader))
}

/// The roles of `targets` for `fault`, or the error `apply` returns.
pub(super) fn roles_of(fault: Fault, targets: Targets) -> Result<Roles, NemesisError> {
    match targets {
        Targets::Sides(roles) => Ok(roles),
        _ => Err(NemesisError::Unhandled(fault)),
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

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn sees(grudge: &Grudge, receiver: usize, sender: usize) -> bool {
        !grudge.get(&receiver).is_some_and(|lost| lost.contains(&sender))
    }

    #[test]
    fn each_side_and_the_voter_make_a_majority() {
        for nodes in [3, 5, 7] {
            for seed in 0..50 {
                let leader = (seed as usize) % nodes;
                let roles = Roles::choose(&mut ChaCha8Rng::seed_from_u64(seed), nodes, leader);
                assert_eq!(roles.check(nodes), Ok(()), "{nodes} nodes, seed {seed}: {roles:?}");
                assert!(roles.first.contains(&leader), "the old leader starts on the first side");
                assert_ne!(roles.voter, leader);
            }
        }
    }

    #[test]
    fn a_race_is_not_chosen_for_an_even_membership() {
        assert_eq!(fits(5), Ok(()));
        for members in [0, 1, 2, 4, 6] {
            let why = fits(members).expect_err("even or too few");
            assert!(why.contains(&format!("{members} members")), "{why}");
        }
        // Membership changes left four of five slots members: no roles,
        // where Roles::choose would have panicked.
        let mut revote = revote::RevoteNemesis::new(ChaCha8Rng::seed_from_u64(1));
        assert_eq!(crate::nemesis::choose_among_members(&mut revote, Fault::Revote, &[0, 1, 3, 4], Some(1)), None);
        let chosen = crate::nemesis::choose_among_members(&mut revote, Fault::Revote, &[0, 1, 2, 3, 5], Some(5));
        let Some(Targets::Sides(roles)) = chosen else { panic!("five members take a race: {chosen:?}") };
        assert!(roles.first.contains(&5), "the leader, named as a member, starts on the first side: {roles:?}");
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
    fn roles_that_do_not_fit_the_cluster_are_refused() {
        let roles = |voter, first: &[usize], second: &[usize]| Roles { voter, first: first.to_vec(), second: second.to_vec() };
        assert_eq!(roles(0, &[1], &[2]).check(3), Ok(()));
        assert!(roles(0, &[1], &[1]).check(3).unwrap_err().contains("each of the 3 nodes once"));
        assert!(roles(0, &[1], &[2]).check(5).unwrap_err().contains("each of the 5 nodes once"));
        assert!(roles(0, &[1], &[7]).check(3).unwrap_err().contains("once"), "a node outside the cluster");
        assert!(roles(0, &[1, 2, 3], &[4]).check(5).unwrap_err().contains("a majority (3 of 5)"));
    }

    #[test]
    #[should_panic(expected = "odd cluster")]
    fn even_clusters_are_refused() {
        Roles::choose(&mut ChaCha8Rng::seed_from_u64(0), 4, 0);
    }
}
