//! Membership faults: nodes join and leave the cluster through the
//! system's own procedure while clients run (`Db::add_member`,
//! `promote_member`, `remove_member`). The cluster keeps spare slots for
//! the nodes that join. A node added by a fault stays a learner (it
//! replicates, and must not count) until the heal promotes it, so other
//! faults can land while it is one. Healing restarts what a crash took,
//! promotes learners, and brings the cluster back to the size it started
//! with by adding or removing members, so membership moves around the
//! slots as the run goes on.
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::fault::MembershipChange;
use super::partition::{complete_grudge, isolate};
use super::{choose_then_apply, leader_or, node_name, node_names, Effect, Fault, FaultFamily, Nemesis, NemesisError, Targets};
use crate::cluster::{BoxFuture, Cluster};
use crate::proxy::Grudge;

/// Slots beyond the cluster's size when the nemesis changes membership:
/// a change takes the cluster one node above or below its size, and the
/// heal brings it back.
pub const SPARES: usize = 1;

/// Longest wait between asking for a change and killing the leader in
/// `membership-crash`: the kill lands before, during or after the commit.
const CRASH_DELAY_MS_MAX: u64 = 30;
/// The name this family's cuts go by in the cluster's network: its heal
/// mends them and leaves the partition family's.
const MEMBERSHIP_OWNER: &str = "membership";

/// The two sides of `membership-add-minority`, as slots: the leader, the
/// learner and one voter fewer than a majority of `members` (drawn from
/// the seed), then every other slot.
pub fn learner_minority(
    rng: &mut ChaCha8Rng,
    leader: usize,
    learner: usize,
    members: &[usize],
    slots: usize,
) -> (Vec<usize>, Vec<usize>) {
    let mut voters: Vec<usize> = members.iter().copied().filter(|node| *node != leader && *node != learner).collect();
    // The voters with the leader.
    let voter_count = voters.len() + 1;
    let majority = voter_count / 2 + 1;
    voters.shuffle(rng);
    let beside = voters.into_iter().take(majority.saturating_sub(2));
    let mut minority: Vec<usize> = [leader, learner].into_iter().chain(beside).collect();
    minority.sort_unstable();
    let rest = (0..slots).filter(|node| !minority.contains(node)).collect();
    (minority, rest)
}

pub struct MembershipNemesis {
    rng: ChaCha8Rng,
    /// Leaders killed by `membership-crash`, restarted by the heal.
    killed: Vec<usize>,
    /// Nodes added as learners, promoted by the heal.
    learners: Vec<usize>,
    /// `membership-race` or `membership-add-minority` cut the network;
    /// the heal mends it.
    network: bool,
}

impl MembershipNemesis {
    pub fn new(rng: ChaCha8Rng) -> Self {
        MembershipNemesis { rng, killed: Vec::new(), learners: Vec::new(), network: false }
    }

    /// The member a removal or replacement takes: the leader one time in
    /// three (it must step down once the change commits), else a member
    /// drawn at random. Positions among `members` members.
    fn member(&mut self, members: usize, leader: Option<usize>) -> usize {
        let leader_first = self.rng.random_ratio(1, 3);
        let any = self.rng.random_range(0..members);
        match leader_first {
            true => leader_or(&mut self.rng, members, leader),
            false => any,
        }
    }

    /// `effect` with the members and learners after it: what the report
    /// draws as the membership lane.
    fn with_members(&self, cluster: &Cluster, mut effect: Effect) -> Effect {
        effect["members"] = json!(node_names(&cluster.members()));
        effect["learners"] = json!(node_names(&self.learners));
        effect
    }

    async fn add(&mut self, cluster: &Cluster) -> Result<Effect, NemesisError> {
        let Some(node) = cluster.absent().first().copied() else {
            return Ok(self.with_members(cluster, json!({ "skipped": "every slot is a member" })));
        };
        self.learners.push(node);
        let added = cluster.add_learner(node).await?;
        Ok(self.with_members(cluster, json!({ "added": node_name(node), "learner": node_name(node), "add": added })))
    }

