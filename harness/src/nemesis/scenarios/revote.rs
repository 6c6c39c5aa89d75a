//! The revote scenario: one election term, two majorities that share one
//! voter, and that voter crash-restarted between the two elections.
//!
//! Random kills almost never restart a voter inside the sub-millisecond
//! window between granting a vote and receiving the winner's first entries,
//! and a vote that is not durable only matters there. This nemesis opens
//! the window on purpose, on the groups of [`Roles`]:
//!
//! 1. lag: the voter is isolated while the others keep writing, so its log
//!    falls behind (it can then win no election itself);
//! 2. split: the first side, the voter and the second side are cut apart
//!    until the first side has no leader (1 and 2: `InForce::open`);
//! 3. first election: the first side and the voter are joined, with the
//!    first side's bytes to the voter slowed down, so the voter's vote
//!    reaches the candidate at once but the winner's entries do not;
//! 4. as soon as the first side reports a leader, that leader is frozen
//!    (SIGSTOP) and the voter is killed and restarted (`revote`), or its
//!    power is cut and it is restarted on what its disk kept
//!    (`revote-power-loss`: a vote answered before its fsync is gone);
//! 5. second election: the second side and the voter are joined. A voter
//!    that remembered its vote refuses the second side's candidate in that
//!    term; one that forgot grants it, and the term has two leaders;
//! 6. heal: the network heals and the frozen leader resumes. Two leaders of
//!    one term now meet (a correct system never gets here).
//!
//! Each side plus the voter is a majority, so the cluster size must be odd.
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{choose_roles, fits, invoke_scenario, poll_leader, roles_of, side_to_voter, InForce, Roles, ELECTION_WAIT_MS};
use crate::nemesis::{node_name, Effect, Fault, FaultFamily, Nemesis, NemesisError, Targets};
use crate::cluster::{BoxFuture, Cluster};
use crate::proxy::LinkFault;

/// Latency of the first side's bytes to the voter. It must cover the
/// harness's reaction (one leader poll, a SIGSTOP and a SIGKILL, tens of
/// milliseconds) so the voter dies before the winner's first entries
/// arrive, and stay below the candidate's election timeout, or the vote
/// would come back after the candidate gave up on its term.
const VOTER_INBOUND_DELAY_MS: u64 = 150;

fn is_revote(fault: Fault) -> bool {
    matches!(fault, Fault::Revote | Fault::RevotePowerLoss)
}

pub struct RevoteNemesis {
    rng: ChaCha8Rng,
    in_force: InForce,
}

impl RevoteNemesis {
    pub fn new(rng: ChaCha8Rng) -> Self {
        RevoteNemesis { rng, in_force: InForce::default() }
    }

    async fn scenario(&mut self, fault: Fault, roles: Roles, cluster: &Cluster) -> Result<Effect, NemesisError> {
        let mut effect = self.in_force.open(&roles, cluster).await;
        let proxy = cluster.proxy();
        let slow = LinkFault { delay_ms: VOTER_INBOUND_DELAY_MS, ..LinkFault::default() };
        side_to_voter(cluster, &roles.first, roles.voter, slow);
        proxy.partition(&roles.first_election());
        let Some(Some(first_leader)) = poll_leader(cluster, &roles.first, Option::is_some, ELECTION_WAIT_MS).await else {
            effect["outcome"] = json!("the first side elected no leader");
            return Ok(effect);
        };
        // Frozen before its entries reach the voter: it stays a leader of
        // this term until heal, however long the second election takes.
        cluster.pause(first_leader)?;
        self.in_force.paused = Some(first_leader);
        effect["first_leader"] = json!(node_name(first_leader));
        if fault == Fault::RevotePowerLoss {
            cluster.power_cut(roles.voter).await?;
        }
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

impl Nemesis for RevoteNemesis {
    fn handles(&self) -> Vec<FaultFamily> {
        vec![FaultFamily::Revote]
    }

    fn invoke<'a>(&'a mut self, fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(invoke_scenario(self, fault, cluster))
    }

    fn choose(&mut self, fault: Fault, nodes: usize, leader: Option<usize>) -> Option<Targets> {
        (is_revote(fault) && fits(nodes).is_ok()).then(|| choose_roles(&mut self.rng, nodes, leader))
    }

    fn apply<'a>(&'a mut self, fault: Fault, targets: Targets, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            if !is_revote(fault) {
                return Err(NemesisError::Unhandled(fault));
            }
            self.scenario(fault, roles_of(fault, targets)?, cluster).await
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move { self.in_force.heal(cluster) })
    }
}
