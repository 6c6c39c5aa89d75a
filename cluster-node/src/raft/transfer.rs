//! Leadership transfer (Raft dissertation §3.10): a leader hands over to a
//! chosen voter before it is removed or stopped, instead of leaving the
//! cluster to notice its absence after an election timeout.
//!
//! The leader stops taking proposals, brings the target's log up to its
//! own, then sends it `TimeoutNow`; the target campaigns at once, and its
//! vote requests say so, so voters that heard from the leader within their
//! lease vote anyway (they would ignore an ordinary campaign). Safety is
//! the election's own: the target still needs a majority whose logs are no
//! newer than its own. A transfer that has not finished within one
//! election timeout is abandoned and the leader takes proposals again.

use super::message::MessageBody;
use super::node::RawNode;
use super::types::{Role, Transfer};

/// Why `transfer_leadership` was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("node {id} leads already")]
    ToSelf { id: u64 },
    #[error("node {id} is not a voter")]
    NotAVoter { id: u64 },
}

impl RawNode {
    /// Leader: hand leadership to the voter `to`. Proposals are refused
    /// until it took over or the transfer was abandoned (one election
    /// timeout); a second call replaces the first.
    pub fn transfer_leadership(&mut self, to: u64) -> Result<(), TransferError> {
        if self.role != Role::Leader {
            return Err(TransferError::NotLeader {
                leader: self.leader,
            });
        }
        if to == self.config.id {
            return Err(TransferError::ToSelf { id: to });
        }
        if !self.membership.is_voter(to) {
            return Err(TransferError::NotAVoter { id: to });
        }
        self.transfer = Some(Transfer {
            to,
            elapsed_ticks: 0,
        });
        self.send_timeout_now_if_caught_up(to);
        if self.transfer.is_some() {
            self.send_appends_while_possible(to);
        }
        Ok(())
    }

    /// The voter a transfer is handing leadership to, if one is under way.
    pub fn transferring_to(&self) -> Option<u64> {
        self.transfer.map(|transfer| transfer.to)
    }

    /// Leader: once the target holds the whole log, tell it to campaign.
    pub(super) fn send_timeout_now_if_caught_up(&mut self, from: u64) {
        let Some(transfer) = self.transfer.filter(|transfer| transfer.to == from) else {
            return;
        };
        let caught_up = self
            .progress
            .get(&from)
            .is_some_and(|progress| progress.match_index == self.log.last_index());
        if caught_up {
            self.send(transfer.to, MessageBody::TimeoutNow);
        }
    }

    /// Leader, every tick: abandon a transfer older than an election timeout.
    pub(super) fn tick_transfer(&mut self) {
        let Some(transfer) = &mut self.transfer else {
            return;
        };
        transfer.elapsed_ticks += 1;
        if transfer.elapsed_ticks >= self.config.election_timeout_ticks_min {
            self.transfer = None;
        }
    }

    /// Follower: the leader of this term hands over; campaign now, if this
    /// node may.
    pub(super) fn handle_timeout_now(&mut self) {
        if self.may_campaign() {
            self.campaign_for_transfer();
        }
    }
}
