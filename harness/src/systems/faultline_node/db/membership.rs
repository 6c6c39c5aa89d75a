//! faultline-node's membership requests (`member_add`, `member_promote`,
//! `member_remove`, `members`; docs/node-protocol.md), sent to the leader
//! the members name.
use serde_json::Value;

use super::{ask, status, statuses};
use crate::cluster::{majority, MemberError, Members, NodeEnv};

/// Bound on one change request: the node answers once the change commits.
const CHANGE_TIMEOUT_MS: u64 = 3_000;

/// Ask the leader to make one change for `node`. Transient refusals (a
/// change in progress, a leader that has not committed in its term, a
/// learner still behind) and lost answers are `Retry`; no leader to ask
/// is `NoLeader`.
pub(super) async fn change(op: &str, node: usize, members: &[NodeEnv]) -> Result<(), MemberError> {
    let Some(leader) = leader_env(members).await else {
        return Err(MemberError::NoLeader("no member names a leader".into()));
    };
    let line = format!("{{\"id\":1,\"op\":\"{op}\",\"node\":{}}}\n", node + 1);
    let Some(answer) = ask(leader.client_listen, &line, CHANGE_TIMEOUT_MS).await else {
        return Err(MemberError::Retry(format!("no answer from n{} within {CHANGE_TIMEOUT_MS} ms", leader.node + 1)));
    };
    if answer["ok"] == Value::Bool(true) {
        return Ok(());
    }
    let message = answer["message"].as_str().unwrap_or("").to_string();
    match answer["error"].as_str() {
        Some("refused") if is_transient(&message) => Err(MemberError::Retry(message)),
        Some("refused") => Err(MemberError::Refused(message)),
        // The member named as leader has lost the lead since.
        Some("not_leader") => Err(MemberError::NoLeader(format!("not_leader: {message}"))),
        Some(code) => Err(MemberError::Retry(format!("{code}: {message}"))),
        None => Err(MemberError::Refused(format!("unreadable answer {answer}"))),
    }
}

/// Refusals that a later try may not meet (the node's `ChangeError`s).
fn is_transient(message: &str) -> bool {
    ["in progress", "retry", "behind", "uncommitted"].iter().any(|word| message.contains(word))
}

/// The membership the leader uses, from its status.
pub(super) async fn reported(members: &[NodeEnv]) -> Option<Members> {
    let leader = leader_env(members).await?;
    let reply = status(leader.client_listen).await?;
    let ids = |field: &str| -> Option<Vec<usize>> {
        reply["value"][field].as_array()?.iter().map(|id| id.as_u64().and_then(|id| usize::try_from(id).ok()?.checked_sub(1))).collect()
    };
    Some(Members { voters: ids("voters")?, learners: ids("learners")? })
}

/// The leader named in the latest term any answering member knows (most
/// of those at that term, when they differ): during a partition the
/// majority's new leader, not the isolated old one a stale half still names.
async fn leader_env(members: &[NodeEnv]) -> Option<&NodeEnv> {
    let reports: Vec<(u64, u64)> = statuses(members)
        .await
        .iter()
        .filter_map(|status| Some((status["term"].as_u64()?, status["leader"].as_u64()?)))
        .collect();
    let leader = usize::try_from(latest_leader(&reports)?).ok()?.checked_sub(1)?;
    members.iter().find(|env| env.node == leader)
}

/// From (term, leader id) reports: the leader most reports of the highest
/// term name.
fn latest_leader(reports: &[(u64, u64)]) -> Option<u64> {
    let term = reports.iter().map(|(term, _)| *term).max()?;
    let named: Vec<u64> = reports.iter().filter(|(at, _)| *at == term).map(|(_, leader)| *leader).collect();
    majority(&named)
}

#[cfg(test)]
mod tests {
    use super::{is_transient, latest_leader};

    #[test]
    fn the_leader_of_the_latest_term_is_asked() {
        assert_eq!(latest_leader(&[(3, 1), (3, 1), (4, 2), (4, 2)]), Some(2), "a 2-2 split: the newer term wins");
        assert_eq!(latest_leader(&[(5, 3)]), Some(3));
        assert_eq!(latest_leader(&[(5, 3), (5, 2)]), None, "two leaders named in one term: no answer");
        assert_eq!(latest_leader(&[]), None);
    }

    #[test]
    fn refusals_that_pass_are_retried() {
        assert!(is_transient("a membership change is in progress (entry 42 is not committed)"));
        assert!(is_transient("node 4 is 80 entries behind the leader (promotion waits until it is within 64)"));
        assert!(is_transient("the leader has not committed an entry of its term yet; retry"));
        assert!(!is_transient("node 4 is already a member"));
        assert!(!is_transient("node 2 is the last voter"));
    }
}