    async fn remove(&mut self, node: usize, cluster: &Cluster) -> Result<Effect, NemesisError> {
        if cluster.members().len() < cluster.nodes() {
            let why = "the cluster is below its starting size";
            return Ok(self.with_members(cluster, json!({ "skipped": why })));
        }
        let handover = self.hand_over(node, cluster).await;
        let removed = cluster.remove_member(node).await?;
        let mut effect = self.with_members(cluster, json!({ "removed": node_name(node), "remove": removed }));
        if let Some(handover) = handover {
            effect["handover"] = handover;
        }
        Ok(effect)
    }

    /// Half the time a leader about to be removed first hands leadership
    /// to another member (where the system can); the other half it is
    /// removed while it leads, and must step down once that commits.
    async fn hand_over(&mut self, node: usize, cluster: &Cluster) -> Option<Effect> {
        let hand_over = self.rng.random_bool(0.5);
        if !hand_over || cluster.leader().await != Some(node) {
            return None;
        }
        let to = cluster.members().into_iter().find(|member| *member != node)?;
        Some(match cluster.transfer_leader(to).await {
            Ok(change) => json!({ "to": node_name(to), "transfer": change }),
            Err(error) => json!({ "to": node_name(to), "error": error.to_string() }),
        })
    }

    async fn replace(&mut self, node: usize, cluster: &Cluster) -> Result<Effect, NemesisError> {
        let removed = cluster.remove_member(node).await?;
        let added = cluster.add_learner(node).await?;
        let promoted = cluster.promote_member(node).await?;
        Ok(self.with_members(cluster, json!({ "replaced": node_name(node), "remove": removed, "add": added, "promote": promoted })))
    }

    /// Add a free slot and kill the leader while the change is in flight;
    /// the add goes on through whoever leads next.
    async fn crash(&mut self, leader: usize, cluster: &Cluster) -> Result<Effect, NemesisError> {
        let Some(node) = cluster.absent().first().copied() else {
            return Ok(self.with_members(cluster, json!({ "skipped": "every slot is a member" })));
        };
        let delay_ms = self.rng.random_range(0..=CRASH_DELAY_MS_MAX);
        self.killed.push(leader);
        self.learners.push(node);
        let kill = async {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            cluster.kill(leader).await
        };
        let (added, killed) = tokio::join!(cluster.add_learner(node), kill);
        killed?;
        let added = added?;
        let effect = json!({
            "added": node_name(node),
            "learner": node_name(node),
            "killed": node_name(leader),
            "kill_delay_ms": delay_ms,
            "add": added,
        });
        Ok(self.with_members(cluster, effect))
    }

    /// Cut the leader off from every node, then ask it, at once, to
    /// remove every other member. One change may be in flight at a time,
    /// so a correct leader takes the first and refuses or holds the rest;
    /// one that takes them all is left a majority of one, in any cluster
    /// size, and commits alone while the others elect a leader of their
    /// own. The harness's members change only if the system reports the
    /// removals after the heal.
    async fn race(&mut self, leader: usize, cluster: &Cluster) -> Result<Effect, NemesisError> {
        let mut others: Vec<usize> = cluster.members().into_iter().filter(|node| *node != leader).collect();
        if others.len() < 2 {
            return Ok(self.with_members(cluster, json!({ "skipped": "fewer than two other members" })));
        }
        // The order the requests are issued in, drawn from the seed.
        others.shuffle(&mut self.rng);
        self.network = true;
        cluster.partition(MEMBERSHIP_OWNER, &isolate(leader, cluster.slots())).await?;
        let mut asks = tokio::task::JoinSet::new();
        for (position, node) in others.iter().copied().enumerate() {
            let cluster = cluster.clone();
            asks.spawn(async move { (position, cluster.ask_removal_via(leader, node).await) });
        }
        let mut answers = vec!["no answer".to_string(); others.len()];
        while let Some(joined) = asks.join_next().await {
            let Ok((position, result)) = joined else { continue };
            answers[position] = match result {
                Ok(()) => "done".to_string(),
                Err(error) => error.to_string(),
            };
        }
        let effect = json!({
            "isolated": node_name(leader),
            "asked": others.iter().map(|node| format!("remove {}", node_name(*node))).collect::<Vec<_>>(),
            "answers": answers,
        });
        Ok(self.with_members(cluster, effect))
    }

