//! The figure-8 scenario (Raft paper, figure 8): entries of an old term,
//! committed by a later leader only by counting replicas, then overwritten
//! by a leader of the term in between.
//!
//! Three leader changes in this order never come from random faults, so
//! the nemesis scripts them with the proxy, pause and the system's leader
//! report (`Db::leader`), on the groups of [`Roles`] (steps 1 and 2 are
//! `InForce::open`, shared with revote):
//!
//! 1. lag: the voter is isolated while the others write on;
//! 2. old entries: the three groups are cut apart; the old leader, alone
//!    with the first side (a minority), appends the writes it still gets
//!    until it steps down: entries of term `t` that no majority holds;
//! 3. the term in between: the second side and the voter are joined, with
//!    the second side's bytes to the voter slowed down. Once the second
//!    side reports a leader, the voter is cut off before any entry of the
//!    new term reaches it, and the leader (a minority now, until its quorum
//!    check steps it down) takes writes for a moment: entries of term `t+1`
//!    that only the second side holds;
//! 4. the later leader: the first side and the voter are joined (clients
//!    are cut from the first side from step 3 on, so it writes no entry of
//!    its own term). Its leader copies the term-`t` entries to the voter: a
//!    majority holds them. A leader that commits them by counting tells the
//!    voter so; a correct one commits them only with an entry of its own
//!    term, which then sits on the voter too. The leader is then frozen;
//! 5. overwrite: the second side and the voter are joined. A voter holding
//!    only term-`t` entries votes for the second side (its term-`t+1` log
//!    is more up to date), whose entries overwrite the ones the voter was
//!    told were committed: the voter reports a safety violation, or the
//!    values read meanwhile disappear. A voter holding an entry of term
//!    `t+2` refuses, and nothing is lost;
//! 6. heal: the network heals, client links are restored, the frozen
//!    leader resumes.
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{choose_roles, fits, invoke_scenario, poll_leader, roles_of, side_to_voter, InForce, Roles, ELECTION_WAIT_MS};
use crate::nemesis::{node_name, Effect, Fault, FaultFamily, Nemesis, NemesisError, Targets};
use crate::cluster::{BoxFuture, Cluster};
use crate::proxy::{Endpoint, LinkFault};

/// Latency of the second side's bytes to the voter in step 3: its leader's
/// first entries must still be on the way when the harness cuts it off
/// (one leader poll later), and its vote requests must come back within
/// an election timeout.
const SECOND_TO_VOTER_DELAY_MS: u64 = 200;
/// How long the second side's leader, cut off from the voter, takes writes:
/// long enough for clients to find it, and below the shortest election
/// timeout, after which its quorum check may step it down. With 120 ms
/// taken before the cut (the first version), clients often had not found
/// it yet: the second side held no entry of its term, the voter won the
/// last election, and nothing was overwritten (0 of 4 replays of a
/// detecting run failed).
const SECOND_WRITES_MS: u64 = 250;
/// How long the first side's leader runs in step 4 before it is frozen:
/// enough heartbeats to carry its commit index to the voter.
const LATER_LEADER_MS: u64 = 300;

pub struct FigureEightNemesis {
    rng: ChaCha8Rng,
    in_force: InForce,
}

impl FigureEightNemesis {
    pub fn new(rng: ChaCha8Rng) -> Self {
        FigureEightNemesis { rng, in_force: InForce::default() }
    }

    async fn scenario(&mut self, roles: Roles, cluster: &Cluster) -> Result<Effect, NemesisError> {
        let mut effect = self.in_force.open(&roles, cluster).await;
        let proxy = cluster.proxy();
        // Clients leave the first side from here on: those waiting on its
        // stepped-down leader fail over to the second side at once, and the
        // first side's later leader gets no entry of its own term.
        let cut = LinkFault { drop: true, ..LinkFault::default() };
        for &node in &roles.first {
            proxy.set_link_fault(Endpoint::Client, Endpoint::Node(node), cut);
        }
        let slow = LinkFault { delay_ms: SECOND_TO_VOTER_DELAY_MS, ..LinkFault::default() };
        side_to_voter(cluster, &roles.second, roles.voter, slow);
        proxy.partition(&roles.second_election());
        let Some(Some(middle)) = poll_leader(cluster, &roles.second, Option::is_some, ELECTION_WAIT_MS).await else {
            effect["outcome"] = json!("the second side elected no leader");
            return Ok(effect);
        };
        effect["middle_leader"] = json!(node_name(middle));
        // A cut both ways closes the connections, and what the proxy still
        // held for the voter is lost with them.
        proxy.partition(&roles.split());
        side_to_voter(cluster, &roles.second, roles.voter, LinkFault::default());
        tokio::time::sleep(Duration::from_millis(SECOND_WRITES_MS)).await;

        proxy.partition(&roles.first_election());
        let Some(Some(later)) = poll_leader(cluster, &roles.first, Option::is_some, ELECTION_WAIT_MS).await else {
            effect["outcome"] = json!("the first side elected no later leader");
            return Ok(effect);
        };
        effect["later_leader"] = json!(node_name(later));
        tokio::time::sleep(Duration::from_millis(LATER_LEADER_MS)).await;
        cluster.pause(later)?;
        self.in_force.paused = Some(later);

        proxy.partition(&roles.second_election());
        let joined = Roles::with_voter(&roles.second, roles.voter);
        let last = poll_leader(cluster, &joined, Option::is_some, ELECTION_WAIT_MS).await.flatten();
        effect["last_leader"] = json!(last.map(node_name));
        effect["outcome"] = json!(match last {
            Some(_) => "the second side and the voter elected a leader",
            None => "the second side and the voter elected no leader",
        });
        Ok(effect)
    }
}

impl Nemesis for FigureEightNemesis {
    fn handles(&self) -> Vec<FaultFamily> {
        vec![FaultFamily::FigureEight]
    }

    fn invoke<'a>(&'a mut self, fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(invoke_scenario(self, fault, cluster))
    }

    fn choose(&mut self, fault: Fault, nodes: usize, leader: Option<usize>) -> Option<Targets> {
        (fault == Fault::FigureEight && fits(nodes).is_ok()).then(|| choose_roles(&mut self.rng, nodes, leader))
    }

    fn apply<'a>(&'a mut self, fault: Fault, targets: Targets, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            if fault != Fault::FigureEight {
                return Err(NemesisError::Unhandled(fault));
            }
            self.scenario(roles_of(fault, targets)?, cluster).await
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move { self.in_force.heal(cluster) })
    }
}