    /// Add a free slot as a learner, then cut the leader, the learner and
    /// one voter fewer than a majority (drawn from the seed) off from
    /// everyone else. A learner must not count toward commit until it is
    /// promoted, so a correct leader commits nothing on its side, and the
    /// majority elects a leader of its own; a leader that counts the
    /// learner commits writes the majority never sees. The heal mends the
    /// network and promotes the learner.
    async fn add_minority(&mut self, leader: usize, cluster: &Cluster) -> Result<Effect, NemesisError> {
        let Some(learner) = cluster.absent().first().copied() else {
            return Ok(self.with_members(cluster, json!({ "skipped": "every slot is a member" })));
        };
        self.learners.push(learner);
        let added = cluster.add_learner(learner).await?;
        // The add may take seconds (retried while no member leads), and
        // leadership may move meanwhile: cut off whoever leads now.
        let leader = cluster.leader().await.filter(|now| *now != learner).unwrap_or(leader);
        let (minority, rest) = learner_minority(&mut self.rng, leader, learner, &cluster.members(), cluster.slots());
        self.network = true;
        cluster.partition(MEMBERSHIP_OWNER, &complete_grudge(&[minority.clone(), rest])).await?;
        let effect = json!({
            "added": node_name(learner),
            "learner": node_name(learner),
            "add": added,
            "isolated": node_names(&minority),
        });
        Ok(self.with_members(cluster, effect))
    }

    /// Mend the network a race cut, restart crashed leaders, forget
    /// members the system no longer reports, promote learners left behind,
    /// and add or remove members until the cluster has its starting size
    /// again.
    async fn reconcile(&mut self, cluster: &Cluster) -> Result<Effect, NemesisError> {
        let mut done = Vec::new();
        let healed = std::mem::take(&mut self.network);
        if healed {
            cluster.partition(MEMBERSHIP_OWNER, &Grudge::new()).await?;
            done.push(json!({ "network": "healed" }));
        }
        // Asked once the network is whole again.
        let reported = cluster.reported_members().await;
        if let (true, Some(reported)) = (healed, &reported) {
            let gone = cluster.forget_removed(reported).await?;
            if !gone.is_empty() {
                done.push(json!({ "gone": node_names(&gone) }));
            }
        }
        let killed = std::mem::take(&mut self.killed);
        if !killed.is_empty() {
            cluster.restart_all(&killed).await?;
            done.push(json!({ "restarted": node_names(&killed) }));
        }
        // Ours, and any the system reports (an add whose answer was lost).
        let mut learners = std::mem::take(&mut self.learners);
        learners.extend(reported.map(|reported| reported.learners).unwrap_or_default());
        learners.sort_unstable();
        learners.dedup();
        for learner in learners.into_iter().filter(|node| cluster.is_member(*node)) {
            if let Err(error) = cluster.promote_member(learner).await {
                // Left for the next heal (a partition may be in the way).
                self.learners.push(learner);
                return Err(error.into());
            }
            done.push(json!({ "promoted": node_name(learner) }));
        }
        // Each round changes the size by one; bounded by the slots.
        for _ in 0..cluster.slots() {
            let members = cluster.members();
            if members.len() > cluster.nodes() {
                let leader = cluster.leader().await.and_then(|leader| members.iter().position(|m| *m == leader));
                let node = members[self.member(members.len(), leader)];
                cluster.remove_member(node).await?;
                done.push(json!({ "removed": node_name(node) }));
            } else if let (true, Some(node)) = (members.len() < cluster.nodes(), cluster.absent().first().copied()) {
                cluster.add_learner(node).await?;
                cluster.promote_member(node).await?;
                done.push(json!({ "added": node_name(node) }));
            } else {
                break;
            }
        }
        match done.is_empty() {
            true => Ok(Effect::Null),
            false => Ok(self.with_members(cluster, json!({ "membership": done }))),
        }
    }
}

impl Nemesis for MembershipNemesis {
    fn handles(&self) -> Vec<FaultFamily> {
        vec![FaultFamily::Membership]
    }

    fn invoke<'a>(&'a mut self, fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(choose_then_apply(self, fault, cluster))
    }

    /// The member a removal or replacement takes, or the leader a crash
    /// kills; an add takes the lowest free slot, which is no choice.
    fn choose(&mut self, fault: Fault, members: usize, leader: Option<usize>) -> Option<Targets> {
        let Fault::Membership(change) = fault else { return None };
        let nodes = match change {
            MembershipChange::Add => Vec::new(),
            MembershipChange::Remove | MembershipChange::Replace => vec![self.member(members, leader)],
            MembershipChange::Crash | MembershipChange::Race | MembershipChange::AddMinority => {
                vec![leader_or(&mut self.rng, members, leader)]
            }
        };
        Some(Targets::Nodes(nodes))
    }

    fn apply<'a>(&'a mut self, fault: Fault, targets: Targets, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let (Fault::Membership(change), Targets::Nodes(nodes)) = (fault, targets) else {
                return Err(NemesisError::Unhandled(fault));
            };
            match (change, nodes.first().copied()) {
                (MembershipChange::Add, _) => self.add(cluster).await,
                (MembershipChange::Remove, Some(node)) => self.remove(node, cluster).await,
                (MembershipChange::Replace, Some(node)) => self.replace(node, cluster).await,
                (MembershipChange::Crash, Some(leader)) => self.crash(leader, cluster).await,
                (MembershipChange::Race, Some(leader)) => self.race(leader, cluster).await,
                (MembershipChange::AddMinority, Some(leader)) => self.add_minority(leader, cluster).await,
                (_, None) => Err(NemesisError::Unhandled(fault)),
            }
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(self.reconcile(cluster))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn nemesis(seed: u64) -> MembershipNemesis {
        MembershipNemesis::new(ChaCha8Rng::seed_from_u64(seed))
    }

    #[test]
    fn choose_names_positions_among_the_members() {
        let add = Fault::Membership(MembershipChange::Add);
        let crash = Fault::Membership(MembershipChange::Crash);
        let race = Fault::Membership(MembershipChange::Race);
        let remove = Fault::Membership(MembershipChange::Remove);
        let mut n = nemesis(1);
        assert_eq!(n.choose(add, 4, Some(2)), Some(Targets::Nodes(Vec::new())), "an add takes the lowest free slot");
        assert_eq!(n.choose(crash, 4, Some(2)), Some(Targets::Nodes(vec![2])), "a crash kills the leader");
        assert_eq!(n.choose(race, 3, Some(0)), Some(Targets::Nodes(vec![0])), "a race cuts the leader off");
        assert_eq!(n.choose(Fault::Kill(crate::nemesis::KillTarget::Random), 3, None), None);
        let mut leader_hits = 0;
        for seed in 0..300 {
            let Some(Targets::Nodes(nodes)) = nemesis(seed).choose(remove, 3, Some(1)) else { panic!("a removal names a node") };
            assert!(nodes.len() == 1 && nodes[0] < 3, "{nodes:?}");
            leader_hits += usize::from(nodes[0] == 1);
        }
        // A third aimed at the leader, plus a third of the random draws.
        assert!((150..=250).contains(&leader_hits), "{leader_hits} of 300 removals took the leader");
    }

    #[test]
    fn the_learner_and_the_leader_are_a_majority_only_if_the_learner_counts() {
        for (members, slots) in [(vec![0, 1, 2], 4), (vec![0, 1, 2, 3, 4], 6), (vec![1, 2, 3, 4, 5, 6, 7], 8)] {
            for seed in 0..20 {
                let leader = members[seed as usize % members.len()];
                let learner = (0..slots).find(|slot| !members.contains(slot)).expect("a free slot");
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let (minority, rest) = learner_minority(&mut rng, leader, learner, &members, slots);
                let majority = members.len() / 2 + 1;
                let voters_beside = minority.iter().filter(|node| members.contains(node)).count();
                assert!(minority.contains(&leader) && minority.contains(&learner), "{minority:?}");
                assert_eq!(voters_beside + 1, majority, "with the learner counted, {minority:?} is a majority of {members:?}");
                assert!(voters_beside < majority, "the voters alone are a minority");
                let mut all: Vec<usize> = minority.iter().chain(&rest).copied().collect();
                all.sort_unstable();
                assert_eq!(all, (0..slots).collect::<Vec<_>>(), "every slot on one side");
            }
        }
    }

    #[test]
    fn choose_among_members_names_the_members_themselves() {
        let mut n = nemesis(3);
        let crash = Fault::Membership(MembershipChange::Crash);
        let chosen = crate::nemesis::choose_among_members(&mut n, crash, &[0, 2, 3], Some(3));
        assert_eq!(chosen, Some(Targets::Nodes(vec![3])), "the leader n4 is at position 2");
    }
}
